"""Routing by key: a partition told as exact is the one the producer's key bytes hash to.

Found by probe h69: with `key_format: string` (or `long`) and a bytes, date, time, timestamp
or uuid key column, the Kafka key was rebuilt from the stored value (`str(b'\\xfb...')`, a
timestamp's stored integer) and trusted as exact: a cluster routed the lookup to another
worker's partition and answered "no row" for a row it holds. Such keys are not exact now:
their partition is not told, and every owner is asked."""

from __future__ import annotations

import pytest

from materializer.catalog.load import load_catalog_text
from materializer.cluster.partitioning import Partitioning, murmur2_partition
from materializer.formats.codecs import key_decoder

CASES = [
    ("string", "string", b"u-1"), ("string", "bytes", b"+/8BAg=="),
    ("string", "date", b"2024-01-02"), ("string", "timestamp", b"2024-01-02T03:04:05Z"),
    ("string", "uuid", b"6F9619FF-8B86-D011-B42D-00C04FC964FF"),
    ("string", "time", b"03:04:05"), ("long", "timestamp", (1_700_000_000_000).to_bytes(8, "big")),
    ("long", "long", (42).to_bytes(8, "big")), ("int", "long", (7).to_bytes(4, "big")),
    ("bytes", "bytes", b"\xfb\xff\x01\x02"),
]


@pytest.mark.parametrize(("fmt", "kind", "raw"), CASES, ids=[f"{f}-{k}" for f, k, _ in CASES])
def test_an_exact_partition_is_the_producers(fmt: str, kind: str, raw: bytes) -> None:
    spec = load_catalog_text(
        f"tables:\n  - name: t\n    topic: t\n    columns: {{k: {kind}, v: string}}\n"
        f"    primary_key: [k]\n    key_format: {fmt}\n", "t.yaml").relations[0]
    stored = key_decoder(spec)(raw)
    parts = Partitioning("murmur2", fmt, ["k"], [kind])
    for n in (3, 7, 12):
        got = parts.partition(stored, n)
        if parts.is_exact(stored):
            assert got == murmur2_partition(raw, n), (stored, n)
        else:
            assert got is None  # not told: every owner is asked
    same_form = {"string": ("string",), "long": ("int", "long"), "int": ("int", "long"),
                 "bytes": ("bytes",)}
    assert parts.exact == (kind in same_form[fmt])

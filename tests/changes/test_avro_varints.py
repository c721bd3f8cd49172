"""The generated writers write an int or long (`zigzag` written out inline, by size) as
fastavro does at every size boundary, and refuse a long outside 64 bits as it does."""

from __future__ import annotations

import io

import fastavro
import pytest

from materializer.changes.avro_rows import record_writer

EDGES = sorted({s * (2**b) + d for b in range(0, 64, 7) for s in (1, -1) for d in (-1, 0, 1)
                if -(2**63) <= s * (2**b) + d < 2**63} | {2**63 - 1, -(2**63)})


@pytest.mark.parametrize("kind", ["long", {"type": "long", "logicalType": "timestamp-micros"}])
def test_longs_at_every_varint_length_are_fastavros(kind: object) -> None:
    schema = fastavro.parse_schema({"type": "record", "name": "R", "fields": [
        {"name": "a", "type": kind}, {"name": "b", "type": ["null", kind]},
        {"name": "c", "type": {"type": "array", "items": kind}}]})
    write = record_writer([kind, ["null", kind], {"type": "array", "items": kind}])
    for n in EDGES:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schema, {"a": n, "b": n, "c": [n, -n - 1]})
        assert write((n, n, [n, -n - 1])) == buf.getvalue(), n


def test_counts_of_64_items_and_more_are_fastavros() -> None:
    node = {"type": "map", "values": {"type": "array", "items": "int"}}
    schema = fastavro.parse_schema({"type": "record", "name": "R",
                                    "fields": [{"name": "m", "type": node}]})
    write = record_writer([node])
    for n in (0, 1, 63, 64, 65, 8191, 8192):
        value = {str(i): list(range(n % 70)) for i in range(n)}
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schema, {"m": value})
        assert write((value,)) == buf.getvalue(), n


@pytest.mark.parametrize("n", [2**63, -(2**63) - 1, 2**64 + 5, -(2**70)])
def test_a_long_outside_64_bits_is_refused(n: int) -> None:
    with pytest.raises(OverflowError):
        record_writer(["long"])((n,))

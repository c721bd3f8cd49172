"""The fast envelope paths write what the plain ones wrote: Avro events and keys written
in parts by generated writers are the bytes fastavro writes for the whole envelope and
key of plain values, and JSON events read back as the rows' JSON form. Property tests
over rows of every column type (nulls included)."""

from __future__ import annotations

import decimal
import io
import json
from pathlib import Path
from typing import Any

import fastavro
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.registry import FileRegistry
from materializer.changes.avro_envelope import (
    AvroEnvelope,
    decimal_bytes,
    envelope_schema,
    key_schema,
)
from materializer.changes.envelope import JsonEnvelope
from materializer.changes.envelope_base import _compact
from materializer.changes.event import Change
from materializer.store.rows import RowLayout, encode_row
from tests.support.changes import source, stored, table

ROWS = st.fixed_dictionaries({
    "id": st.integers(-(2**31), 2**31 - 1),
}, optional={
    "name": st.one_of(st.none(), st.text(max_size=8)),
    "price": st.one_of(st.none(), st.decimals(-(10**7), 10**7, places=2).map(str)),
    "born": st.one_of(st.none(), st.dates().map(lambda d: d.isoformat())),
    "at": st.one_of(st.none(), st.integers(0, 2**45)),
    "blob": st.one_of(st.none(), st.binary(max_size=6)),
    "doc": st.one_of(st.none(), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)),
    "tags": st.one_of(st.none(), st.lists(st.one_of(st.none(), st.text(max_size=3)), max_size=3)),
    "attrs": st.one_of(st.none(), st.dictionaries(st.text(max_size=3), st.one_of(
        st.none(), st.decimals(-999, 999, places=1).map(str)), max_size=2)),
    "ok": st.one_of(st.none(), st.booleans()),
    "big": st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
    "ratio": st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
    "t": st.one_of(st.none(), st.times().map(lambda t: t.isoformat())),
    "u": st.one_of(st.none(), st.uuids().map(str)),
})
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None)


def _plain(spec: Any, t: tuple[Any, ...]) -> dict[str, Any]:
    """A stored row as the record fastavro writes by itself: decimals as Decimal (its
    logical writer makes the bytes), json as its compact text."""
    def plain(ctype: Any, v: Any) -> Any:
        if v is None:
            return None
        if ctype.kind == "decimal":
            return decimal.Decimal(v)
        if ctype.kind == "json":
            return _compact(v)
        if ctype.kind == "array":
            return [plain(ctype.item, x) for x in v]
        if ctype.kind == "map":
            return {k: plain(ctype.item, x) for k, x in v.items()}
        return v
    return {c.name: plain(c.type, v) for c, v in zip(spec.columns, t, strict=True)}


def test_avro_events_are_the_bytes_fastavro_writes_for_the_envelope(tmp_path: Path) -> None:
    """Rows written in parts by the generated writers (row records, then the rest) make
    the bytes fastavro writes for the whole envelope of plain values."""
    spec = table()
    env = AvroEnvelope(spec, spec.column_names, FileRegistry(tmp_path))
    schema = fastavro.parse_schema(envelope_schema(spec, spec.column_names))
    key_record = fastavro.parse_schema(key_schema(spec, spec.column_names))

    @SETTINGS
    @given(ROWS, ROWS)
    def run(before: dict[str, Any], after: dict[str, Any]) -> None:
        b, a = stored(spec, before), stored(spec, {**after, "id": before["id"]})
        (msg, *_) = env.encode([Change("u", 0, 5, 1000, (b[0],), b, a)], 99)
        plain = {"before": _plain(spec, b), "after": _plain(spec, a), "op": "u",
                 "ts_ms": 99, "source": source(0, 5, 1000, table="shop.items")}
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schema, plain)
        assert msg[2][5:] == buf.getvalue()
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, key_record, {"id": b[0]})
        assert msg[1][5:] == buf.getvalue()

    run()


def test_json_rows_read_back_as_the_json_form() -> None:
    spec = table()
    env = JsonEnvelope(spec, spec.column_names)
    layout = RowLayout(spec.column_names, [c.type for c in spec.columns])

    @SETTINGS
    @given(ROWS)
    def run(row: dict[str, Any]) -> None:
        t = stored(spec, row)
        (msg, *_) = env.encode([Change("c", 0, 5, 1000, (t[0],), None, t)], 99)
        assert json.loads(msg[2])["after"] == layout.to_json(encode_row(t))

    run()


@SETTINGS
@given(st.integers(0, 12).flatmap(lambda scale: st.tuples(
    st.just(scale), st.decimals(-(10**20), 10**20, places=scale, allow_nan=False))))
def test_decimal_bytes_are_fastavros(case: tuple[int, Any]) -> None:
    from fastavro._logical_writers_py import prepare_bytes_decimal

    from materializer.columns import parse_type
    from materializer.values import to_storage
    scale, d = case
    stored = to_storage(parse_type(f"decimal(38,{scale})")[0])(d)
    want = prepare_bytes_decimal(decimal.Decimal(stored), {"precision": 38, "scale": scale})
    got = decimal_bytes(scale)(stored)
    assert (got if isinstance(got, bytes) else prepare_bytes_decimal(
        got, {"precision": 38, "scale": scale})) == want


@SETTINGS
@given(st.lists(ROWS, min_size=1, max_size=6), st.booleans())
def test_a_batch_encodes_as_its_changes_one_by_one(rows: list[dict[str, Any]],
                                                   delete: bool) -> None:
    """Within a batch a `before` that is the previous `after` (the same tuple) reuses its
    bytes: the events equal those of each change encoded alone, for both envelopes."""
    import tempfile
    spec = table()
    with tempfile.TemporaryDirectory() as tmp:
        envs = [JsonEnvelope(spec, spec.column_names),
                AvroEnvelope(spec, spec.column_names, FileRegistry(Path(tmp)))]
        key = rows[0]["id"]
        changes, before = [], None
        for i, r in enumerate(rows):
            after = stored(spec, {**r, "id": key})
            changes.append(Change("c" if before is None else "u", 0, i, 1000, (key,),
                                  before, after))
            before = after
        if delete:
            changes.append(Change("d", 0, len(rows), 1000, (key,), before, None))
        for env in envs:
            alone = [m for ch in changes for m in env.encode([ch], 99)]
            assert env.encode(changes, 99) == alone


def test_a_batch_remembers_key_bytes_but_not_of_float_keys() -> None:
    """Key bytes are remembered per batch (equal keys, one encoding); with a float key
    column they are not: 0.0 and -0.0 are equal dict keys and different keys."""
    from materializer.changes.envelope_base import batch_keys
    from tests.formats.test_fuzz_decoders import spec as relation

    calls: list[tuple[Any, ...]] = []

    def encode(kt: tuple[Any, ...]) -> bytes:
        calls.append(kt)
        return repr(kt).encode()
    key_of = batch_keys(encode, relation({"id": "long", "v": "string"}, ["id"], "long",
                                         "json"))()
    assert key_of((1,)) == key_of((1,)) == b"(1,)" and calls == [(1,)]
    key_of = batch_keys(encode, relation({"x": "double", "v": "string"}, ["x"], "double",
                                         "json"))()
    assert key_of((0.0,)) == b"(0.0,)" and key_of((-0.0,)) == b"(-0.0,)"

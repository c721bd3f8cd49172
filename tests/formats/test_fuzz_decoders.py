"""Fuzz: whatever bytes arrive, a decoder raises RecordError and nothing else, and so
does RowShaper for whatever a decoder (or JSON) hands it. A key a decoder accepts
can always be stored, and a row the shaper accepts can always be served: stored,
read back, and written as strict JSON (no NaN) in UTF-8. The inputs include poison:
JSON nested 100k deep, lone surrogates, NaN / Infinity / 1e999, timestamps whose UTC
form leaves years 1-9999, and a recursive Avro schema with deep values."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import os
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.registry import FileRegistry
from materializer.columns import parse_type
from materializer.errors import RecordError
from materializer.formats import codecs
from materializer.formats.base import DELETE
from materializer.formats.wire import header
from materializer.ingest.apply import RowShaper
from materializer.specs import Column, RelationSpec, StreamSpec, TableSpec
from materializer.store.keys import KeyCodec
from materializer.store.rows import RowLayout, encode_row
from materializer.stored import from_storage, to_json_value
from materializer.values import MAX_DEPTH, to_storage

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
# deterministic in the suite; FUZZ_EXAMPLES=5000 FUZZ_RANDOM=1 for a deeper, random run
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")), deadline=None,
                database=None, derandomize=not os.environ.get("FUZZ_RANDOM"),
                report_multiple_bugs=False, suppress_health_check=[HealthCheck.too_slow])


def _types_range_checked() -> bool:
    """Whether `types.to_storage` refuses (TypeError/ValueError) numbers that overflow a
    double or the readable timestamp/date range, so no OverflowError escapes later."""
    for text, value in (("double", 10**400), ("timestamp", 2**63), ("date", 10**9),
                        ("timestamp", 10**15)):
        conv = to_storage(parse_type(text)[0])
        try:
            stored = conv(value)
            for make in (from_storage, to_json_value):
                back = make(parse_type(text)[0])
                if back is not None:
                    back(stored)
            KeyCodec([parse_type(text)[0]]).encode((stored,))
        except (TypeError, ValueError):
            continue
        except Exception:  # noqa: BLE001 - any other escape is the bug
            return False
    return True


def test_out_of_range_values_are_refused_by_type_not_by_overflow() -> None:
    assert _types_range_checked()


ALL_TYPES = {
    "id": "int", "flag": "boolean", "n": "long", "f": "float", "d": "double",
    "price": "decimal(10,2)", "name": "string", "blob": "bytes", "day": "date", "at": "time",
    "ts": "timestamp", "u": "uuid", "doc": "json", "ints": "array<int>",
    "scores": "map<string,double>", "stamps": "array<timestamp>",
}
KITCHEN_SINK = {"type": "record", "name": "Sink", "fields": [
    {"name": "id", "type": "int"}, {"name": "flag", "type": ["null", "boolean"]},
    {"name": "n", "type": "long"}, {"name": "f", "type": "float"}, {"name": "d", "type": "double"},
    {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10,
                               "scale": 2}},
    {"name": "name", "type": ["null", "string", "int"]},
    {"name": "blob", "type": {"type": "fixed", "name": "Fx", "size": 4}},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    {"name": "at", "type": {"type": "long", "logicalType": "time-micros"}},
    {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "u", "type": {"type": "string", "logicalType": "uuid"}},
    {"name": "doc", "type": {"type": "map", "values": ["null", "string", "double"]}},
    {"name": "ints", "type": {"type": "array", "items": "int"}},
    {"name": "scores", "type": {"type": "map", "values": "double"}},
    {"name": "stamps", "type": {"type": "array", "items": {"type": "long",
                                                           "logicalType": "timestamp-micros"}}},
    {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}},
    {"name": "ts_us", "type": {"type": "long", "connect.name": "io.debezium.time.MicroTimestamp"}},
]}


def spec(columns: dict[str, str], key: list[str], key_format: str, value_format: str,
         stream: bool = False) -> RelationSpec:
    cols = tuple(Column(n, parse_type(t)[0], n in key and not stream)
                 for n, t in columns.items())
    cls = StreamSpec if stream else TableSpec
    return cls(name="public.f", topic="f", columns=cols, key_columns=tuple(key),
               key_format=key_format, value_format=value_format)


def readable(s: RelationSpec, row: list[Any]) -> None:
    """A row that was accepted can be stored and read back (Python API and JSON forms),
    and its JSON form written as strict JSON in UTF-8."""
    for col, v in zip(s.columns, row, strict=True):
        if v is None:
            continue
        for make in (from_storage, to_json_value):
            conv = make(col.type)
            if conv is not None:
                conv(v)
    raw = encode_row(tuple(row))
    layout = RowLayout(s.column_names, [c.type for c in s.columns])
    layout.to_python(raw)
    json.dumps(layout.to_json(raw), allow_nan=False, ensure_ascii=False).encode("utf-8")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> FileRegistry:
    reg = FileRegistry(tmp_path_factory.mktemp("registry"))
    for name in ("users-value-v1", "users-value-v2", "orders-key", "orders-value",
                 "debezium-customers-envelope"):
        reg.register(name, json.loads((SCHEMAS / f"{name}.avsc").read_text()))
    reg.register("sink", KITCHEN_SINK)
    reg.register("long", "long")
    reg.register("string", "string")
    assert reg.register("linked", LINKED) == LINKED_ID
    (reg.path / "99.avsc").write_text('{"type": "nonsense"}')
    return reg


LINKED = {"type": "record", "name": "Node", "fields": [
    {"name": "id", "type": "int"}, {"name": "next", "type": ["null", "Node"]}]}
LINKED_ID = 9
SCHEMA_IDS = [1, 2, 3, 4, 5, 6, 7, 8, LINKED_ID, 99, 1000, 2**31]
# a `Node` list n links long (fastavro's compiled reader crashes the process on 100k)
DEEP_AVRO = [header(LINKED_ID) + b"\x00\x02" * n + b"\x00\x00"
             for n in (1, MAX_DEPTH, MAX_DEPTH + 1, 5_000, 100_000)]


def wire() -> st.SearchStrategy[bytes]:
    """Random bytes, random bodies behind a valid header with a (mostly) known id, and
    deep values of a recursive schema."""
    framed = st.builds(lambda sid, body: b"\x00" + sid.to_bytes(4, "big") + body,
                       st.sampled_from(SCHEMA_IDS), st.binary(max_size=80))
    return st.one_of(st.binary(max_size=40), framed, st.sampled_from(DEEP_AVRO))


KEY_SPECS = [
    spec({"id": "int", "v": "string"}, ["id"], "int", "json"),
    spec({"id": "long", "v": "string"}, ["id"], "long", "json"),
    spec({"id": "string", "v": "string"}, ["id"], "string", "json"),
    spec({"id": "bytes", "v": "string"}, ["id"], "bytes", "json"),
    spec({"id": "timestamp", "v": "string"}, ["id"], "json", "json"),
    spec({"a": "int", "b": "decimal(10,2)", "c": "date", "v": "string"}, ["a", "b", "c"],
         "json", "json"),
    spec({"a": "uuid", "b": "double", "c": "string", "v": "string"}, ["a", "b", "c"], "json",
         "json", stream=True),
    spec({"id": "int", "v": "string"}, ["id"], "avro", "json"),
    spec({"customer_id": "int", "order_id": "int", "v": "string"},
         ["customer_id", "order_id"], "avro", "json"),
    spec({"id": "long", "v": "string"}, ["id"], "avro", "json"),
    spec({"id": "timestamp", "v": "string"}, ["id"], "avro", "json"),
]


def _key_ids(s: RelationSpec) -> str:
    return f"{s.key_format}:{','.join(str(t) for t in s.key_types)}"


@pytest.mark.parametrize("kspec", KEY_SPECS, ids=_key_ids)
def test_key_decoders_only_raise_record_error(kspec: RelationSpec,
                                              registry: FileRegistry) -> None:
    dec = codecs.key_decoder(kspec, registry)
    codec = KeyCodec(kspec.key_types)
    key_only = replace(kspec, columns=tuple(kspec.column(n) for n in kspec.key_columns))
    data = wire() if kspec.key_format == "avro" else st.one_of(
        st.binary(max_size=40), json_bytes(list(kspec.key_columns)),
        poison_json(list(kspec.key_columns)), st.sampled_from(POISON),
        st.sampled_from(EDGE_INTS).map(lambda i: json.dumps(i).encode()),
        st.dictionaries(st.sampled_from(list(kspec.key_columns)),
                        st.sampled_from(EDGE_INTS)).map(lambda o: json.dumps(o).encode()))

    @FUZZ
    @given(data)
    def run(b: bytes) -> None:
        try:
            kt = dec(b)
        except RecordError:
            return
        assert isinstance(kt, tuple) and len(kt) == len(kspec.key_columns)
        codec.encode(kt)  # an accepted key can be stored
        readable(key_only, list(kt))  # and read back

    run()


VALUE_COLUMNS = {**ALL_TYPES, "email": "string", "age": "long", "customer_id": "int",
                 "order_id": "int", "total": "decimal(10,2)", "placed_at": "timestamp",
                 "first_name": "string", "balance": "decimal(10,2)", "birth_date": "date",
                 "created_at": "timestamp", "updated_at": "timestamp", "ts_us": "timestamp",
                 "e": "string", "next": "json"}
VALUE_SPECS = [
    spec(VALUE_COLUMNS, ["id"], "int", fmt) for fmt in ("json", "avro", "debezium-json",
                                                        "debezium-avro")
] + [spec({"id": "int", "v": t}, ["id"], "int", fmt)
     for fmt, t in (("string", "string"), ("int", "int"), ("long", "timestamp"),
                    ("bytes", "bytes"), ("avro", "long"))]


def _value_ids(s: RelationSpec) -> str:
    return f"{s.value_format}:{len(s.columns)}"


@pytest.mark.parametrize("vspec", VALUE_SPECS, ids=_value_ids)
def test_value_decoders_and_shaper_only_raise_record_error(vspec: RelationSpec,
                                                           registry: FileRegistry) -> None:
    dec = codecs.value_decoder(vspec, registry)
    shaper = RowShaper(vspec, vspec.column_names)
    fmt = vspec.value_format
    if fmt in ("avro", "debezium-avro"):
        data = wire()
    elif fmt == "json":
        data = st.one_of(st.binary(max_size=40), json_bytes(list(VALUE_COLUMNS)),
                         poison_json(list(VALUE_COLUMNS)))
    elif fmt == "debezium-json":
        data = st.one_of(st.binary(max_size=40), debezium_bytes(),
                         poison_json(list(VALUE_COLUMNS)).map(
                             lambda b: b'{"op": "c", "after": ' + b + b"}"))
    else:
        data = st.binary(max_size=12)

    @FUZZ
    @given(data)
    def run(b: bytes) -> None:
        try:
            fields = dec(b)
            if fields is DELETE:
                return
            row = shaper.shape(fields, (1,))
        except RecordError:
            return
        readable(vspec, row)

    run()


# --------------------------------------------------------------------------- RowShaper


EDGE_INTS = [2**31, -(2**31) - 1, 2**63, -(2**63) - 1, 2**63 // 1000 + 1, 10**20, -(10**20),
             2**53 + 1, 10**400, 86_400_000, -1]


EDGE_ZONES = [None, dt.UTC, dt.timezone(dt.timedelta(hours=23, minutes=59)),
              dt.timezone(dt.timedelta(hours=-23, minutes=-59)),
              dt.timezone(dt.timedelta(hours=-1))]


def _deep_list(depth: int) -> Any:
    v: Any = 1
    for _ in range(depth):
        v = [v]
    return v


def _rich() -> st.SearchStrategy[Any]:
    """Values a decoder may hand over: JSON scalars and the rich types fastavro makes.
    (No lone surrogates: every decoder refuses them, see `poison_json`.)"""
    return st.one_of(
        st.none(), st.booleans(), st.integers(), st.sampled_from(EDGE_INTS),
        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
        st.sampled_from(["2024-01-01", "12:30:00", "2024-01-01T00:00:00Z", "1e999999999",
                         "NaN", "-Infinity", "AAEC", "12345678-1234-5678-1234-567812345678",
                         "9999-12-31T23:59:59.999999-23:59", "0001-01-01T00:00:00+23:59",
                         "9999-12-31T23:30:00-01:00", "0001-01-01T00:30:00+01:00",
                         "24:00:00", "2024-02-30"]),
        st.binary(max_size=8), st.datetimes(timezones=st.sampled_from(EDGE_ZONES)),
        st.sampled_from([dt.datetime.max.replace(tzinfo=z) for z in EDGE_ZONES]
                        + [dt.datetime.min.replace(tzinfo=z) for z in EDGE_ZONES]),
        st.sampled_from([MAX_DEPTH, 5_000]).map(_deep_list),
        st.dates(), st.times(), st.decimals(allow_nan=True, allow_infinity=True),
        st.uuids(), st.sampled_from([uuid.uuid4(), math.inf, -math.inf, 10**400]),
    )


def _json_ish() -> st.SearchStrategy[Any]:
    return st.recursive(_rich(), lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=5), st.integers()), inner, max_size=4),
        st.lists(st.tuples(st.text(max_size=3), inner), max_size=3)), max_leaves=12)


SHAPER_SPEC = spec({**ALL_TYPES, "req": "string not null"}, ["id"], "int", "json")
NASTY = st.sampled_from([*EDGE_INTS, math.nan, math.inf, -math.inf, 1e308, -0.0, "", "1e999999999",
                         "NaN", "Infinity", "2024-02-30", "24:00:00", "AAEC", "@@",
                         dt.datetime.max, dt.datetime.min, dt.date.max, dt.date.min,
                         dt.datetime.max.replace(tzinfo=dt.UTC), dt.time.max,
                         decimal.Decimal("1e99999"), decimal.Decimal("NaN"),
                         decimal.Decimal("-Infinity"), decimal.Decimal("99999999.995"),
                         [10**400], {"k": 10**400}, [("k", 1)], [(1, 1)], {1: 2}, b"\xff",
                         bytearray(b"x"), True, ["2024-01-01T00:00:00Z", None]])


@pytest.mark.parametrize("column", sorted(ALL_TYPES))
def test_row_shaper_column_only_raises_record_error(column: str) -> None:
    shaper = RowShaper(SHAPER_SPEC, SHAPER_SPEC.column_names)

    @FUZZ
    @given(st.one_of(NASTY, _json_ish()))
    def run(value: Any) -> None:
        try:
            row = shaper.shape({column: value, "req": "x"}, (1,))
        except RecordError:
            return
        readable(SHAPER_SPEC, row)

    run()


@FUZZ
@given(st.dictionaries(st.sampled_from(sorted(ALL_TYPES)), _json_ish(), max_size=16))
def test_row_shaper_only_raises_record_error(fields: dict[str, Any]) -> None:
    fields.setdefault("req", "x")
    try:
        row = RowShaper(SHAPER_SPEC, SHAPER_SPEC.column_names).shape(fields, (1,))
    except RecordError:
        return
    readable(SHAPER_SPEC, row)


# --------------------------------------------------------------------------- JSON inputs

_json_scalar = st.one_of(st.none(), st.booleans(), st.integers(),
                         st.sampled_from(EDGE_INTS),
                         st.floats(allow_nan=False), st.text(max_size=12),
                         st.sampled_from(["2024-01-01", "2024-01-01T00:00:00Z", "12:00:00",
                                          "AAEC", "0.5", "not-a-uuid"]))
_json_value = st.recursive(_json_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=8)


def json_bytes(names: list[str]) -> st.SearchStrategy[bytes]:
    obj = st.dictionaries(st.sampled_from(names), _json_value, max_size=len(names))
    return st.one_of(obj, _json_value).map(lambda o: json.dumps(o).encode())


def _nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


POISON = [t.encode() for t in (
    "NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1" + "0" * 400 + ".5",
    '{"a": [1, NaN]}', "[Infinity]", r'"\ud800"', r'"a\uDFFFb"', r'["\ude00\ud83d"]',
    r'{"\udc00": 1}', r'"\ud83d\ude00"', r'"\\ud800"',
    '"9999-12-31T23:30:00-01:00"', '"0001-01-01T00:30:00+01:00"',
    '"9999-12-31T23:59:59.999999Z"', '"0001-01-01T00:00:00Z"',
    _nested(MAX_DEPTH - 2), _nested(MAX_DEPTH), _nested(2_000), _nested(100_000),
)] + [b'"\xed\xa0\x80"']  # UTF-8 of a surrogate: json.loads reads it (surrogatepass)


def poison_json(names: list[str]) -> st.SearchStrategy[bytes]:
    """JSON objects of the columns, some values poison (raw JSON text)."""
    member = st.tuples(st.sampled_from(names), st.one_of(
        st.sampled_from(POISON), _json_value.map(lambda v: json.dumps(v).encode())))
    return st.lists(member, min_size=1, max_size=4).map(
        lambda kv: b"{" + b", ".join(json.dumps(k).encode() + b": " + v for k, v in kv) + b"}")


CONNECT_NAMES = ["io.debezium.time.Date", "io.debezium.time.Timestamp",
                 "io.debezium.time.MicroTimestamp", "io.debezium.time.NanoTimestamp",
                 "io.debezium.time.ZonedTimestamp", "io.debezium.time.Time",
                 "io.debezium.time.MicroTime", "io.debezium.time.NanoTime",
                 "org.apache.kafka.connect.data.Decimal", "io.debezium.data.VariableScaleDecimal",
                 "io.debezium.data.Json", "org.apache.kafka.connect.data.Date", None]


def _connect_field(name: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({
        "field": st.just(name), "type": st.sampled_from(["int32", "int64", "string", "bytes"]),
        "name": st.sampled_from(CONNECT_NAMES),
        "parameters": st.one_of(st.none(), st.fixed_dictionaries(
            {"scale": st.one_of(st.integers(-5, 40), st.text(max_size=3))}))})


def debezium_bytes() -> st.SearchStrategy[bytes]:
    names = sorted(VALUE_COLUMNS)
    after = st.one_of(st.none(), st.dictionaries(st.sampled_from(names), _json_value,
                                                 max_size=8), _json_value)
    payload = st.fixed_dictionaries({"op": st.sampled_from(["c", "r", "u", "d", "t", None, 1]),
                                     "after": after, "before": st.none()})
    fields = st.lists(st.sampled_from(names).flatmap(_connect_field), max_size=6)
    schema = st.one_of(st.none(), _json_value, fields.map(lambda fs: {"type": "struct", "fields": [
        {"field": "after", "type": "struct", "fields": fs}]}))
    wrapped = st.builds(lambda s, p: {"schema": s, "payload": p}, schema, payload)
    return st.one_of(payload, wrapped, _json_value).map(
        lambda o: json.dumps(o).encode())


def test_fuzz_registry_covers_every_outcome(registry: FileRegistry) -> None:
    """Sanity for the fuzz inputs: framed bodies reach fastavro with real schemas, and
    the ids in SCHEMA_IDS give every registry outcome."""
    assert [registry.schema(i).get("name") for i in (1, 3, 5, 6)] == [
        "shop.User", "shop.OrderKey", "dbserver1.inventory.customers.Envelope", "Sink"]
    one = spec({"id": "int", "v": "long"}, ["id"], "int", "avro")
    dec: Callable[[bytes], Any] = codecs.value_decoder(one, registry)
    assert dec(b"\x00\x00\x00\x00\x07\x02") == {"v": 1}  # schema 7 is "long"
    reasons = set()
    for sid in SCHEMA_IDS:
        try:
            dec(b"\x00" + sid.to_bytes(4, "big") + b"\x02")
        except RecordError as e:
            reasons.add(e.reason)
    # no_declared_columns: a record schema none of whose fields is `id` or `v`
    assert reasons == {"truncated", "unknown_schema", "bad_schema", "no_declared_columns"}
    deep = spec({"id": "int", "next": "json"}, ["id"], "int", "avro")
    dec = codecs.value_decoder(deep, registry)
    assert dec(DEEP_AVRO[0]) == {"id": 0, "next": {"id": 0, "next": None}}
    shaper = RowShaper(deep, deep.column_names)
    for body in DEEP_AVRO[2:]:  # too deep for the json column, then to read at all
        with pytest.raises(RecordError) as e:
            shaper.shape(dec(body), (1,))
        assert e.value.reason == "too_deep"

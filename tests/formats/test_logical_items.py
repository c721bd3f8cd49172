"""Kafka Connect / Debezium logical types on the `items` of an array schema and the
`values` of a map schema are applied to each element, as they are to a top-level field
(`connect_types.connect_fixup`): the Connect JSON wrapper, debezium-json, and Avro as
Debezium's AvroConverter writes it (`connect.name` on the items). A Postgres
`timestamp[]` column arrives as an array of MicroTimestamp items: read as milliseconds,
1975 became the year 6969."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
from pathlib import Path
from typing import Any

import pytest

from connectors.registry import FileRegistry
from materializer.columns import parse_type
from materializer.errors import RecordError
from materializer.formats import codecs
from materializer.formats.avro_schema import avro_element, avro_fields
from materializer.formats.connect_types import connect_fixup, field_plan, struct_fields
from materializer.formats.wire import avro_encoder
from materializer.ingest.apply import RowShaper
from materializer.specs import Column, RelationSpec, TableSpec

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MICRO_TS = "io.debezium.time.MicroTimestamp"
MICRO_TIME = "io.debezium.time.MicroTime"
DECIMAL = "org.apache.kafka.connect.data.Decimal"

T1975 = dt.datetime(1975, 1, 1, tzinfo=dt.UTC)
T2024 = dt.datetime(2024, 3, 1, 8, 0, 0, 123456, tzinfo=dt.UTC)
TEN_S = 10_000_000  # 00:00:10 in µs
LUNCH = 12 * 3_600_000_000 + 30 * 60_000_000 + 7  # 12:30:00.000007 in µs

COLUMNS = {"id": "int", "ts": "array<timestamp>", "tm": "array<time>",
           "dec": "array<decimal(10,2)>", "prices": "map<string,decimal(10,2)>",
           "grid": "array<array<timestamp>>", "at": "timestamp"}


def table(columns: dict[str, str], value_format: str) -> RelationSpec:
    cols = tuple(Column(n, parse_type(t)[0], n == "id") for n, t in columns.items())
    return TableSpec(name="public.t", topic="t", columns=cols, key_columns=("id",),
                     key_format="json", value_format=value_format)  # type: ignore[arg-type]


def micros(d: dt.datetime) -> int:
    delta = d - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def unscaled(n: int) -> bytes:
    """Connect's Decimal bytes: the unscaled value, two's complement, big-endian."""
    return n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big", signed=True)


def b64(n: int) -> str:
    return base64.b64encode(unscaled(n)).decode()


def shape(spec: RelationSpec, fields: Any) -> dict[str, Any]:
    layout = spec.column_names
    return dict(zip(layout, RowShaper(spec, layout).shape(fields, (1,)), strict=True))


# --------------------------------------------------------------------------- Connect JSON

def item(type_: str, name: str | None = None, params: dict[str, str] | None = None
         ) -> dict[str, Any]:
    s: dict[str, Any] = {"type": type_, "optional": True}
    if name:
        s["name"], s["version"] = name, 1
    if params:
        s["parameters"] = params
    return s


def array_of(name: str, items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items, "optional": True, "field": name}


DEC_ITEM = item("bytes", DECIMAL, {"scale": "2", "connect.decimal.precision": "10"})
JSON_FIELDS = [
    {"type": "int32", "optional": False, "field": "id"},
    array_of("ts", item("int64", MICRO_TS)),
    array_of("tm", item("int64", MICRO_TIME)),
    array_of("dec", DEC_ITEM),
    {"type": "map", "keys": item("string"), "values": DEC_ITEM, "optional": True,
     "field": "prices"},
    array_of("grid", {"type": "array", "items": item("int64", MICRO_TS), "optional": True}),
    {**item("int64", MICRO_TS), "field": "at"},
]
JSON_PAYLOAD = {"id": 1, "ts": [micros(T1975), None, micros(T2024)], "tm": [TEN_S, LUNCH],
                "dec": [b64(-2658824), b64(123450)], "prices": {"a": b64(1999), "b": None},
                "grid": [[micros(T1975)], [], [micros(T2024), None]], "at": micros(T1975)}
EXPECTED = {"id": 1, "ts": [micros(T1975), None, micros(T2024)], "tm": [TEN_S, LUNCH],
            "dec": ["-26588.24", "1234.50"], "prices": {"a": "19.99", "b": None},
            "grid": [[micros(T1975)], [], [micros(T2024), None]], "at": micros(T1975)}


def wrap(fields: list[dict[str, Any]], payload: Any) -> bytes:
    schema = {"type": "struct", "fields": fields, "optional": False, "name": "db.public.t.Value"}
    return json.dumps({"schema": schema, "payload": payload}).encode()


def dbz(fields: list[dict[str, Any]], after: dict[str, Any]) -> bytes:
    row = {"type": "struct", "fields": fields, "optional": True, "name": "db.public.t.Value"}
    schema = {"type": "struct", "name": "db.public.t.Envelope", "optional": False, "fields": [
        {**row, "field": "before"}, {**row, "field": "after"},
        {"type": "string", "optional": False, "field": "op"},
        {"type": "int64", "optional": True, "field": "ts_ms"}]}
    payload = {"before": None, "after": after, "op": "c", "ts_ms": 0}
    return json.dumps({"schema": schema, "payload": payload}).encode()


def test_connect_json_items_and_map_values_have_their_logical_types() -> None:
    spec = table(COLUMNS, "json")
    dec = codecs.value_decoder(spec)
    for _ in range(2):  # the plan is made once per schema, then reused
        assert shape(spec, dec(wrap(JSON_FIELDS, json.loads(json.dumps(JSON_PAYLOAD))))
                     ) == EXPECTED


def test_debezium_json_items_and_map_values_have_their_logical_types() -> None:
    spec = table(COLUMNS, "debezium-json")
    dec = codecs.value_decoder(spec, None)
    for _ in range(2):
        assert shape(spec, dec(dbz(JSON_FIELDS, json.loads(json.dumps(JSON_PAYLOAD))))
                     ) == EXPECTED


def test_a_bare_array_payload_fills_the_one_value_column() -> None:
    spec = table({"id": "int", "ts": "array<timestamp>"}, "json")
    value = json.dumps({"schema": {"type": "array", "items": item("int64", MICRO_TS)},
                        "payload": [micros(T1975)]}).encode()
    assert shape(spec, codecs.value_decoder(spec)(value))["ts"] == [micros(T1975)]


@pytest.mark.parametrize(("column", "schema", "value"), [
    ("tm", item("int64", MICRO_TIME), 86_400_000_000),  # not a time of day
    ("tm", item("int64", MICRO_TIME), -1),
    ("ts", item("int64", MICRO_TS), 10**19),  # past year 9999
    ("dec", DEC_ITEM, "not base64!"),
    ("dec", DEC_ITEM, "12345"),  # decimal text, but not base64: the schema says base64
])
@pytest.mark.parametrize("value_format", ["json", "debezium-json"])
def test_an_item_that_does_not_fit_is_a_type_mismatch(
        column: str, schema: dict[str, Any], value: Any, value_format: str) -> None:
    spec = table(COLUMNS, value_format)
    fields = [{"type": "int32", "optional": False, "field": "id"}, array_of(column, schema)]
    payload = {"id": 1, column: [None, value]}
    make = wrap if value_format == "json" else dbz
    with pytest.raises(RecordError) as e:
        shape(spec, codecs.value_decoder(spec, None)(make(fields, payload)))
    assert e.value.reason == "type_mismatch"
    assert column in str(e.value)


def test_a_map_value_that_does_not_fit_is_a_type_mismatch() -> None:
    spec = table(COLUMNS, "json")
    fields = [{"type": "map", "keys": item("string"), "values": DEC_ITEM, "field": "prices"}]
    with pytest.raises(RecordError) as e:
        codecs.value_decoder(spec)(wrap(fields, {"prices": {"a": "%%"}}))
    assert e.value.reason == "type_mismatch"


def test_arrays_without_logical_items_are_unchanged() -> None:
    """No conversion is planned for them (the per-record cost stays nil), and their items
    read as without a schema: an integer in a timestamp column is milliseconds."""
    columns = {"id": parse_type("int")[0], "ts": parse_type("array<timestamp>")[0],
               "n": parse_type("array<long>")[0], "m": parse_type("map<string,long>")[0],
               "j": parse_type("json")[0]}
    fields = struct_fields({"type": "struct", "fields": [
        {"type": "int32", "field": "id"}, array_of("ts", item("int64")),
        array_of("n", item("int64")),
        {"type": "map", "keys": item("string"), "values": item("int64"), "field": "m"},
        array_of("j", item("int64", MICRO_TS))]})  # a json column keeps the JSON as it is
    assert fields is not None
    assert field_plan(fields, columns) == ()
    spec = table({"id": "int", "ts": "array<timestamp>", "n": "array<long>"}, "json")
    fields_json = [{"type": "int32", "field": "id"}, array_of("ts", item("int64")),
                   array_of("n", item("int64"))]
    got = shape(spec, codecs.value_decoder(spec)(
        wrap(fields_json, {"id": 1, "ts": [1000], "n": [micros(T1975)]})))
    assert got == {"id": 1, "ts": [1_000_000], "n": [micros(T1975)]}


def test_an_array_schema_into_a_scalar_column_is_not_converted() -> None:
    """The items' type applies as far as the column's type nests, no further."""
    schema = {"type": "array", "items": item("int64", MICRO_TS)}
    assert connect_fixup(None, None, schema, parse_type("string")[0]) is None
    assert connect_fixup(None, None, schema, parse_type("map<string,timestamp>")[0]) is None


# --------------------------------------------------------------------------- Avro

def avro_item(base: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"type": base, "connect.version": 1, "connect.name": name, **extra}


AVRO_DEC_ITEM = avro_item("bytes", DECIMAL, scale=2, precision=10, logicalType="decimal",
                          **{"connect.parameters": {"scale": "2",
                                                    "connect.decimal.precision": "10"}})
AVRO_ROW = {"type": "record", "name": "Value", "namespace": "db.public.t", "fields": [
    {"name": "id", "type": "int"},
    {"name": "ts", "type": ["null", {"type": "array",
                                     "items": ["null", avro_item("long", MICRO_TS)]}],
     "default": None},
    {"name": "tm", "type": {"type": "array", "items": avro_item("long", MICRO_TIME)}},
    {"name": "dec", "type": {"type": "array", "items": AVRO_DEC_ITEM}},
    {"name": "prices", "type": {"type": "map", "values": avro_item(
        "bytes", DECIMAL, **{"connect.parameters": {"scale": "2"}})}},  # no logicalType
    {"name": "grid", "type": {"type": "array", "items": {
        "type": "array", "items": avro_item("long", MICRO_TS)}}},
    {"name": "at", "type": avro_item("long", MICRO_TS)},
]}
AVRO_DATUM = {"id": 1, "ts": [micros(T1975), None, micros(T2024)], "tm": [TEN_S, LUNCH],
              "dec": [decimal.Decimal("-26588.24"), decimal.Decimal("1234.50")],
              "prices": {"a": unscaled(1999)},
              "grid": [[micros(T1975)], [], [micros(T2024)]], "at": micros(T1975)}
AVRO_EXPECTED = {**EXPECTED, "prices": {"a": "19.99"},
                 "grid": [[micros(T1975)], [], [micros(T2024)]]}


def avro_envelope(after: dict[str, Any] | None) -> dict[str, Any]:
    return {"before": None, "after": after, "op": "c", "ts_ms": 0}


AVRO_ENVELOPE = {"type": "record", "name": "Envelope", "namespace": "db.public.t", "fields": [
    {"name": "before", "type": ["null", AVRO_ROW], "default": None},
    {"name": "after", "type": ["null", "Value"], "default": None},
    {"name": "op", "type": "string"},
    {"name": "ts_ms", "type": ["null", "long"], "default": None}]}


@pytest.fixture()
def reg(tmp_path: Path) -> FileRegistry:
    return FileRegistry(tmp_path / "registry")


def test_debezium_avro_items_with_connect_names(reg: FileRegistry) -> None:
    spec = table(COLUMNS, "debezium-avro")
    enc = avro_encoder(reg, "t-value", AVRO_ENVELOPE)
    dec = codecs.value_decoder(spec, reg)
    for _ in range(2):
        assert shape(spec, dec(enc(avro_envelope(dict(AVRO_DATUM))))) == AVRO_EXPECTED


def test_plain_avro_items_with_connect_names(reg: FileRegistry) -> None:
    """Debezium with ExtractNewRecordState and the AvroConverter: the row itself."""
    spec = table(COLUMNS, "avro")
    enc = avro_encoder(reg, "t-value", AVRO_ROW)
    assert shape(spec, codecs.value_decoder(spec, reg)(enc(dict(AVRO_DATUM)))) == AVRO_EXPECTED


def test_avro_items_by_name_of_a_named_type() -> None:
    """An item type given by name (defined earlier in the schema) is looked up."""
    named = {"db.Dec": {"type": "fixed", "name": "db.Dec", "size": 4,
                        "connect.name": DECIMAL, "connect.parameters": {"scale": "1"}}}
    rec = {"type": "record", "name": "R", "fields": [
        {"name": "d", "type": {"type": "array", "items": "db.Dec"}}]}
    columns = {"d": parse_type("array<decimal(8,1)>")[0]}
    plan = field_plan(avro_fields(rec, named), columns, element=avro_element(named))
    ((src, col, fix),) = plan
    assert (src, col) == ("d", "d")
    assert fix is not None and fix([unscaled(-15), None]) == ["-1.5", None]


@pytest.mark.parametrize(("column", "value"), [("tm", 86_400_000_000), ("ts", 10**18 * 9)])
def test_an_avro_item_that_does_not_fit_is_a_type_mismatch(
        reg: FileRegistry, column: str, value: int) -> None:
    spec = table(COLUMNS, "debezium-avro")
    enc = avro_encoder(reg, "t-value", AVRO_ENVELOPE)
    datum = {**AVRO_DATUM, column: [value]}
    with pytest.raises(RecordError) as e:
        shape(spec, codecs.value_decoder(spec, reg)(enc(avro_envelope(datum))))
    assert e.value.reason == "type_mismatch"


def test_avro_arrays_without_connect_items_are_unchanged(reg: FileRegistry) -> None:
    rec = {"type": "record", "name": "R", "fields": [
        {"name": "id", "type": "int"},
        {"name": "ts", "type": {"type": "array", "items": "long"}},
        {"name": "n", "type": {"type": "array", "items": {"type": "long"}}}]}
    columns = {"ts": parse_type("array<timestamp>")[0], "n": parse_type("array<long>")[0]}
    assert field_plan(avro_fields(rec, {}), columns, element=avro_element({})) == ()
    spec = table({"id": "int", "ts": "array<timestamp>", "n": "array<long>"}, "avro")
    enc = avro_encoder(reg, "r-value", rec)
    got = shape(spec, codecs.value_decoder(spec, reg)(
        enc({"id": 1, "ts": [1000], "n": [micros(T1975)]})))
    assert got == {"id": 1, "ts": [1_000_000], "n": [micros(T1975)]}

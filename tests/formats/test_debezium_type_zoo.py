"""Debezium 2.x's type zoo (PostgreSQL and MySQL connectors) through `debezium-json` (with
the schema wrapper) and `debezium-avro` (what AvroConverter writes: `connect.name`,
`connect.parameters`, a `logicalType` for Connect's own Date, Time, Timestamp and Decimal),
each field into a declared column: the stored value must be what the database held, or
the record a loud rejection, never another value.

Fixed here: MySQL YEAR (io.debezium.time.Year) and intervals (MicroDuration) were read by
date, time and timestamp columns as epoch days or milliseconds (YEAR 2024 as 1975-07-17).
(Bytes written as text, binary.handling.mode=hex etc., are tested with the bytes column
encodings.)"""

from __future__ import annotations

import base64
import datetime as dt
import json
import struct
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.registry import FileRegistry
from materializer.columns import ColumnType, parse_type
from materializer.errors import RecordError
from materializer.formats import codecs
from materializer.formats.wire import avro_encoder
from materializer.ingest.apply import RowShaper
from materializer.specs import Column, TableSpec

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def col(text: str, encoding: str | None = None) -> ColumnType:
    return replace(parse_type(text)[0], encoding=encoding)


def spec_of(ctype: ColumnType, fmt: str) -> TableSpec:
    return TableSpec(name="public.zoo", topic="zoo", key_columns=("id",), key_format="json",
                     value_format=fmt,
                     columns=(Column("id", parse_type("int")[0], True), Column("v", ctype)))


def stored(spec: TableSpec, fields: Any) -> Any:
    return RowShaper(spec, spec.column_names).shape(fields, (1,))[1]


def via_json(ctype: ColumnType, field: dict[str, Any], value: Any) -> Any:
    """The column's stored value of a debezium-json event (schema wrapper) whose `after`
    field `v` has Connect schema `field` and value `value`."""
    spec = spec_of(ctype, "debezium-json")
    row = {"type": "struct", "optional": True, "name": "srv.db.zoo.Value", "fields": [
        {"type": "int32", "optional": False, "field": "id"},
        {"optional": True, **field, "field": "v"}]}
    schema = {"type": "struct", "optional": False, "name": "srv.db.zoo.Envelope", "fields": [
        {**row, "field": "before"}, {**row, "field": "after"},
        {"type": "string", "optional": False, "field": "op"}]}
    payload = {"before": None, "after": {"id": 1, "v": value}, "op": "c"}
    msg = json.dumps({"schema": schema, "payload": payload}).encode()
    return stored(spec, codecs.value_decoder(spec, None)(msg))


def via_avro(reg: FileRegistry, ctype: ColumnType, avro_type: Any, value: Any) -> Any:
    """The same through debezium-avro, field `v` of Avro type `avro_type` (nullable)."""
    spec = spec_of(ctype, "debezium-avro")
    row = {"type": "record", "name": "Value", "namespace": "srv.db.zoo",
           "connect.name": "srv.db.zoo.Value", "fields": [
               {"name": "id", "type": "int"},
               {"name": "v", "type": ["null", avro_type], "default": None}]}
    env = {"type": "record", "name": "Envelope", "namespace": "srv.db.zoo", "fields": [
        {"name": "before", "type": ["null", row], "default": None},
        {"name": "after", "type": ["null", "Value"], "default": None},
        {"name": "op", "type": "string"}]}
    enc = avro_encoder(reg, "zoo-value", env)
    b = enc({"before": None, "after": {"id": 1, "v": value}, "op": "c"})
    return stored(spec, codecs.value_decoder(spec, reg)(b))


@pytest.fixture()
def reg(tmp_path: Path) -> FileRegistry:
    return FileRegistry(tmp_path / "registry")


def named(connect: str, json_type: str, avro_type: str, params: dict[str, str] | None = None
          ) -> tuple[dict[str, Any], dict[str, Any]]:
    """A Debezium-named field's schema as JsonConverter and AvroConverter write it."""
    j: dict[str, Any] = {"type": json_type, "name": connect, "version": 1}
    a: dict[str, Any] = {"type": avro_type, "connect.version": 1, "connect.name": connect}
    if params:
        j["parameters"] = params
        a["connect.parameters"] = params
    return j, a


def reason_of(call: Any) -> str:
    with pytest.raises(RecordError) as e:
        call()
    return e.value.reason


# ------------------------------------------------------------------ not instants


YEAR = named("io.debezium.time.Year", "int32", "int")
DURATION = named("io.debezium.time.MicroDuration", "int64", "long")


@pytest.mark.parametrize("kind", ["date", "time", "timestamp"])
@pytest.mark.parametrize(("schemas", "value", "what"), [
    (YEAR, 2024, "a year number"),
    (DURATION, 60_000, "a duration in microseconds"),  # 60 ms: was stored as 00:01:00
])
def test_a_year_or_an_interval_is_no_date_time_or_timestamp(
        reg: FileRegistry, kind: str, schemas: Any, value: int, what: str) -> None:
    """MySQL YEAR 2024 was stored as the date 1975-07-17 (2024 epoch days), the timestamp
    1970-01-01T00:00:02.024Z or the time 00:00:02.024; an interval of 60 ms as 00:01:00."""
    j, a = schemas
    for call in (lambda: via_json(col(kind), j, value),
                 lambda: via_avro(reg, col(kind), a, value)):
        with pytest.raises(RecordError) as e:
            call()
        assert e.value.reason == "type_mismatch"
        assert what in str(e.value) and f"not a {kind}" in str(e.value)
        assert "declare the column int or long" in str(e.value)


def test_a_year_or_an_interval_still_fills_integer_columns(reg: FileRegistry) -> None:
    assert via_json(col("int"), YEAR[0], 2024) == 2024
    assert via_avro(reg, col("int"), YEAR[1], 2024) == 2024
    assert via_json(col("long"), DURATION[0], -90_000_000) == -90_000_000
    assert via_avro(reg, col("long"), DURATION[1], 90_000_000) == 90_000_000


def test_a_year_key_is_no_date() -> None:
    spec = TableSpec(name="public.k", topic="k", key_columns=("y",), key_format="json",
                     columns=(Column("y", col("date"), True), Column("v", col("int"))))
    key = {"schema": {"type": "struct", "fields": [{**YEAR[0], "field": "y"}]},
           "payload": {"y": 2024}}
    with pytest.raises(RecordError, match="a year number"):
        codecs.key_decoder(spec)(json.dumps(key).encode())


# ------------------------------------------------------------------ bytes encodings


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def unscaled(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 8) // 8, "big", signed=True)


def micros(d: dt.datetime) -> int:
    delta = d - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


DEC = "org.apache.kafka.connect.data.Decimal"
DEC_J = {"type": "bytes", "name": DEC, "version": 1,
         "parameters": {"scale": "2", "connect.decimal.precision": "10"}}
DEC_A = {"type": "bytes", "scale": 2, "precision": 10, "connect.version": 1,
         "connect.parameters": {"scale": "2", "connect.decimal.precision": "10"},
         "connect.name": DEC, "logicalType": "decimal"}
VSD_J = {"type": "struct", "name": "io.debezium.data.VariableScaleDecimal", "version": 1,
         "fields": [{"type": "int32", "optional": False, "field": "scale"},
                    {"type": "bytes", "optional": False, "field": "value"}]}
VSD_A = {"type": "record", "name": "VariableScaleDecimal", "namespace": "io.debezium.data",
         "fields": [{"name": "scale", "type": "int"}, {"name": "value", "type": "bytes"}],
         "connect.version": 1, "connect.name": "io.debezium.data.VariableScaleDecimal"}
POINT_J = {"type": "struct", "name": "io.debezium.data.geometry.Point", "version": 1,
           "fields": [{"type": "double", "optional": False, "field": "x"},
                      {"type": "double", "optional": False, "field": "y"},
                      {"type": "bytes", "optional": True, "field": "wkb"},
                      {"type": "int32", "optional": True, "field": "srid"}]}
POINT_A = {"type": "record", "name": "Point", "namespace": "io.debezium.data.geometry",
           "fields": [{"name": "x", "type": "double"}, {"name": "y", "type": "double"},
                      {"name": "wkb", "type": ["null", "bytes"], "default": None},
                      {"name": "srid", "type": ["null", "int"], "default": None}],
           "connect.version": 1, "connect.name": "io.debezium.data.geometry.Point"}
WKB = b"\x01\x01\x00\x00\x00" + struct.pack("<dd", 1.5, -2.0)
MOON = dt.datetime(1969, 7, 20, 20, 17, 40, 123456, tzinfo=dt.UTC)
LAST = dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)
ZONED = named("io.debezium.time.ZonedTimestamp", "string", "string")
ZTIME = named("io.debezium.time.ZonedTime", "string", "string")
MICRO_TS = named("io.debezium.time.MicroTimestamp", "int64", "long")
MICRO_T = named("io.debezium.time.MicroTime", "int64", "long")
JSONF = named("io.debezium.data.Json", "string", "string")
ENUMSET = named("io.debezium.data.EnumSet", "string", "string", {"allowed": "a,b,c"})

# (column, (json schema, json value), (avro type, avro value), stored value or reason)
ZOO: dict[str, tuple[str, Any, Any, Any]] = {
    "Decimal precise": ("decimal(10,2)", (DEC_J, b64(unscaled(-123450))),
                        (DEC_A, Decimal("-1234.50")), "-1234.50"),
    "Decimal precise, string column": ("string", (DEC_J, b64(unscaled(1))),
                                       (DEC_A, Decimal("0.01")), "type_mismatch"),
    "decimal double": ("decimal(10,2)", ({"type": "double"}, 1234.5), ("double", 1234.5),
                       "1234.50"),
    "decimal string NaN": ("decimal(10,2)", ({"type": "string"}, "NaN"), ("string", "NaN"),
                           "type_mismatch"),
    "VariableScaleDecimal": ("decimal(20,5)", (VSD_J, {"scale": 3, "value": b64(unscaled(-12345))}),
                             (VSD_A, {"scale": 3, "value": unscaled(-12345)}), "-12.34500"),
    "Date before 1970": ("date", (named("io.debezium.time.Date", "int32", "int")[0], -365),
                         (named("io.debezium.time.Date", "int32", "int")[1], -365), -365),
    "connect Date (logicalType date)": (
        "date", ({"type": "int32", "name": "org.apache.kafka.connect.data.Date"}, -1),
        ({"type": "int", "connect.name": "org.apache.kafka.connect.data.Date",
          "logicalType": "date"}, dt.date(1969, 12, 31)), -1),
    "MicroTimestamp before 1970": ("timestamp", (MICRO_TS[0], micros(MOON)),
                                   (MICRO_TS[1], micros(MOON)), micros(MOON)),
    "MicroTimestamp 9999-12-31": ("timestamp", (MICRO_TS[0], micros(LAST)),
                                  (MICRO_TS[1], micros(LAST)), micros(LAST)),
    "MicroTimestamp PG infinity": ("timestamp", (MICRO_TS[0], 9223372036825200000),
                                   (MICRO_TS[1], 9223372036825200000), "type_mismatch"),
    "NanoTimestamp floored": (
        "timestamp", (named("io.debezium.time.NanoTimestamp", "int64", "long")[0],
                      micros(MOON) * 1000 + 789),
        (named("io.debezium.time.NanoTimestamp", "int64", "long")[1],
         micros(MOON) * 1000 + 789), micros(MOON)),
    "ZonedTimestamp 9 digits, offset": (
        "timestamp", (ZONED[0], "2024-03-02T09:30:00.123456789+05:30"),
        (ZONED[1], "2024-03-02T09:30:00.123456789+05:30"),
        micros(dt.datetime(2024, 3, 2, 4, 0, 0, 123456, tzinfo=dt.UTC))),
    "ZonedTimestamp 'infinity'": ("timestamp", (ZONED[0], "infinity"), (ZONED[1], "infinity"),
                                  "type_mismatch"),
    "ZonedTimestamp year 10000": ("timestamp", (ZONED[0], "+10000-01-01T00:00:00Z"),
                                  (ZONED[1], "+10000-01-01T00:00:00Z"), "type_mismatch"),
    "ZonedTime": ("time", (ZTIME[0], "10:15:30.123456Z"), (ZTIME[1], "10:15:30.123456Z"),
                  36_930_123_456),
    "MicroTime 24:00:00": ("time", (MICRO_T[0], 86_400_000_000), (MICRO_T[1], 86_400_000_000),
                           "type_mismatch"),
    "MicroTime MySQL -01:00": ("time", (MICRO_T[0], -3_600_000_000),
                               (MICRO_T[1], -3_600_000_000), "type_mismatch"),
    "BIT(10) little-endian": (
        "bytes", (named("io.debezium.data.Bits", "bytes", "bytes", {"length": "10"})[0], "AQI="),
        (named("io.debezium.data.Bits", "bytes", "bytes", {"length": "10"})[1], b"\x01\x02"),
        b"\x01\x02"),
    "EnumSet": ("string", (ENUMSET[0], "a,c"), (ENUMSET[1], "a,c"), "a,c"),
    "EnumSet, array column": ("array<string>", (ENUMSET[0], "a,c"), (ENUMSET[1], "a,c"),
                              "type_mismatch"),
    "Json": ("json", (JSONF[0], '{"a": [1, null]}'), (JSONF[1], '{"a": [1, null]}'),
             {"a": [1, None]}),
    "hstore map": ("map<string,string>",
                   ({"type": "map", "keys": {"type": "string"},
                     "values": {"type": "string", "optional": True}}, {"k": None}),
                   ({"type": "map", "values": ["null", "string"]}, {"k": None}), {"k": None}),
    "numeric[]": ("array<decimal(10,3)>",
                  ({"type": "array", "items": {**VSD_J, "optional": True}},
                   [{"scale": 3, "value": b64(unscaled(12345))}, None]),
                  ({"type": "array", "items": ["null", VSD_A]},
                   [{"scale": 3, "value": unscaled(12345)}, None]), ["12.345", None]),
    "Point": ("json", (POINT_J, {"x": 1.5, "y": -2.0, "wkb": b64(WKB), "srid": None}),
              (POINT_A, {"x": 1.5, "y": -2.0, "wkb": WKB, "srid": None}),
              {"x": 1.5, "y": -2.0, "wkb": b64(WKB), "srid": None}),
    "Uuid": ("uuid", (named("io.debezium.data.Uuid", "string", "string")[0],
                      "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"),
             (named("io.debezium.data.Uuid", "string", "string")[1],
              "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    "bytea base64-url-safe, plain bytes column": (
        "bytes", ({"type": "string"}, "-_8="), ("string", "-_8="), "type_mismatch"),
}


@pytest.mark.parametrize("label", list(ZOO))
def test_the_zoo(reg: FileRegistry, label: str) -> None:
    kind, (j_schema, j_value), (a_type, a_value), want = ZOO[label]
    t = col(kind)
    for call in (lambda: via_json(t, j_schema, j_value),
                 lambda: via_avro(reg, t, a_type, a_value)):
        if want == "type_mismatch":
            assert reason_of(call) == want
        else:
            assert call() == want

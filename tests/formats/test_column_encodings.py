"""Per-column `encoding`: how a column reads what schemaless producers write.

`decimal(p,s)` with `encoding: base64`: Debezium's decimal.handling.mode=precise
without a schema (base64 of the two's-complement unscaled integer, scale declared);
`timestamp` / `time` with `encoding: ms | s | us | ns`: integers in that unit since the
epoch / midnight (Debezium time.precision.mode connect -> ms, adaptive_time_microseconds
and adaptive -> µs for MicroTimestamp and MicroTime, adaptive -> ns for NanoTimestamp)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest

from materializer.catalog import describe, load_catalog_text
from materializer.catalog.ddl import parse_ddl
from materializer.columns import ColumnType, parse_type
from materializer.errors import RecordError
from materializer.formats import codecs
from materializer.ingest.apply import RowShaper
from materializer.specs import Column, TableSpec
from materializer.values import to_storage
from tests.support.catalog import errors_of

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
AT = dt.datetime(2024, 3, 1, 8, 0, 0, 123456, tzinfo=dt.UTC)


def micros(d: dt.datetime) -> int:
    delta = d - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def b64(n: int) -> str:
    size = max(1, (n.bit_length() + 8) // 8)
    return base64.b64encode(n.to_bytes(size, "big", signed=True)).decode()


def enc(text: str, encoding: str | None) -> ColumnType:
    t = parse_type(text)[0]
    return ColumnType(t.kind, t.precision, t.scale, t.item, encoding)


# --------------------------------------------------------------------------- values


def test_base64_decimal_reads_debezium_precise() -> None:
    conv = to_storage(enc("decimal(10,2)", "base64"))
    assert conv("AeI6") == "1234.50"  # Debezium's own example: 0x01e23a = 123450
    assert conv(b64(-5)) == "-0.05"
    assert conv(b64(0)) == "0.00"
    assert conv(b"\x01\xe2\x3a") == "1234.50"  # bytes (Avro bytes without a logical type)
    assert conv(19.9) == "19.90" and conv(7) == "7.00"  # numbers stay numbers


def test_base64_decimal_never_guesses_a_string_is_a_literal() -> None:
    """"1234" is valid base64 (0xd76df8) and a decimal literal: the column says which."""
    assert base64.b64decode("1234") == b"\xd7\x6d\xf8"  # -2658824 as two's complement
    assert to_storage(enc("decimal(10,2)", "base64"))("1234") == "-26588.24"
    assert to_storage(enc("decimal(10,2)", None))("1234") == "1234.00"


@pytest.mark.parametrize("text", ["12.50", "AeI6!", "", "A"])
def test_base64_decimal_refuses_text_that_is_not_base64(text: str) -> None:
    with pytest.raises(ValueError, match="base64"):
        to_storage(enc("decimal(10,2)", "base64"))(text)


def test_base64_decimal_checks_the_precision() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        to_storage(enc("decimal(4,2)", "base64"))(b64(123450))


def test_without_encoding_base64_is_not_a_decimal() -> None:
    with pytest.raises(ValueError):
        to_storage(enc("decimal(10,2)", None))("AeI6")


@pytest.mark.parametrize(("encoding", "value"), [
    (None, micros(AT) // 1000), ("ms", micros(AT) // 1000), ("us", micros(AT)),
    ("ns", micros(AT) * 1000 + 999), ("s", micros(AT) // 1_000_000)])
def test_timestamp_units(encoding: str | None, value: int) -> None:
    want = {None: micros(AT) // 1000 * 1000, "ms": micros(AT) // 1000 * 1000,
            "s": micros(AT) // 1_000_000 * 1_000_000}.get(encoding, micros(AT))
    assert to_storage(enc("timestamp", encoding))(value) == want


def test_seconds_are_outside_the_range_checked_in_their_unit() -> None:
    conv = to_storage(enc("timestamp", "s"))
    assert conv(-1) == -1_000_000 and conv("1970-01-01T00:00:01Z") == 1_000_000
    with pytest.raises(ValueError, match="253402300800 s is outside"):
        conv(253_402_300_800)  # 10000-01-01


def test_timestamp_units_keep_iso_text_and_check_the_range() -> None:
    conv = to_storage(enc("timestamp", "us"))
    assert conv("2024-03-01T08:00:00.123456Z") == micros(AT)
    assert conv(-1) == -1
    with pytest.raises(ValueError, match="years 1-9999"):
        conv(2**62)
    assert to_storage(enc("timestamp", "ns"))(-1) == -1  # floor, as Debezium's NanoTimestamp


@pytest.mark.parametrize(("encoding", "value"), [
    ("ms", 45_296_789), ("us", 45_296_789_012), ("ns", 45_296_789_012_345), ("s", 45_296)])
def test_time_units(encoding: str, value: int) -> None:
    stored = to_storage(enc("time", encoding))(value)
    assert stored == {"ms": 45_296_789_000, "us": 45_296_789_012, "ns": 45_296_789_012,
                      "s": 45_296_000_000}[encoding]
    with pytest.raises(ValueError, match="not a time of day"):
        to_storage(enc("time", encoding))(value * 10**6)


def test_str_of_a_type_does_not_show_the_encoding() -> None:
    """The stored identity names types by str(): an encoding changes how input is read,
    not what is stored."""
    assert str(enc("timestamp", "us")) == "timestamp"


# ---------------------------------------------------------------- schemaless Debezium


def table(columns: dict[str, ColumnType], value_format: str) -> TableSpec:
    cols = tuple(Column(n, t, n == "id") for n, t in columns.items())
    return TableSpec(name="public.t", topic="t", columns=cols, key_columns=("id",),
                     value_format=value_format)  # type: ignore[arg-type]


def shaped(spec: TableSpec, fields: Any) -> dict[str, Any]:
    layout = spec.column_names
    return dict(zip(layout, RowShaper(spec, layout).shape(fields, (1,)), strict=True))


def test_schemaless_debezium_json_with_encodings() -> None:
    spec = table({"id": parse_type("int")[0], "balance": enc("decimal(10,2)", "base64"),
                  "created_at": enc("timestamp", "us"), "opens": enc("time", "us")},
                 "debezium-json")
    event = {"op": "c", "before": None, "after": {
        "id": 1, "balance": "AeI6", "created_at": micros(AT), "opens": 8 * 3_600_000_000}}
    got = shaped(spec, codecs.value_decoder(spec)(json.dumps(event).encode()))
    assert got == {"id": 1, "balance": "1234.50", "created_at": micros(AT),
                   "opens": 8 * 3_600_000_000}


@pytest.mark.parametrize("unit", ["us", "s"])
def test_a_connect_schema_wins_over_the_column_encoding(unit: str) -> None:
    """With a schema the unit is known: a Connect Timestamp (ms) in a column whose
    schemaless encoding is µs (or s) is still read as ms."""
    spec = table({"id": parse_type("int")[0], "at": enc("timestamp", unit),
                  "t": enc("time", "ns" if unit == "us" else "s"),
                  "d": enc("decimal(10,2)", "base64")}, "json")
    value = {"schema": {"type": "struct", "fields": [
        {"field": "id", "type": "int32"},
        {"field": "at", "type": "int64", "name": "org.apache.kafka.connect.data.Timestamp"},
        {"field": "t", "type": "int32", "name": "org.apache.kafka.connect.data.Time"},
        {"field": "d", "type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
         "parameters": {"scale": "2"}}]},
        "payload": {"id": 1, "at": 1_000, "t": 1_000, "d": "AeI6"}}
    got = shaped(spec, codecs.value_decoder(spec)(json.dumps(value).encode()))
    assert got == {"id": 1, "at": 1_000_000, "t": 1_000_000, "d": "1234.50"}


def test_a_bad_base64_decimal_is_a_type_mismatch() -> None:
    spec = table({"id": parse_type("int")[0], "d": enc("decimal(10,2)", "base64")}, "json")
    with pytest.raises(RecordError) as e:
        shaped(spec, codecs.value_decoder(spec)(b'{"id": 1, "d": "12.5"}'))
    assert e.value.reason == "type_mismatch"


def test_an_encoded_key_column() -> None:
    spec = TableSpec(name="public.t", topic="t", columns=(
        Column("id", enc("timestamp", "ns"), True), Column("v", parse_type("int")[0])),
        key_columns=("id",), key_format="json")
    assert codecs.key_decoder(spec)(str(micros(AT) * 1000).encode()) == (micros(AT),)


# ------------------------------------------------------------------ declarations


YAML = """\
tables:
  - name: t
    topic: t
    columns:
      id: int
      balance: {type: "decimal(10,2)", encoding: base64}
      created_at: {type: timestamp, encoding: us}
      opens:
        type: time not null
        encoding: ns
      plain: timestamp
    primary_key: [id]
"""


def test_yaml_column_mapping_with_encoding() -> None:
    cat = load_catalog_text(YAML, "t.yaml")
    spec = cat.tables[0]
    assert spec.column("balance").type == enc("decimal(10,2)", "base64")
    assert spec.column("created_at").type == enc("timestamp", "us")
    assert spec.column("opens").type == enc("time", "ns") and spec.column("opens").not_null
    assert spec.column("plain").type == enc("timestamp", None)
    text = describe(cat)
    assert "balance     decimal(10,2) encoding base64" in text
    assert "created_at  timestamp encoding us" in text
    assert "opens       time NOT NULL encoding ns" in text


def test_ddl_encoding_modifier_gives_the_same_spec() -> None:
    sql = """CREATE TABLE t (id INT PRIMARY KEY, balance DECIMAL(10, 2) ENCODING 'base64',
             created_at TIMESTAMP ENCODING 'us', opens TIME NOT NULL ENCODING 'ns',
             plain TIMESTAMP) WITH (kafka_topic='t', key_format='json');"""
    (ddl_spec,) = parse_ddl(sql)
    yaml_spec = load_catalog_text(YAML, "t.yaml").tables[0]
    assert ddl_spec.columns == yaml_spec.columns


@pytest.mark.parametrize(("column", "needle"), [
    ("{type: int, encoding: base64}", "`encoding: base64` does not apply to int"),
    ("{type: timestamp, encoding: micros}", "use one of ms, s, us, ns"),
    ("{type: \"decimal(10,2)\", encoding: us}", "use base64"),
    ("{encoding: us}", "has no `type`"),
    ("{type: timestamp, unit: us}", "unknown key `unit`"),
])
def test_encoding_errors(column: str, needle: str) -> None:
    text = f"tables:\n  - name: t\n    topic: t\n    columns:\n      id: int\n" \
           f"      c: {column}\n    primary_key: [id]\n"
    diags = errors_of(text)
    assert any(needle in d.message for d in diags), diags
    assert all(d.line == 6 for d in diags), diags


def test_ddl_encoding_error() -> None:
    diags = errors_of("sql: |\n  CREATE TABLE t (id INT PRIMARY KEY, v INT ENCODING 'us')\n"
                      "    WITH (kafka_topic='t', key_format='json');\n")
    assert any("`ENCODING 'us'` does not apply to int" in d.message for d in diags), diags

"""ksqlDB fidelity: the KAFKA key format (ksqlDB's default), JSON_SR, the PARTITIONS,
REPLICAS and TIMESTAMP properties, PROTOBUF_NOSR refused plainly, and bad-record messages
that say whether the key or the value failed."""

from __future__ import annotations

import json
import struct
import textwrap
from typing import Any

import pytest

from materializer.catalog import describe, load_catalog_text
from materializer.catalog.ddl import parse_ddl
from materializer.columns import parse_type
from materializer.errors import RecordError
from materializer.formats import codecs
from materializer.formats.wire import header
from materializer.ingest.apply import TableApplier
from materializer.specs import Column, TableSpec
from materializer.testing import FakeRecord
from tests.support.catalog import errors_of


def spec(columns: dict[str, str], key: list[str], key_format: str = "json",
         value_format: str = "json") -> TableSpec:
    cols = tuple(Column(n, parse_type(t)[0], n in key) for n, t in columns.items())
    return TableSpec(name="public.t", topic="t", columns=cols, key_columns=tuple(key),
                     key_format=key_format,  # type: ignore[arg-type]
                     value_format=value_format)  # type: ignore[arg-type]


def yaml_file(body: str) -> str:
    return "tables:\n" + textwrap.indent(textwrap.dedent(body), "  ")


def sql_file(sql: str) -> str:
    return "sql: |\n" + textwrap.indent(textwrap.dedent(sql).strip() + "\n", "  ")


# --------------------------------------------------------------------- KAFKA key format


@pytest.mark.parametrize(("ddl_type", "raw", "stored"), [
    ("int", (-7).to_bytes(4, "big", signed=True), -7),
    ("long", (2**40).to_bytes(8, "big", signed=True), 2**40),
    ("double", struct.pack(">d", -1.5), -1.5),
    ("string", "Zoë".encode(), "Zoë"),
    ("bytes", b"\x00\xff", b"\x00\xff"),
])
def test_kafka_key_format_reads_kafkas_serializers(ddl_type: str, raw: bytes,
                                                   stored: Any) -> None:
    s = spec({"k": ddl_type, "v": "string"}, ["k"], key_format="kafka")
    assert codecs.key_decoder(s)(raw) == (stored,)


@pytest.mark.parametrize(("ddl_type", "raw", "reason"), [
    ("int", b"\x00\x01", "bad_length"),
    ("long", b"\x00" * 4, "bad_length"),
    ("double", b"\x00" * 4, "bad_length"),
    ("double", struct.pack(">d", float("nan")), "key_mismatch"),
    ("string", b"\xff", "bad_utf8"),
])
def test_kafka_key_format_bad_bytes(ddl_type: str, raw: bytes, reason: str) -> None:
    s = spec({"k": ddl_type, "v": "string"}, ["k"], key_format="kafka")
    with pytest.raises(RecordError) as e:
        codecs.key_decoder(s)(raw)
    assert e.value.reason == reason
    assert str(e.value).startswith("key: ")


def test_yaml_key_format_kafka() -> None:
    cat = load_catalog_text(yaml_file("""\
        - name: t
          topic: t
          columns: {id: long, v: string}
          primary_key: [id]
          key_format: kafka
        """), "t.yaml")
    assert cat.tables[0].key_format == "kafka"
    assert "formats: key kafka, value json" in describe(cat)


@pytest.mark.parametrize(("columns", "key", "needle"), [
    ("{a: int, b: int, v: string}", "[a, b]", "one key column"),
    ("{a: \"decimal(10,2)\", v: string}", "[a]", "decimal(10,2)"),
    ("{a: boolean, v: string}", "[a]", "boolean"),
    ("{a: timestamp, v: string}", "[a]", "INT, BIGINT, DOUBLE, STRING, BYTES"),
])
def test_yaml_key_format_kafka_errors(columns: str, key: str, needle: str) -> None:
    diags = errors_of(yaml_file(f"""\
        - name: t
          topic: t
          columns: {columns}
          primary_key: {key}
          key_format: kafka
        """))
    assert any(needle in d.message for d in diags), diags
    assert all((d.line, d.column) == (6, 17) for d in diags), diags


def test_kafka_is_the_ddl_default_key_format() -> None:
    text = sql_file("""
        CREATE TABLE users (id INT PRIMARY KEY, name STRING)
          WITH (kafka_topic='users', value_format='JSON');
        CREATE TABLE named (id INT PRIMARY KEY, name STRING)
          WITH (kafka_topic='named', key_format='JSON', value_format='JSON');
        CREATE TABLE both (id INT PRIMARY KEY, name STRING)
          WITH (kafka_topic='both', format='JSON');
        """)
    cat = load_catalog_text(text, "t.yaml")
    users, named, both = cat.tables
    assert users.key_format == "kafka" and named.key_format == "json"
    assert both.key_format == "json"
    out = describe(cat)
    assert "formats: key kafka (ksqlDB's default when KEY_FORMAT is not named), value json" \
        in out
    assert out.count("ksqlDB's default") == 1


def test_yaml_default_key_format_stays_json() -> None:
    cat = load_catalog_text(yaml_file("""\
        - name: t
          topic: t
          columns: {id: int, v: string}
          primary_key: [id]
        """), "t.yaml")
    assert cat.tables[0].key_format == "json"


def test_ddl_default_key_format_and_a_composite_key() -> None:
    diags = errors_of(sql_file("""
        CREATE TABLE orders (c INT, o INT, total DOUBLE, PRIMARY KEY (c, o))
          WITH (kafka_topic='orders', value_format='JSON');
        """))
    (d,) = diags
    assert "KEY_FORMAT is not named" in d.message and "KEY_FORMAT='JSON'" in d.message
    assert (d.line, d.column) == (2, 3)


def test_ddl_key_format_kafka_named() -> None:
    (s,) = parse_ddl("CREATE STREAM s (k STRING KEY, v INT) "
                     "WITH (kafka_topic='s', key_format='KAFKA')")
    assert s.key_format == "kafka"


# ------------------------------------------------------------ PARTITIONS, REPLICAS, TIMESTAMP


def test_partitions_replicas_and_timestamp_in_ddl() -> None:
    text = sql_file("""
        CREATE TABLE t (id INT PRIMARY KEY, ts TIMESTAMP, v STRING)
          WITH (kafka_topic='t', value_format='JSON', partitions=6, replicas=3,
                timestamp='ts');
        CREATE STREAM s (k STRING KEY, at BIGINT)
          WITH (kafka_topic='s', key_format='KAFKA', PARTITIONS=2, TIMESTAMP='at');
        """)
    cat = load_catalog_text(text, "t.yaml")
    t, s = cat.relations
    assert (t.partitions, t.replicas, t.timestamp_column) == (6, 3, "ts")
    assert (s.partitions, s.replicas, s.timestamp_column) == (2, None, "at")
    out = describe(cat)
    assert "topic: t (if missing, created with 6 partitions, replication factor 3)" in out
    assert "topic: s (if missing, created with 2 partitions)" in out
    assert "timestamp: ts (event time)" in out


def test_partitions_replicas_and_timestamp_in_yaml_give_the_same_spec() -> None:
    from_yaml = load_catalog_text(yaml_file("""\
        - name: t
          topic: t
          columns: {id: int, ts: timestamp, v: string}
          primary_key: [id]
          key_format: kafka
          partitions: 6
          replicas: 3
          timestamp_column: ts
        """), "t.yaml")
    (from_sql,) = parse_ddl("CREATE TABLE t (id INT PRIMARY KEY, ts TIMESTAMP, v STRING) "
                            "WITH (kafka_topic='t', partitions=6, replicas=3, "
                            "timestamp='ts')")
    assert from_yaml.tables[0] == from_sql


@pytest.mark.parametrize(("props", "needle"), [
    ("partitions=0", "`partitions` must be at least 1"),
    ("replicas=-1", "`replicas` must be at least 1"),
    ("partitions='many'", "whole number"),
    ("timestamp='nope'", "timestamp column `nope` is not declared"),
    ("timestamp='v'", "has type string"),
])
def test_property_errors(props: str, needle: str) -> None:
    diags = errors_of(sql_file(f"""
        CREATE TABLE t (id INT PRIMARY KEY, ts TIMESTAMP, v STRING)
          WITH (kafka_topic='t', {props});
        """))
    assert any(needle in d.message for d in diags), diags


# ----------------------------------------------------------------------------- JSON_SR


def test_json_sr_key_and_value_skip_the_wire_header() -> None:
    s = spec({"a": "int", "b": "string", "v": "double"}, ["a", "b"], key_format="json_sr",
             value_format="json_sr")
    key = header(7) + json.dumps({"a": 1, "b": "x"}).encode()
    value = header(8) + json.dumps({"v": 2.5}).encode()
    assert codecs.key_decoder(s)(key) == (1, "x")
    assert codecs.value_decoder(s)(value) == {"v": 2.5}


@pytest.mark.parametrize(("raw", "reason"), [
    (b'{"v": 1}', "bad_magic"), (b"\x00\x00", "truncated"),
    (header(1) + b"{nope", "malformed_json"), (header(1) + b'{"x": 1}', "no_declared_columns")])
def test_json_sr_bad_values(raw: bytes, reason: str) -> None:
    s = spec({"id": "int", "v": "double"}, ["id"], value_format="json_sr")
    with pytest.raises(RecordError) as e:
        codecs.value_decoder(s)(raw)
    assert e.value.reason == reason
    assert str(e.value).startswith("value: ")


def test_json_sr_in_yaml_and_ddl() -> None:
    cat = load_catalog_text(yaml_file("""\
        - name: t
          topic: t
          columns: {id: int, v: string}
          primary_key: [id]
          key_format: json_sr
          value_format: json_sr
        """), "t.yaml")
    (from_sql,) = parse_ddl("CREATE TABLE t (id INT PRIMARY KEY, v STRING) "
                            "WITH (kafka_topic='t', format='JSON_SR')", has_registry=False)
    assert cat.tables[0] == from_sql


def test_protobuf_without_a_registry_is_refused_plainly() -> None:
    """PROTOBUF_NOSR has no schema to read by; PROTOBUF is read through the registry
    (tests/formats/test_protobuf.py)."""
    diags = errors_of(sql_file("""
        CREATE TABLE t (id INT PRIMARY KEY, v STRING)
          WITH (kafka_topic='t', value_format='PROTOBUF_NOSR');
        """))
    assert any("not supported" in d.message and "protobuf" in d.message.lower()
               for d in diags), diags


# ------------------------------------------------------------------- key: / value: prefixes


@pytest.mark.parametrize(("key_format", "value_format", "key", "value", "part"), [
    ("json", "json", b"{nope", b'{"v": "x"}', "key"),
    ("json", "json", b"1", b"{nope", "value"),
    ("int", "json", b"\x00", b'{"v": "x"}', "key"),
    ("json", "json", b"1", b'{"v": 5}', "value"),       # type mismatch in the row
    ("json", "json", b'{"id": null}', b'{"v": "x"}', "key"),  # null key column
    ("json", "debezium-json", b"1", b'{"op": "x"}', "value"),
    ("json", "string", b"1", b"\xff", "value"),
])
def test_bad_record_messages_name_the_part(key_format: str, value_format: str, key: bytes,
                                           value: bytes, part: str) -> None:
    s = spec({"id": "int", "v": "string"}, ["id"], key_format, value_format)
    applier = TableApplier(s, s.column_names, codecs.key_decoder(s), codecs.value_decoder(s))

    class Writer:
        def get(self, _k: bytes) -> None:
            return None

        def put_rows(self, _rows: Any) -> None:
            pass

    out = applier.apply(Writer(), 0, [FakeRecord(key, value, 0)])  # type: ignore[arg-type]
    r = out.fatal or out.rejected[0]  # a null key is dropped (null_key: drop)
    assert r.message.startswith(f"{part}: "), r.message
    assert not r.message.startswith(f"{part}: {part}: ")

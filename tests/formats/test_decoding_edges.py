"""Decoding edges, each pinned on every format path that meets it:

- a key without a field for a key column is `key_mismatch` (a key of another shape), not
  a null key: JSON objects, Connect-wrapped structs, Avro key records; a field that is
  there and null stays a null key column;
- an Avro time-millis / time-micros that is no time of day (negative, a day or more) is
  `type_mismatch`, as the same integer in JSON is, on the generated reader and on
  fastavro's (recursive schemas, schemas no reader is generated for) alike;
- a Protobuf map with bool keys gives "true" / "false", as Protobuf's JSON mapping does;
- a schema whose fields match a column only ambiguously (`Name` and `NAME` for `name`)
  is refused saying so, not as a record unrelated to the columns.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message_factory import GetMessageClass

from connectors.registry import FileRegistry, RestRegistry
from materializer.columns import parse_type
from materializer.errors import RecordError
from materializer.formats import codecs
from materializer.formats.avro_compiled import NotTimeOfDay, compile_reader, fastavro_schema
from materializer.formats.avro_schema import named_types
from materializer.formats.wire import avro_encoder
from materializer.ingest.relation import open_relation
from materializer.specs import Column, RelationSpec, StreamSpec, TableSpec
from materializer.testing import FakeRecord
from tests.support.protobuf import serializer, shaped
from tests.support.registry_server import RegistryServer

F = descriptor_pb2.FieldDescriptorProto


def spec(columns: dict[str, str], key: list[str], key_format: str = "json",
         value_format: str = "json", stream: bool = False) -> RelationSpec:
    cols = tuple(Column(n, parse_type(t)[0], n in key and not stream)
                 for n, t in columns.items())
    cls = StreamSpec if stream else TableSpec
    return cls(name="public.t", topic="t", columns=cols, key_columns=tuple(key),
               key_format=key_format, value_format=value_format)  # type: ignore[arg-type]


def refusal(decode: Any, raw: bytes) -> tuple[str, str]:
    with pytest.raises(RecordError) as e:
        decode(raw)
    return e.value.reason, str(e.value)


@pytest.fixture()
def reg(tmp_path: Path) -> FileRegistry:
    return FileRegistry(tmp_path / "registry")


# ------------------------------------------------------------- a key lacking a key column

COMPOSITE = {"a": "int", "b": "int", "v": "string"}


@pytest.mark.parametrize("stream", [False, True])
def test_a_json_key_object_lacking_a_key_column_is_a_key_mismatch(stream: bool) -> None:
    decode = codecs.key_decoder(spec(COMPOSITE, ["a", "b"], stream=stream))
    reason, message = refusal(decode, b'{"a": 1}')
    assert reason == "key_mismatch" and message == "key: the key object lacks column 'b'"
    reason, message = refusal(decode, b"{}")
    assert reason == "key_mismatch" and "lacks columns 'a', 'b'" in message
    assert decode(b'{"a": 1, "b": null}') == (1, None)  # there and null: a null key column
    assert decode(b'{"b": 2, "a": 1}') == (1, 2)


def test_a_table_key_object_lacking_a_column_and_with_another_field_names_both() -> None:
    decode = codecs.key_decoder(spec(COMPOSITE, ["a", "b"]))
    reason, message = refusal(decode, b'{"a": 1, "B": 2}')
    assert reason == "key_mismatch"
    assert "lacks column 'b' and has field(s) 'B' that are not primary key columns" in message
    stream = codecs.key_decoder(spec(COMPOSITE, ["a", "b"], stream=True))
    assert refusal(stream, b'{"a": 1, "c": 2}') == ("key_mismatch",
                                                    "key: the key object lacks column 'b'")
    assert stream(b'{"a": 1, "b": 2, "c": 3}') == (1, 2)  # fewer key columns than fields


def connect_key(fields: dict[str, str], payload: dict[str, Any]) -> bytes:
    schema = {"type": "struct", "optional": False, "name": "K",
              "fields": [{"field": n, "type": t, "optional": True} for n, t in fields.items()]}
    return json.dumps({"schema": schema, "payload": payload}).encode()


@pytest.mark.parametrize("stream", [False, True])
def test_a_connect_key_struct_lacking_a_key_column_is_a_key_mismatch(stream: bool) -> None:
    decode = codecs.key_decoder(spec(COMPOSITE, ["a", "b"], stream=stream))
    reason, message = refusal(decode, connect_key({"a": "int32"}, {"a": 1}))
    assert reason == "key_mismatch" and "lacks column 'b'" in message
    both = {"a": "int32", "b": "int32"}
    assert decode(connect_key(both, {"a": 1, "b": None})) == (1, None)
    assert decode(connect_key(both, {"a": 1, "b": 2})) == (1, 2)


@pytest.mark.parametrize("stream", [False, True])
def test_an_avro_key_record_lacking_a_key_column_is_a_key_mismatch(
        reg: FileRegistry, stream: bool) -> None:
    decode = codecs.key_decoder(spec(COMPOSITE, ["a", "b"], "avro", stream=stream), reg)
    lacking = avro_encoder(reg, "k", {"type": "record", "name": "K",
                                      "fields": [{"name": "a", "type": "int"}]})
    reason, message = refusal(decode, lacking({"a": 1}))
    assert reason == "key_mismatch"
    assert message == "key: the Avro key record K has no field for key column 'b' (its fields: a)"
    nullable = avro_encoder(reg, "k", {"type": "record", "name": "K", "fields": [
        {"name": "a", "type": "int"}, {"name": "b", "type": ["null", "int"]}]})
    assert decode(nullable({"a": 1, "b": None})) == (1, None)  # a null key column
    assert decode(nullable({"a": 1, "b": 2})) == (1, 2)


def test_an_avro_key_record_matching_a_column_only_ambiguously_says_so(
        reg: FileRegistry) -> None:
    decode = codecs.key_decoder(spec({"id": "int", "v": "string"}, ["id"], "avro"), reg)
    two = avro_encoder(reg, "k", {"type": "record", "name": "K", "fields": [
        {"name": "ID", "type": "int"}, {"name": "Id", "type": "int"}]})
    reason, message = refusal(decode, two({"ID": 1, "Id": 2}))
    assert reason == "key_mismatch"
    assert "no field for key column 'id'; column 'id' matches the fields ID, Id only " \
        "case-insensitively, which is ambiguous" in message


def test_a_key_lacking_a_column_is_routed_by_on_error_not_dropped_as_a_null_key(
        tmp_path: Path) -> None:
    table = spec(COMPOSITE, ["a", "b"])
    assert isinstance(table, TableSpec) and table.on_error == "fail"
    assert table.null_key == "drop"
    rel = open_relation(table, tmp_path / "data", map_size=1 << 24)
    records = [FakeRecord(b'{"a": 1, "b": null}', b'{"v": "x"}', 0),
               FakeRecord(b'{"a": 1}', b'{"v": "y"}', 1)]
    out = rel.apply({0: records})[0]
    assert [(r.reason, r.policy) for r in out.rejected] == [("null_key", "drop")]
    assert out.fatal is not None and out.fatal.offset == 1
    assert (out.fatal.reason, out.fatal.message) == ("key_mismatch",
                                                     "key: the key object lacks column 'b'")


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("framed", [False, True])
def test_a_null_composite_json_key_is_a_null_key_as_a_one_column_one_is(
        stream: bool, framed: bool) -> None:
    # JSON null, and Connect's null payload (JsonConverter's null key with schemas.enable),
    # were key_mismatch for a composite key (stopping a worker under on_error: fail) while
    # a one-column key read them as the null key that `null_key` handles
    header = b"\x00\x00\x00\x00\x01" if framed else b""
    wrapped = json.dumps({"schema": {"type": "struct", "optional": True, "name": "K",
                                     "fields": [{"field": "a", "type": "int32"},
                                                {"field": "b", "type": "int32"}]},
                          "payload": None}).encode()
    fmt = "json_sr" if framed else "json"
    composite = codecs.key_decoder(spec(COMPOSITE, ["a", "b"], fmt, stream=stream))
    one = codecs.key_decoder(spec({"a": "int", "v": "string"}, ["a"], fmt, stream=stream))
    for raw in (b"null", wrapped):
        assert composite(header + raw) == (None, None)
        assert one(header + raw) == (None,)
    assert refusal(composite, header + b"[1, 2]")[0] == "key_mismatch"  # still no object


def test_a_null_composite_json_key_is_dropped_by_the_null_key_policy(tmp_path: Path) -> None:
    table = spec(COMPOSITE, ["a", "b"])
    assert isinstance(table, TableSpec) and table.on_error == "fail"
    rel = open_relation(table, tmp_path / "data", map_size=1 << 24)
    out = rel.apply({0: [FakeRecord(b"null", b'{"v": "x"}', 0),
                         FakeRecord(b'{"a": 1, "b": 2}', b'{"v": "y"}', 1)]})[0]
    assert out.fatal is None
    assert [(r.reason, r.policy) for r in out.rejected] == [("null_key", "drop")]


# ------------------------------------------------------- Avro times that are no time of day

MILLIS = {"type": "int", "logicalType": "time-millis"}
MICROS = {"type": "long", "logicalType": "time-micros"}
DAY_MS, DAY_US = 86_400_000, 86_400_000_000
NO_TIMES = [(MILLIS, -5, "-5 ms"), (MILLIS, -60_000, "-60000 ms"),
            (MILLIS, DAY_MS, f"{DAY_MS} ms"), (MICROS, -1, "-1 µs"),
            (MICROS, -60_000_000, "-60000000 µs"), (MICROS, DAY_US, f"{DAY_US} µs")]
TIMES = [(MILLIS, 0, dt.time(0)), (MILLIS, DAY_MS - 1, dt.time(23, 59, 59, 999000)),
         (MICROS, DAY_US - 1, dt.time(23, 59, 59, 999999))]

# one record of each way it is read: the generated reader, fastavro's pure-Python reader
# (a recursive schema), fastavro's compiled reader (an array of items taking no bytes)
SHAPES = {
    "generated": lambda t: {"type": "record", "name": "V", "fields": [
        {"name": "id", "type": "int"}, {"name": "tm", "type": t}]},
    "recursive": lambda t: {"type": "record", "name": "V", "fields": [
        {"name": "id", "type": "int"}, {"name": "tm", "type": t},
        {"name": "next", "type": ["null", "V"], "default": None}]},
    "zero-byte items": lambda t: {"type": "record", "name": "V", "fields": [
        {"name": "id", "type": "int"}, {"name": "tm", "type": t},
        {"name": "nothing", "type": {"type": "array", "items": "null"}}]},
}


def _record(shape: str, value: int) -> dict[str, Any]:
    return {"id": 1, "tm": value, **({"next": None} if shape == "recursive" else {}),
            **({"nothing": [None]} if shape == "zero-byte items" else {})}


def test_the_shapes_take_the_readers_they_are_meant_to() -> None:
    for shape, make in SHAPES.items():
        parsed = fastavro.parse_schema(make(MILLIS))
        generated = shape != "recursive" and compile_reader(parsed, named_types(parsed))
        assert bool(generated) is (shape == "generated"), shape


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize(("node", "value", "text"), NO_TIMES)
def test_an_avro_time_that_is_no_time_of_day_is_a_type_mismatch(
        reg: FileRegistry, shape: str, node: dict[str, Any], value: int, text: str) -> None:
    table = spec({"id": "int", "tm": "time"}, ["id"], "int", "avro")
    enc = avro_encoder(reg, "v", SHAPES[shape](node))
    reason, message = refusal(codecs.value_decoder(table, reg), enc(_record(shape, value)))
    assert reason == "type_mismatch"
    assert message == f"value: {text} is not a time of day (Avro {node['logicalType']})"


def test_json_refuses_the_same_integer(tmp_path: Path) -> None:
    """The row shaper's own refusal of a JSON integer, the reference for the Avro one."""
    table = spec({"id": "int", "tm": "time"}, ["id"])
    rel = open_relation(table, tmp_path / "data", map_size=1 << 24)
    out = rel.apply({0: [FakeRecord(b"1", b'{"tm": -5}', 0)]})[0]
    assert out.fatal is not None
    assert (out.fatal.reason, out.fatal.message) == (
        "type_mismatch", "value: column 'tm': -5 ms is not a time of day")


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize(("node", "value", "time"), TIMES)
def test_avro_times_of_day_still_read_on_every_reader(
        reg: FileRegistry, shape: str, node: dict[str, Any], value: int, time: dt.time) -> None:
    table = spec({"id": "int", "tm": "time"}, ["id"], "int", "avro")
    enc = avro_encoder(reg, "v", SHAPES[shape](node))
    assert codecs.value_decoder(table, reg)(enc(_record(shape, value)))["tm"] == time


def test_an_avro_key_time_that_is_no_time_of_day_is_a_key_mismatch(reg: FileRegistry) -> None:
    decode = codecs.key_decoder(spec({"tm": "time", "v": "string"}, ["tm"], "avro"), reg)
    enc = avro_encoder(reg, "k", MILLIS)
    assert refusal(decode, enc(-5)) == (
        "key_mismatch", "key: -5 ms is not a time of day (Avro time-millis)")
    assert decode(enc(5)) == (5000,)


def test_both_readers_refuse_what_fastavro_alone_would_wrap_round() -> None:
    parsed = fastavro.parse_schema(SHAPES["generated"](MILLIS))
    out = io.BytesIO()
    fastavro.schemaless_writer(out, parsed, {"id": 1, "tm": -5})
    body = out.getvalue()
    assert fastavro.schemaless_reader(io.BytesIO(body), parsed, None)["tm"] == \
        dt.time(0, 0, 0, 995000)  # what this is about: fastavro wraps it round
    read = compile_reader(parsed, named_types(parsed))
    assert read is not None
    with pytest.raises(NotTimeOfDay):
        read(body, 0)
    checked = fastavro_schema(parsed)
    with pytest.raises(NotTimeOfDay):
        fastavro.schemaless_reader(io.BytesIO(body), checked, None)
    # a copy: the registry's parsed schema is shared and left as it is
    assert checked is not parsed and parsed["fields"][1]["type"] == MILLIS
    plain = fastavro.parse_schema({"type": "record", "name": "P",
                                   "fields": [{"name": "n", "type": "long"}]})
    assert fastavro_schema(plain) is plain


# ------------------------------------------------------------------ Protobuf bool map keys


def _flags_message() -> Any:
    f = descriptor_pb2.FileDescriptorProto(name="edges/flags.proto", package="edges",
                                           syntax="proto3")
    m = f.message_type.add(name="Flags")
    m.field.add(name="id", number=1, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    for number, (name, key_type) in enumerate([("by_bool", F.TYPE_BOOL),
                                               ("by_int", F.TYPE_INT32)], 2):
        entry = f"{name.title().replace('_', '')}Entry"
        m.field.add(name=name, number=number, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
                    type_name=f".edges.Flags.{entry}")
        e = m.nested_type.add(name=entry)
        e.options.map_entry = True
        e.field.add(name="key", number=1, type=key_type, label=F.LABEL_OPTIONAL)
        e.field.add(name="value", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return GetMessageClass(pool.FindMessageTypeByName("edges.Flags"))


def test_protobuf_bool_map_keys_are_written_as_protobuf_json_writes_them() -> None:
    cls = _flags_message()
    table = spec({"id": "int", "by_bool": "map<string,string>", "by_int": "map<string,string>"},
                 ["id"], "int", "protobuf")
    msg = cls(id=1)
    msg.by_bool[True] = "yes"
    msg.by_bool[False] = "no"
    msg.by_int[-7] = "minus seven"
    with RegistryServer() as r:
        fields = codecs.value_decoder(table, RestRegistry(r.url))(serializer(r, cls, "f")(msg))
    assert shaped(table, fields, (1,)) == {
        "id": 1, "by_bool": {"true": "yes", "false": "no"}, "by_int": {"-7": "minus seven"}}


# ------------------------------------- a column matched only ambiguously, case-insensitively

AMBIGUOUS = "column 'name' matches the fields Name, NAME only case-insensitively, which is " \
    "ambiguous"
NAMED = {"id": "int", "name": "string", "age": "long"}


def test_an_avro_schema_matching_a_column_only_ambiguously_says_so(reg: FileRegistry) -> None:
    table = spec(NAMED, ["id"], "int", "avro")
    enc = avro_encoder(reg, "v", {"type": "record", "name": "V", "fields": [
        {"name": "Name", "type": "string"}, {"name": "NAME", "type": "string"}]})
    reason, message = refusal(codecs.value_decoder(table, reg), enc({"Name": "x", "NAME": "y"}))
    assert reason == "no_declared_columns"
    assert message == f"value: the Avro record V matches no declared column: {AMBIGUOUS} " \
        "(declare the column with one field's exact name)"
    unrelated = avro_encoder(reg, "v", {"type": "record", "name": "W", "fields": [
        {"name": "other", "type": "string"}]})
    reason, message = refusal(codecs.value_decoder(table, reg), unrelated({"other": "x"}))
    assert reason == "no_declared_columns" and "shares no field" in message  # as before


def test_a_debezium_avro_after_record_matching_only_ambiguously_says_so(
        reg: FileRegistry) -> None:
    table = spec(NAMED, ["id"], "int", "debezium-avro")
    row = {"type": "record", "name": "Value", "fields": [
        {"name": "Name", "type": "string"}, {"name": "NAME", "type": "string"}]}
    enc = avro_encoder(reg, "v", {"type": "record", "name": "Envelope", "fields": [
        {"name": "before", "type": ["null", row]}, {"name": "after", "type": ["null", "Value"]},
        {"name": "op", "type": "string"}]})
    reason, message = refusal(codecs.value_decoder(table, reg),
                              enc({"before": None, "after": {"Name": "x", "NAME": "y"},
                                   "op": "c"}))
    assert reason == "no_declared_columns" and AMBIGUOUS in message


def test_a_connect_json_schema_matching_only_ambiguously_says_so() -> None:
    table = spec(NAMED, ["id"])
    schema = {"type": "struct", "optional": False, "fields": [
        {"field": "Name", "type": "string"}, {"field": "NAME", "type": "string"}]}
    raw = json.dumps({"schema": schema, "payload": {"Name": "x", "NAME": "y"}}).encode()
    reason, message = refusal(codecs.value_decoder(table), raw)
    assert reason == "no_declared_columns"
    assert message.startswith("value: the JSON object matches no declared column")
    assert AMBIGUOUS in message


def test_a_protobuf_message_matching_only_ambiguously_says_so() -> None:
    f = descriptor_pb2.FileDescriptorProto(name="edges/names.proto", package="edges",
                                           syntax="proto3")
    m = f.message_type.add(name="Names")
    m.field.add(name="Name", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    m.field.add(name="NAME", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    cls = GetMessageClass(pool.FindMessageTypeByName("edges.Names"))
    table = spec(NAMED, ["id"], "int", "protobuf")
    with RegistryServer() as r:
        raw = serializer(r, cls, "n")(cls(Name="x", NAME="y"))
        reason, message = refusal(codecs.value_decoder(table, RestRegistry(r.url)), raw)
    assert reason == "no_declared_columns"
    assert message.startswith("value: Protobuf message edges.Names matches no declared column")
    assert AMBIGUOUS in message

"""`value_format: protobuf` (probe h78): a record whose bytes carry a field its schema
declares in a form the schema does not read (another wire type: a producer serializing
another version of the message under this schema id; a number a closed proto2 enum does
not name) is refused, not stored as the field's default; enum fields fill int and long
columns with their numbers, and an enum number without a name is refused for a string
column with a message saying what to declare."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, timestamp_pb2

from connectors.registry import RestRegistry
from materializer.formats import codecs
from tests.support.protobuf import message_class, reason_of, registry_server, serializer, shaped
from tests.support.protobuf import table as users_table
from tests.support.registry_server import RegistryServer

F = descriptor_pb2.FieldDescriptorProto
registry = pytest.fixture(scope="module", name="registry")(registry_server)


def _file() -> descriptor_pb2.FileDescriptorProto:
    """unread/u.proto: proto3 U (string, int, open enum, nested message, Timestamp) and
    proto2 file unread/p.proto's P (a closed enum) are built separately."""
    f = descriptor_pb2.FileDescriptorProto(
        name="unread/u.proto", package="unread", syntax="proto3",
        dependency=["google/protobuf/timestamp.proto"])
    m = f.message_type.add(name="U")
    for name, number, kind, type_name, repeated in (
            ("id", 1, F.TYPE_INT32, "", False), ("name", 2, F.TYPE_STRING, "", False),
            ("n", 3, F.TYPE_INT32, "", False), ("color", 4, F.TYPE_ENUM, ".unread.Color", False),
            ("colors", 5, F.TYPE_ENUM, ".unread.Color", True),
            ("inner", 6, F.TYPE_MESSAGE, ".unread.U", False),
            ("at", 7, F.TYPE_MESSAGE, ".google.protobuf.Timestamp", False),
            ("other", 8, F.TYPE_STRING, "", False)):
        fd = m.field.add(name=name, number=number, type=kind,
                         label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
        if type_name:
            fd.type_name = type_name
    e = f.enum_type.add(name="Color")
    for name, number in (("RED", 0), ("GREEN", 1), ("BLUE", 2)):
        e.value.add(name=name, number=number)
    return f


def _proto2() -> descriptor_pb2.FileDescriptorProto:
    f = descriptor_pb2.FileDescriptorProto(name="unread/p.proto", package="unread2",
                                           syntax="proto2")
    m = f.message_type.add(name="P")
    m.field.add(name="id", number=1, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    m.field.add(name="size", number=2, type=F.TYPE_ENUM, label=F.LABEL_OPTIONAL,
                type_name=".unread2.Size")
    e = f.enum_type.add(name="Size")
    e.value.add(name="SMALL", number=1)
    e.value.add(name="LARGE", number=2)
    return f


@pytest.fixture(scope="module", name="pool")
def _pool() -> Iterator[descriptor_pool.DescriptorPool]:
    p = descriptor_pool.DescriptorPool()
    p.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    p.Add(_file())
    p.Add(_proto2())
    yield p


def _tag(number: int, wire_type: int) -> bytes:
    v, out = number << 3 | wire_type, b""
    while v >= 0x80:
        out, v = out + bytes([v & 0x7F | 0x80]), v >> 7
    return out + bytes([v])


def _header(registry: RegistryServer, cls: Any, topic: str = "unread") -> bytes:
    """The wire header (magic, schema id, message index 0) the serializer writes for `cls`."""
    raw = serializer(registry, cls, topic)(cls())
    assert raw[5] == 0
    return raw[:6]


def _read(registry: RegistryServer, raw: bytes, columns: dict[str, str]) -> dict[str, Any]:
    spec = users_table(columns)
    row = shaped(spec, codecs.value_decoder(spec, RestRegistry(registry.url))(raw), (1,))
    return {k: v for k, v in row.items() if k != "id"}


def _reason(registry: RegistryServer, raw: bytes, columns: dict[str, str]
            ) -> tuple[str, str]:
    return reason_of(users_table(columns), RestRegistry(registry.url), raw)


COLUMNS = {"id": "int", "name": "string", "n": "int"}


def test_a_field_carried_under_another_wire_type_is_refused_not_read_as_its_default(
        pool: descriptor_pool.DescriptorPool, registry: RegistryServer) -> None:
    """`name` (a string) carried as a varint, `n` (an int32) as bytes: the Protobuf parser
    keeps both as unknown fields and reads them as "" and 0, which were stored (a producer
    serializing `string n = 3` under the id of the version with `int32 n = 3`)."""
    head = _header(registry, message_class(pool, "unread.U"))
    good = head + _tag(2, 2) + b"\x03Ann" + _tag(3, 0) + b"\x07"
    assert _read(registry, good, COLUMNS) == {"name": "Ann", "n": 7}
    for body, field in ((_tag(2, 0) + b"\x07", "name"), (_tag(3, 2) + b"\x02hi", "n"),
                        (_tag(3, 5) + b"\x01\x00\x00\x00", "n")):
        reason, message = _reason(registry, head + body, COLUMNS)
        assert reason == "protobuf_decode", message
        assert f"field {field!r}" in message and "not written with the schema" in message


def test_a_mismatched_field_inside_a_nested_or_well_known_message_is_refused(
        pool: descriptor_pool.DescriptorPool, registry: RegistryServer) -> None:
    """`inner.name` as a varint was `"name": ""` in the json column; Timestamp.seconds as
    bytes read as 1970-01-01."""
    head = _header(registry, message_class(pool, "unread.U"))
    inner = _tag(2, 0) + b"\x07"
    reason, message = _reason(registry, head + _tag(6, 2) + bytes([len(inner)]) + inner,
                              {"id": "int", "inner": "json"})
    assert reason == "protobuf_decode" and "field 'name'" in message
    at = _tag(1, 2) + b"\x01\x05"
    reason, message = _reason(registry, head + _tag(7, 2) + bytes([len(at)]) + at,
                              {"id": "int", "at": "timestamp"})
    assert reason == "protobuf_decode" and "field 'seconds'" in message


def test_unknown_numbers_and_fields_no_column_reads_are_ignored(
        pool: descriptor_pool.DescriptorPool, registry: RegistryServer) -> None:
    """A number the schema does not declare holds no field of it (every Protobuf reader
    skips it), and a mismatched field that fills no column loses nothing of the row."""
    head = _header(registry, message_class(pool, "unread.U"))
    body = _tag(99, 2) + b"\x01x" + _tag(8, 0) + b"\x01" + _tag(2, 2) + b"\x01a"
    assert _read(registry, head + body, COLUMNS) == {"name": "a", "n": 0}


def test_a_number_a_closed_enum_does_not_name_is_refused_not_null(
        pool: descriptor_pool.DescriptorPool, registry: RegistryServer) -> None:
    """proto2 enums are closed: the parser keeps 7 as an unknown field and `size` reads as
    unset, which was stored as NULL."""
    head = _header(registry, message_class(pool, "unread2.P"), "unread2")
    columns = {"id": "int", "size": "string"}
    assert _read(registry, head + _tag(2, 0) + b"\x02", columns) == {"size": "LARGE"}
    reason, message = _reason(registry, head + _tag(2, 0) + b"\x07", columns)
    assert reason == "protobuf_decode" and "carries 7" in message, message
    assert "unread2.Size" in message


def test_enums_fill_int_columns_with_their_numbers(
        pool: descriptor_pool.DescriptorPool, registry: RegistryServer) -> None:
    """An int column took the number of an enum value the schema does not name (9) but
    refused every named one ("expected int, got str")."""
    cls = message_class(pool, "unread.U")
    columns = {"id": "int", "color": "int", "colors": "array<long>"}
    raw = serializer(registry, cls)(cls(color=2, colors=[1, 9, 0]))
    assert _read(registry, raw, columns) == {"color": 2, "colors": [1, 9, 0]}
    raw = serializer(registry, cls)(cls(color=9))
    assert _read(registry, raw, columns) == {"color": 9, "colors": []}
    names = {"id": "int", "color": "string", "colors": "array<string>", "inner": "json"}
    msg = cls(color=1, colors=[2])
    msg.inner.color = 9
    assert _read(registry, serializer(registry, cls)(msg), names) == {
        "color": "GREEN", "colors": ["BLUE"], "inner": {
            "id": 0, "name": "", "n": 0, "color": 9, "colors": [], "inner": None, "at": None,
            "other": ""}}


@pytest.mark.parametrize("value", [{"color": 9}, {"colors": [1, 9]}])
def test_an_enum_number_without_a_name_is_refused_for_a_string_column_saying_why(
        pool: descriptor_pool.DescriptorPool, registry: RegistryServer,
        value: dict[str, Any]) -> None:
    cls = message_class(pool, "unread.U")
    raw = serializer(registry, cls)(cls(**value))
    reason, message = _reason(registry, raw, {"id": "int", "color": "string",
                                               "colors": "array<string>"})
    assert reason == "type_mismatch"
    assert "9 is no value of enum unread.Color" in message
    assert "declare the column int or long" in message


# ------------------------------------------------------------------------------ on a broker


@pytest.mark.integration
def test_a_worker_routes_the_mismatched_record_and_keeps_the_others(
        session_broker: Any, tmp_path: Path, pool: descriptor_pool.DescriptorPool) -> None:
    from connectors.producer import produce_records
    from materializer.store import Store
    from tests.support.workers import materialize, read_topic, unique, write_config

    topic = session_broker.create_topic(unique("pb-unread"), partitions=1)
    dead = session_broker.create_topic(unique("pb-unread-dlt"), partitions=1)
    cls = message_class(pool, "unread.U")
    with RegistryServer() as reg:
        ser = serializer(reg, cls, topic)
        head = ser(cls())[:6]
        records = [(struct.pack(">i", 1), ser(cls(name="Ann", n=1, color=2))),
                   (struct.pack(">i", 2), head + _tag(2, 0) + b"\x07" + _tag(3, 0) + b"\x02"),
                   (struct.pack(">i", 3), ser(cls(name="Cy", n=3)))]
        ends = produce_records(session_broker.kafka_config(), topic, records)
        cfg = write_config(tmp_path / "t.yaml", session_broker, f"""\
schema_registry: {{url: '{reg.url}'}}
tables:
  - name: u
    topic: {topic}
    key_format: int
    value_format: protobuf
    on_error: dead_letter
    dead_letter_topic: {dead}
    primary_key: [id]
    columns: {{id: int, name: string, n: int, color: int}}
""")
        materialize(cfg, {"u": ends})
    with Store.open(tmp_path / "data") as store:
        t = store.table("u")
        assert t.get(1) == {"id": 1, "name": "Ann", "n": 1, "color": 2}
        assert t.get(2) is None
        assert t.get(3) == {"id": 3, "name": "Cy", "n": 3, "color": 0}
    ((_, offset, _, value),) = read_topic(session_broker, dead, {0: 1})
    assert offset == 0 and value == records[1][1]

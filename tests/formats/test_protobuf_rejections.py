"""`value_format: protobuf`: every way a record can be bad, each with its precise reason
(bad bytes, unknown or unusable schemas, values a column cannot hold, a message type that
shares no field with the columns)."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool

from connectors.registry import RestRegistry
from materializer.formats import codecs
from materializer.formats.protobuf import message_indexes
from tests.support.protobuf import (
    full_user,
    message_class,
    reason_of,
    registry_server,
    serializer,
    shop_pool,
    table,
)
from tests.support.registry_server import RegistryServer

pool = pytest.fixture(scope="module", name="pool")(shop_pool)
registry = pytest.fixture(scope="module", name="registry")(registry_server)

# ------------------------------------------------------------------------------ bad records


def test_bad_records_are_rejected_with_a_precise_reason(
        pool: descriptor_pool.DescriptorPool, registry: RegistryServer) -> None:
    good = serializer(registry, message_class(pool, "shop.User"))(full_user(pool))
    sid = int.from_bytes(good[1:5], "big")
    avro_id = registry.add("plain-value", {"type": "record", "name": "R", "fields": []})
    reg = RestRegistry(registry.url, {"unknown.id.wait.ms": "0"})
    spec = table()
    _, body_at = message_indexes(good)
    header = good[:body_at]
    assert header[5:] == b"\x02\x02"  # one index (zigzag 2), User's: 1 (zigzag 2)
    assert reason_of(spec, reg, good[:-3])[0] == "protobuf_decode"
    assert reason_of(spec, reg, header + b"\xff\xff\xff")[0] == "protobuf_decode"
    assert reason_of(spec, reg, b"{\"id\": 1}")[0] == "bad_magic"
    assert reason_of(spec, reg, b"\x00\x00\x00")[0] == "truncated"
    assert reason_of(spec, reg, good[:5])[0] == "truncated"  # no message indexes
    assert reason_of(spec, reg, b"\x00" + (99999).to_bytes(4, "big") + b"\x00")[0] == \
        "unknown_schema"
    reason, message = reason_of(spec, reg, b"\x00" + avro_id.to_bytes(4, "big") + b"\x00")
    assert reason == "bad_schema" and "AVRO schema, not Protobuf" in message
    # a path to a message the schema does not have: count 1, index 9 (zigzag)
    reason, message = reason_of(spec, reg, good[:5] + b"\x02\x12" + good[body_at:])
    assert reason == "bad_schema" and "names no message" in message
    assert reason_of(spec, reg, good[:5] + b"\x7f" + good[body_at:])[0] == "bad_schema"
    assert str(sid) in message


def test_a_registry_that_serves_only_proto_text_is_a_bad_schema(
        registry: RegistryServer) -> None:
    sid = registry.add("text-value", 'syntax = "proto3"; message M { int32 id = 1; }',
                       "PROTOBUF")
    reason, message = reason_of(table(), RestRegistry(registry.url),
                                b"\x00" + sid.to_bytes(4, "big") + b"\x00\x08\x01")
    assert reason == "bad_schema" and "format=serialized" in message


def test_an_import_no_reader_has_is_a_bad_schema(registry: RegistryServer) -> None:
    f = descriptor_pb2.FileDescriptorProto(name="lonely.proto", syntax="proto3",
                                           dependency=["elsewhere/thing.proto"])
    f.message_type.add(name="M")
    import base64
    sid = registry.add("lonely-value", base64.b64encode(f.SerializeToString()).decode(),
                       "PROTOBUF")
    reason, message = reason_of(table(), RestRegistry(registry.url),
                                b"\x00" + sid.to_bytes(4, "big") + b"\x00")
    assert reason == "bad_schema" and "elsewhere/thing.proto" in message


def test_an_out_of_range_well_known_value_is_a_type_mismatch(
        pool: descriptor_pool.DescriptorPool, registry: RegistryServer) -> None:
    u = message_class(pool, "shop.User")(id=1)
    u.born.year = 2024  # month 0: a partial date, no calendar date
    raw = serializer(registry, type(u))(u)
    reason, message = reason_of(table(), RestRegistry(registry.url), raw)
    assert reason == "type_mismatch" and "'born'" in message


def test_a_message_that_shares_no_field_with_the_columns_is_rejected_not_stored_as_nulls(
        pool: descriptor_pool.DescriptorPool, registry: RegistryServer) -> None:
    good = serializer(registry, message_class(pool, "shop.User"))(full_user(pool))
    reg = RestRegistry(registry.url)
    reason, message = reason_of(table({"uid": "int", "handle": "string"}, key="uid"), reg, good)
    assert reason == "no_declared_columns" and "it has id, name" in message
    # sharing one column (the key's field) is enough: the others are absent, not lost
    assert codecs.value_decoder(table({"id": "int", "handle": "string"}), reg)(good) == {}


"""Protobuf message types built at run time from FileDescriptorProtos (what protoc would
generate, so the tests need no compiler), records of them written by confluent-kafka's
ProtobufSerializer against the in-memory registry, and the table that reads them: shared
by tests/formats/test_protobuf.py and test_protobuf_rejections.py, which make
`shop_pool` and `registry_server` their module-scoped fixtures `pool` and `registry`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.confluent.type import decimal_pb2
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)
from google.protobuf.message_factory import GetMessageClass
from google.type import date_pb2, timeofday_pb2

from materializer.columns import parse_type
from materializer.errors import RecordError
from materializer.formats import codecs
from materializer.ingest.apply import RowShaper
from materializer.specs import Column, RelationSpec, TableSpec
from tests.support.registry_server import RegistryServer

F = descriptor_pb2.FieldDescriptorProto
WELL_KNOWN = (timestamp_pb2, date_pb2, timeofday_pb2, decimal_pb2, wrappers_pb2, struct_pb2)


def _field(m: Any, name: str, number: int, kind: int, type_name: str = "",
           repeated: bool = False, **kw: Any) -> None:
    f = m.field.add(name=name, number=number, type=kind,
                    label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL, **kw)
    if type_name:
        f.type_name = type_name


def address_file() -> descriptor_pb2.FileDescriptorProto:
    f = descriptor_pb2.FileDescriptorProto(name="shop/address.proto", package="shop",
                                           syntax="proto3")
    m = f.message_type.add(name="Address")
    _field(m, "city", 1, F.TYPE_STRING)
    _field(m, "zip", 2, F.TYPE_STRING)
    return f


def user_file() -> descriptor_pb2.FileDescriptorProto:
    """shop/user.proto: Account (first), then User with every kind of field and a nested
    Event message; imports well-known types and shop/address.proto (a reference)."""
    f = descriptor_pb2.FileDescriptorProto(
        name="shop/user.proto", package="shop", syntax="proto3",
        dependency=["google/protobuf/timestamp.proto", "google/type/date.proto",
                    "google/type/timeofday.proto", "confluent/type/decimal.proto",
                    "google/protobuf/wrappers.proto", "google/protobuf/struct.proto",
                    "shop/address.proto"])
    acct = f.message_type.add(name="Account")
    _field(acct, "owner", 1, F.TYPE_STRING)
    m = f.message_type.add(name="User")
    _field(m, "id", 1, F.TYPE_INT32)
    _field(m, "name", 2, F.TYPE_STRING)
    _field(m, "age", 3, F.TYPE_INT64)
    _field(m, "score", 4, F.TYPE_DOUBLE)
    _field(m, "active", 5, F.TYPE_BOOL)
    _field(m, "created", 6, F.TYPE_MESSAGE, ".google.protobuf.Timestamp")
    _field(m, "born", 7, F.TYPE_MESSAGE, ".google.type.Date")
    _field(m, "wakes", 8, F.TYPE_MESSAGE, ".google.type.TimeOfDay")
    _field(m, "balance", 9, F.TYPE_MESSAGE, ".confluent.type.Decimal")
    _field(m, "nick", 10, F.TYPE_MESSAGE, ".google.protobuf.StringValue")
    _field(m, "attrs", 11, F.TYPE_MESSAGE, ".google.protobuf.Struct")
    _field(m, "tags", 12, F.TYPE_STRING, repeated=True)
    _field(m, "email", 13, F.TYPE_STRING, proto3_optional=True, oneof_index=0)
    m.oneof_decl.add(name="_email")
    _field(m, "tier", 14, F.TYPE_ENUM, ".shop.Tier")
    _field(m, "home", 15, F.TYPE_MESSAGE, ".shop.Address")
    _field(m, "limits", 16, F.TYPE_MESSAGE, ".shop.User.LimitsEntry", repeated=True)
    _field(m, "photo", 17, F.TYPE_BYTES)
    entry = m.nested_type.add(name="LimitsEntry")
    _field(entry, "key", 1, F.TYPE_STRING)
    _field(entry, "value", 2, F.TYPE_INT32)
    entry.options.map_entry = True
    event = m.nested_type.add(name="Event")
    _field(event, "what", 1, F.TYPE_STRING)
    e = f.enum_type.add(name="Tier")
    e.value.add(name="FREE", number=0)
    e.value.add(name="GOLD", number=1)
    return f


def shop_pool() -> descriptor_pool.DescriptorPool:
    """The well-known types, shop/address.proto and shop/user.proto in a new pool."""
    p = descriptor_pool.DescriptorPool()
    for mod in WELL_KNOWN:
        p.AddSerializedFile(mod.DESCRIPTOR.serialized_pb)
    p.Add(address_file())
    p.Add(user_file())
    return p


def message_class(pool: descriptor_pool.DescriptorPool, name: str) -> Any:
    return GetMessageClass(pool.FindMessageTypeByName(name))


def registry_server() -> Iterator[RegistryServer]:
    """An in-memory registry for the length of a test module."""
    with RegistryServer() as r:
        yield r


def serializer(registry: RegistryServer, cls: Any, topic: str = "users") -> Any:
    ser = ProtobufSerializer(cls, SchemaRegistryClient({"url": registry.url}),
                             {"use.deprecated.format": False})
    return lambda msg: ser(msg, SerializationContext(topic, MessageField.VALUE))


COLUMNS = {"id": "int", "name": "string", "age": "long", "score": "double",
           "active": "boolean", "created": "timestamp", "born": "date", "wakes": "time",
           "balance": "decimal(38,2)", "nick": "string", "attrs": "json",
           "tags": "array<string>", "email": "string", "tier": "string", "home": "json",
           "limits": "map<string,int>", "photo": "bytes"}


def table(columns: dict[str, str] | None = None, key: str = "id") -> TableSpec:
    cols = tuple(Column(n, parse_type(t)[0], n == key)
                 for n, t in (columns or COLUMNS).items())
    return TableSpec(name="shop.users", topic="users", columns=cols, key_columns=(key,),
                     key_format="int", value_format="protobuf")


def shaped(spec: RelationSpec, fields: Any, key: tuple[Any, ...]) -> dict[str, Any]:
    layout = spec.column_names
    return dict(zip(layout, RowShaper(spec, layout).shape(fields, key), strict=True))


def full_user(pool: descriptor_pool.DescriptorPool) -> Any:
    u = message_class(pool, "shop.User")(id=7, name="Ann", age=2**40, score=1.5, active=True,
                                         tags=["a", "b"], tier=1, email="ann@x",
                                         photo=b"\x00\xff")
    u.created.seconds, u.created.nanos = 1_700_000_000, 123_456_000
    u.born.year, u.born.month, u.born.day = 1990, 5, 3
    u.wakes.hours, u.wakes.minutes, u.wakes.seconds = 6, 30, 15
    big = 123456789012345678901234567890123  # 33 digits: past the default decimal context
    u.balance.value = big.to_bytes(14, "big", signed=True)
    u.balance.scale = 2
    u.nick.value = "annie"
    u.attrs.update({"x": 1, "y": [True, "s"]})
    u.home.city = "Lyon"
    u.limits["daily"] = 5
    return u




def reason_of(spec: RelationSpec, reg: Any, raw: bytes) -> tuple[str, str]:
    """The rejection reason and message of the value `raw` read for `spec`."""
    with pytest.raises(RecordError) as e:
        codecs.value_decoder(spec, reg)(raw)
    assert str(e.value).startswith("value: "), str(e.value)
    return e.value.reason, str(e.value)

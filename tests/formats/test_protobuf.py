"""`value_format: protobuf` (ksqlDB VALUE_FORMAT='PROTOBUF'): records written by
confluent-kafka's own ProtobufSerializer against a registry, read by the descriptor the
registry serves (no .proto compiler), with well-known types, nested message paths,
schema references and every way a record can be bad.

The message types are built at run time from FileDescriptorProtos (what protoc would
generate), so the tests need no compiler either.
"""

from __future__ import annotations

import datetime as dt
import decimal
import struct
from collections.abc import Iterator
from pathlib import Path
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

from connectors.registry import FileRegistry, RestRegistry
from materializer.catalog.load import load_catalog
from materializer.columns import parse_type
from materializer.errors import ConfigError, RecordError
from materializer.formats import codecs
from materializer.formats.protobuf import message_indexes
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


@pytest.fixture(scope="module")
def pool() -> descriptor_pool.DescriptorPool:
    p = descriptor_pool.DescriptorPool()
    for mod in WELL_KNOWN:
        p.AddSerializedFile(mod.DESCRIPTOR.serialized_pb)
    p.Add(address_file())
    p.Add(user_file())
    return p


def message_class(pool: descriptor_pool.DescriptorPool, name: str) -> Any:
    return GetMessageClass(pool.FindMessageTypeByName(name))


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryServer]:
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


# ------------------------------------------------------------------------------ values


def test_serializer_records_read_back_with_every_kind_of_field(
        pool: descriptor_pool.DescriptorPool, registry: RegistryServer) -> None:
    spec = table()
    raw = serializer(registry, message_class(pool, "shop.User"))(full_user(pool))
    fields = codecs.value_decoder(spec, RestRegistry(registry.url))(raw)
    assert shaped(spec, fields, (7,)) == shaped(spec, {
        "name": "Ann", "age": 2**40, "score": 1.5, "active": True,
        "created": dt.datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=dt.UTC),
        "born": dt.date(1990, 5, 3), "wakes": dt.time(6, 30, 15),
        "balance": decimal.Decimal("1234567890123456789012345678901.23"), "nick": "annie",
        "attrs": {"x": 1.0, "y": [True, "s"]}, "tags": ["a", "b"], "email": "ann@x",
        "tier": "GOLD", "home": {"city": "Lyon", "zip": ""}, "limits": {"daily": 5},
        "photo": b"\x00\xff"}, (7,))


def test_unset_fields_are_null_where_protobuf_has_presence_else_defaults(
        pool: descriptor_pool.DescriptorPool, registry: RegistryServer) -> None:
    spec = table()
    raw = serializer(registry, message_class(pool, "shop.User"))(
        message_class(pool, "shop.User")(id=8))
    fields = codecs.value_decoder(spec, RestRegistry(registry.url))(raw)
    assert fields == {"name": "", "age": 0, "score": 0.0, "active": False, "created": None,
                      "born": None, "wakes": None, "balance": None, "nick": None,
                      "attrs": None, "tags": [], "email": None, "tier": "FREE",
                      "home": None, "limits": {}, "photo": b""}


def test_upper_case_field_names_match_columns_and_unknown_fields_are_ignored(
        pool: descriptor_pool.DescriptorPool, registry: RegistryServer) -> None:
    spec = table({"id": "int", "NAME": "string", "missing": "string"})
    raw = serializer(registry, message_class(pool, "shop.User"))(full_user(pool))
    assert codecs.value_decoder(spec, RestRegistry(registry.url))(raw) == {"NAME": "Ann"}


def test_a_nested_message_and_a_later_message_are_found_by_their_index_path(
        pool: descriptor_pool.DescriptorPool, registry: RegistryServer) -> None:
    event = message_class(pool, "shop.User.Event")(what="login")
    raw = serializer(registry, type(event), "events")(event)
    path, _ = message_indexes(raw)
    assert path == (1, 1)  # User is the second message, Event its second nested type
    spec = table({"id": "int", "what": "string"})
    assert codecs.value_decoder(spec, RestRegistry(registry.url))(raw) == {"what": "login"}
    acct = message_class(pool, "shop.Account")(owner="o")
    raw = serializer(registry, type(acct), "accounts")(acct)
    assert raw[5] == 0  # the first message: one zero byte
    spec = table({"id": "int", "owner": "string"})
    assert codecs.value_decoder(spec, RestRegistry(registry.url))(raw) == {"owner": "o"}


def test_schema_references_are_resolved_through_the_registry(
        pool: descriptor_pool.DescriptorPool, registry: RegistryServer) -> None:
    """The serializer registers shop/address.proto as a reference of its own subject."""
    raw = serializer(registry, message_class(pool, "shop.User"))(full_user(pool))
    sid = int.from_bytes(raw[1:5], "big")
    assert [r["name"] for r in registry.references[sid]] == ["shop/address.proto"]
    reg = RestRegistry(registry.url)
    spec = table({"id": "int", "home": "json"})
    assert codecs.value_decoder(spec, reg)(raw) == {"home": {"city": "Lyon", "zip": ""}}


def test_the_registry_is_asked_once_per_schema(
        pool: descriptor_pool.DescriptorPool, registry: RegistryServer) -> None:
    ser = serializer(registry, message_class(pool, "shop.User"))
    raws = [ser(full_user(pool)) for _ in range(3)]
    dec = codecs.value_decoder(table(), RestRegistry(registry.url))
    dec(raws[0])
    before = registry.requests
    for raw in raws:
        dec(raw)
    assert registry.requests == before


# ------------------------------------------------------------------------------ bad records


def reason_of(spec: RelationSpec, reg: Any, raw: bytes) -> tuple[str, str]:
    with pytest.raises(RecordError) as e:
        codecs.value_decoder(spec, reg)(raw)
    assert str(e.value).startswith("value: "), str(e.value)
    return e.value.reason, str(e.value)


def test_bad_records_are_rejected_with_a_precise_reason(
        pool: descriptor_pool.DescriptorPool, registry: RegistryServer) -> None:
    good = serializer(registry, message_class(pool, "shop.User"))(full_user(pool))
    sid = int.from_bytes(good[1:5], "big")
    avro_id = registry.add("plain-value", {"type": "record", "name": "R", "fields": []})
    reg = RestRegistry(registry.url)
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


# ------------------------------------------------------------------------------ declarations


def test_no_registry_or_a_file_registry_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Confluent-compatible registry"):
        codecs.value_decoder(table(), None)
    with pytest.raises(ConfigError, match="registry kept as files"):
        codecs.value_decoder(table(), FileRegistry(tmp_path))


def catalog_errors(tmp_path: Path, registry: str, how: str) -> list[str]:
    body = {"yaml": """\
tables:
  - name: users
    topic: users
    columns: {id: int, name: string}
    primary_key: [id]
    key_format: int
    value_format: protobuf
""", "sql": """\
sql: |
  CREATE TABLE users (id INT PRIMARY KEY, name STRING)
    WITH (kafka_topic='users', value_format='PROTOBUF');
"""}[how]
    p = tmp_path / f"{how}.yaml"
    p.write_text(registry + body)
    try:
        load_catalog(p)
    except ConfigError as e:
        return [d.message for d in e.diagnostics]
    return []


@pytest.mark.parametrize("how", ["yaml", "sql"])
def test_the_catalog_accepts_protobuf_with_a_registry_url_only(tmp_path: Path,
                                                               how: str) -> None:
    assert catalog_errors(tmp_path, "schema_registry: {url: 'http://127.0.0.1:1'}\n",
                          how) == []
    (err,) = catalog_errors(tmp_path, "", how)
    assert "needs a Confluent-compatible schema registry" in err
    (err,) = catalog_errors(tmp_path, f"schema_registry: {{path: '{tmp_path}'}}\n", how)
    assert "kept as files holds Avro schemas only" in err


# ------------------------------------------------------------------------------ on a broker


@pytest.mark.integration
def test_protobuf_serializer_records_materialize_to_the_source_rows(
        session_broker: Any, tmp_path: Path, pool: descriptor_pool.DescriptorPool) -> None:
    from connectors.producer import produce_records
    from materializer.store import Store
    from tests.support.workers import materialize, unique, write_config

    topic = session_broker.create_topic(unique("pb-users"), partitions=2)
    cls = message_class(pool, "shop.User")
    with RegistryServer() as reg:
        ser = serializer(reg, cls, topic)
        source: dict[int, Any] = {}
        records: list[tuple[bytes | None, bytes | None]] = []
        for n in range(60):
            k = n % 17
            if n % 11 == 10:
                records.append((struct.pack(">i", k), None))
                source.pop(k, None)
                continue
            u = full_user(pool)
            u.id, u.name, u.age = k, f"user{n}", n
            u.balance.value = (n * 10**30 + 7).to_bytes(16, "big", signed=True)
            records.append((struct.pack(">i", k), ser(u)))
            source[k] = u
        ends = produce_records(session_broker.kafka_config(), topic, records)
        cfg = write_config(tmp_path / "t.yaml", session_broker, f"""\
schema_registry: {{url: '{reg.url}'}}
sql: |
  CREATE TABLE shop.users (id INT PRIMARY KEY, name STRING, age BIGINT,
                           balance DECIMAL(38, 2), created TIMESTAMP, tier STRING,
                           limits MAP<STRING, INT>)
    WITH (kafka_topic='{topic}', value_format='PROTOBUF', key_format='KAFKA');
""")
        materialize(cfg, {"shop.users": ends})
    with Store.open(tmp_path / "data") as store:
        t = store.table("shop.users")
        assert len(t) == len(source)
        for k, u in source.items():
            assert t.get(k) == {
                "id": k, "name": u.name, "age": u.age,
                "balance": decimal.Decimal(
                    f"{int.from_bytes(u.balance.value, 'big', signed=True)}E-2"),
                "created": dt.datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=dt.UTC),
                "tier": "GOLD", "limits": {"daily": 5}}


def test_without_the_protobuf_package_check_and_start_say_which_extra_to_install(
        tmp_path: Path) -> None:
    """Run where `google.protobuf` cannot be imported (a child process that blocks it)."""
    import subprocess
    import sys

    config = tmp_path / "c.yaml"
    config.write_text("schema_registry: {url: 'http://127.0.0.1:1'}\n"
                      "tables:\n  - {name: u, topic: u, columns: {id: int, n: string}, "
                      "primary_key: [id], key_format: int, value_format: protobuf}\n")
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "google.protobuf" or name.startswith("google.protobuf."):
            raise ImportError("blocked")
sys.meta_path.insert(0, Block())
from materializer.catalog.load import load_catalog
from materializer.errors import ConfigError
from materializer.formats import codecs
from materializer.columns import parse_type
from materializer.specs import Column, TableSpec
cols = (Column("id", parse_type("int")[0]), Column("n", parse_type("string")[0]))
spec = lambda: TableSpec(name="public.u", topic="u", columns=cols, key_columns=("id",),
                         value_format="protobuf")
try:
    load_catalog({str(config)!r})
except ConfigError as e:
    print(e)
try:
    codecs.value_decoder(spec(), object())
except ConfigError as e:
    print(e)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2, out.stdout
    assert "line 3" in lines[0] and "needs the protobuf package" in lines[0]
    assert all("pip install 'materializer[protobuf]'" in line for line in lines)


def test_a_message_that_shares_no_field_with_the_columns_is_rejected_not_stored_as_nulls(
        pool: descriptor_pool.DescriptorPool, registry: RegistryServer) -> None:
    good = serializer(registry, message_class(pool, "shop.User"))(full_user(pool))
    reg = RestRegistry(registry.url)
    reason, message = reason_of(table({"uid": "int", "handle": "string"}, key="uid"), reg, good)
    assert reason == "no_declared_columns" and "it has id, name" in message
    # sharing one column (the key's field) is enough: the others are absent, not lost
    assert codecs.value_decoder(table({"id": "int", "handle": "string"}), reg)(good) == {}

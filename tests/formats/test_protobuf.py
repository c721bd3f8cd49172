"""`value_format: protobuf` (ksqlDB VALUE_FORMAT='PROTOBUF'): records written by
confluent-kafka's own ProtobufSerializer against a registry, read by the descriptor the
registry serves (no .proto compiler), with well-known types, nested message paths,
schema references (every way a record can be bad: test_protobuf_rejections.py).

The message types are built at run time from FileDescriptorProtos (what protoc would
generate: tests/support/protobuf.py), so the tests need no compiler either.
"""

from __future__ import annotations

import datetime as dt
import decimal
import struct
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pool

from connectors.registry import FileRegistry, RestRegistry
from materializer.catalog.load import load_catalog
from materializer.errors import ConfigError
from materializer.formats import codecs
from materializer.formats.protobuf import message_indexes
from tests.support.protobuf import (
    full_user,
    message_class,
    registry_server,
    serializer,
    shaped,
    shop_pool,
    table,
)
from tests.support.registry_server import RegistryServer

pool = pytest.fixture(scope="module", name="pool")(shop_pool)
registry = pytest.fixture(scope="module", name="registry")(registry_server)

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



"""Avro keys and values in Confluent wire format, read with the writer schema."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from connectors.registry import FileRegistry, RestRegistry
from materializer.columns import parse_type
from materializer.errors import ConfigError, InfrastructureError, RecordError
from materializer.formats import codecs
from materializer.formats.wire import avro_encoder, wire_encode
from materializer.ingest.apply import RowShaper
from materializer.specs import Column, RelationSpec, StreamSpec, TableSpec
from materializer.store.keys import KeyCodec
from tests.support.registry_server import RegistryServer

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def load(name: str) -> Any:
    return json.loads((SCHEMAS / name).read_text())


def table(columns: dict[str, str], key: list[str], key_format: str = "avro",
          value_format: str = "avro", stream: bool = False) -> RelationSpec:
    cols = []
    for name, text in columns.items():
        t, not_null = parse_type(text)
        cols.append(Column(name, t, not_null or (name in key and not stream)))
    cls = StreamSpec if stream else TableSpec
    return cls(name="public.t", topic="t", columns=tuple(cols), key_columns=tuple(key),
               key_format=key_format, value_format=value_format)


USERS_COLUMNS = {"id": "int", "name": "string", "age": "long", "email": "string"}
USERS = table(USERS_COLUMNS, ["id"], key_format="int")


@pytest.fixture()
def reg(tmp_path: Path) -> FileRegistry:
    return FileRegistry(tmp_path / "registry")


def rows(spec: RelationSpec, reg: Any, values: list[bytes],
         keys: list[tuple[Any, ...]]) -> list[list[Any]]:
    dec = codecs.value_decoder(spec, reg)
    shaper = RowShaper(spec, spec.column_names)
    return [shaper.shape(dec(v), k) for v, k in zip(values, keys, strict=True)]


def test_two_schema_versions_interleaved(reg: FileRegistry) -> None:
    enc1 = avro_encoder(reg, "users-value", load("users-value-v1.avsc"))
    enc2 = avro_encoder(reg, "users-value", load("users-value-v2.avsc"))
    values = [
        enc1({"id": 1, "name": "Alice", "age": 30}),
        enc2({"id": 2, "name": "Bob", "age": None, "email": "bob@x"}),
        enc1({"id": 3, "name": "Carol", "age": None}),
        enc2({"id": 1, "name": "Alice", "age": 31, "email": "alice@x"}),
    ]
    got = rows(USERS, reg, values, [(1,), (2,), (3,), (1,)])
    assert got == [[1, "Alice", 30, None], [2, "Bob", None, "bob@x"],
                   [3, "Carol", None, None], [1, "Alice", 31, "alice@x"]]


def test_fields_that_are_not_columns_are_ignored(reg: FileRegistry) -> None:
    schema = {"type": "record", "name": "U", "fields": [
        {"name": "id", "type": "int"}, {"name": "name", "type": "string"},
        {"name": "extra", "type": {"type": "map", "values": "int"}},
        {"name": "nested", "type": {"type": "record", "name": "N",
                                    "fields": [{"name": "x", "type": "int"}]}}]}
    enc = avro_encoder(reg, "u", schema)
    got = rows(USERS, reg, [enc({"id": 9, "name": "n", "extra": {"a": 1},
                                 "nested": {"x": 1}})], [(9,)])
    assert got == [[9, "n", None, None]]


def test_not_null_column_missing_is_rejected(reg: FileRegistry) -> None:
    spec = table({"id": "int", "name": "string not null"}, ["id"], key_format="int")
    enc = avro_encoder(reg, "u", {"type": "record", "name": "U",
                                  "fields": [{"name": "id", "type": "int"}]})
    with pytest.raises(RecordError) as e:
        rows(spec, reg, [enc({"id": 1})], [(1,)])
    assert e.value.reason == "missing_column"


def test_case_insensitive_field_match(reg: FileRegistry) -> None:
    # ksqlDB writes upper-case field names
    enc = avro_encoder(reg, "ksql", {"type": "record", "name": "K", "fields": [
        {"name": "ID", "type": "int"}, {"name": "NAME", "type": ["null", "string"]},
        {"name": "AGE", "type": "long"}, {"name": "age", "type": "long"}]})
    got = rows(USERS, reg, [enc({"ID": 1, "NAME": "x", "AGE": 5, "age": 6})], [(1,)])
    assert got == [[1, "x", 6, None]]  # an exact name wins over a folded one


def test_logical_types_reach_storage(reg: FileRegistry) -> None:
    spec = table({"customer_id": "int", "order_id": "int", "total": "decimal(10,2)",
                  "placed_at": "timestamp", "ship_by": "date", "status": "string",
                  "tags": "array<string>"}, ["customer_id", "order_id"])
    enc = avro_encoder(reg, "orders-value", load("orders-value.avsc"))
    placed = dt.datetime(2024, 5, 1, 12, 30, 15, 123000, tzinfo=dt.UTC)
    v = enc({"customer_id": 7, "order_id": 1001, "total": decimal.Decimal("19.90"),
             "placed_at": placed, "ship_by": dt.date(2024, 5, 3), "status": "PAID",
             "tags": ["a", "b"]})
    (row,) = rows(spec, reg, [v], [(7, 1001)])
    micros = int(placed.timestamp()) * 1_000_000 + 123000
    assert row == [7, 1001, "19.90", micros, (dt.date(2024, 5, 3) - dt.date(1970, 1, 1)).days,
                   "PAID", ["a", "b"]]


def test_more_logical_types(reg: FileRegistry) -> None:
    spec = table({"k": "uuid", "t_ms": "time", "t_us": "time", "ts_us": "timestamp",
                  "raw": "bytes", "fx": "bytes", "ms_long": "timestamp"}, ["k"])
    schema = {"type": "record", "name": "L", "fields": [
        {"name": "t_ms", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "t_us", "type": {"type": "long", "logicalType": "time-micros"}},
        {"name": "ts_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "raw", "type": "bytes"},
        {"name": "fx", "type": {"type": "fixed", "name": "F", "size": 2}},
        {"name": "ms_long", "type": "long"}]}
    kenc = avro_encoder(reg, "l-key", {"type": "string", "logicalType": "uuid"})
    venc = avro_encoder(reg, "l-value", schema)
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    key = codecs.key_decoder(spec, reg)(kenc(u))
    assert key == (str(u),)
    ts = dt.datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
    (row,) = rows(spec, reg, [venc({"t_ms": dt.time(1, 2, 3, 4000), "t_us": dt.time(0, 0, 0, 7),
                                    "ts_us": ts, "raw": b"\x00\x01", "fx": b"ab",
                                    "ms_long": 1_700_000_000_123})], [key])
    assert row == [str(u), 3_723_004_000, 7,
                   int(dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC).timestamp()) * 10**6
                   + 678901, b"\x00\x01", b"ab", 1_700_000_000_123_000]


# --------------------------------------------------------------------------- keys


def test_record_key_gives_composite_key(reg: FileRegistry) -> None:
    spec = table({"customer_id": "int", "order_id": "int", "total": "double"},
                 ["customer_id", "order_id"])
    kenc = avro_encoder(reg, "orders-key", load("orders-key.avsc"))
    dec = codecs.key_decoder(spec, reg)
    kt = dec(kenc({"customer_id": 7, "order_id": 1001}))
    assert kt == (7, 1001)
    # key order is the declared order, whatever the record's field order
    swapped = avro_encoder(reg, "orders-key", {"type": "record", "name": "OrderKey", "fields": [
        {"name": "order_id", "type": "int"}, {"name": "customer_id", "type": "int"}]})
    assert dec(swapped({"order_id": 1001, "customer_id": 7})) == (7, 1001)
    codec = KeyCodec(spec.key_types)
    assert codec.encode(kt) == codec.encode((7, 1001))


def test_a_table_key_record_with_a_field_beyond_the_key_columns_is_refused(reg: FileRegistry
                                                                          ) -> None:
    """Keys (7, 1001, "eu") and (7, 1001, "us") are two keys of the topic; read as
    (customer_id, order_id) they would share one row, the later overwriting the earlier."""
    regional = avro_encoder(reg, "orders-key", {"type": "record", "name": "OrderKey", "fields": [
        {"name": "order_id", "type": "int"}, {"name": "customer_id", "type": "int"},
        {"name": "region", "type": "string"}]})
    body = regional({"order_id": 1001, "customer_id": 7, "region": "eu"})
    spec = table({"customer_id": "int", "order_id": "int", "total": "double"},
                 ["customer_id", "order_id"])
    with pytest.raises(RecordError) as e:
        codecs.key_decoder(spec, reg)(body)
    assert e.value.reason == "key_mismatch"
    assert "field(s) 'region' that are not primary key columns (customer_id, order_id)" in \
        str(e.value)
    stream = table({"customer_id": "int", "order_id": "int", "total": "double"},
                   ["customer_id", "order_id"], stream=True)
    assert codecs.key_decoder(stream, reg)(body) == (7, 1001)  # a stream's key is not unique


def test_record_key_missing_column_is_a_key_mismatch(reg: FileRegistry) -> None:
    """Not a null key column: the key record is of another shape (a stream's too)."""
    spec = table({"a": "int", "b": "string"}, ["a", "b"], stream=True)
    kenc = avro_encoder(reg, "k", {"type": "record", "name": "K",
                                   "fields": [{"name": "a", "type": "int"}]})
    with pytest.raises(RecordError) as e:
        codecs.key_decoder(spec, reg)(kenc({"a": 1}))
    assert e.value.reason == "key_mismatch"
    assert "has no field for key column 'b'" in str(e.value)


def test_primitive_keys(reg: FileRegistry) -> None:
    for avro_type, col, value, stored in [
        ("int", "int", 42, 42), ("long", "long", 2**40, 2**40), ("string", "string", "u1", "u1"),
        ("bytes", "bytes", b"\x00k", b"\x00k"), ("long", "timestamp", 1000, 1_000_000),
    ]:
        spec = table({"id": col, "v": "string"}, ["id"])
        enc = avro_encoder(reg, f"k-{avro_type}", avro_type)
        assert codecs.key_decoder(spec, reg)(enc(value)) == (stored,)
    one_field = table({"id": "int", "v": "string"}, ["id"])
    enc = avro_encoder(reg, "wrapped", {"type": "record", "name": "W",
                                        "fields": [{"name": "id", "type": "int"}]})
    assert codecs.key_decoder(one_field, reg)(enc({"id": 5})) == (5,)


def test_key_errors(reg: FileRegistry) -> None:
    spec = table({"a": "int", "b": "int", "v": "string"}, ["a", "b"])
    dec = codecs.key_decoder(spec, reg)
    prim = avro_encoder(reg, "p", "int")
    with pytest.raises(RecordError) as e:
        dec(prim(5))
    assert e.value.reason == "not_a_record"
    wrong = avro_encoder(reg, "w", {"type": "record", "name": "R", "fields": [
        {"name": "a", "type": "string"}, {"name": "b", "type": "int"}]})
    with pytest.raises(RecordError) as e:
        dec(wrong({"a": "x", "b": 1}))
    assert e.value.reason == "key_mismatch"
    big = avro_encoder(reg, "big", {"type": "record", "name": "B", "fields": [
        {"name": "a", "type": "long"}, {"name": "b", "type": "int"}]})
    with pytest.raises(RecordError) as e:
        dec(big({"a": 2**40, "b": 1}))
    assert e.value.reason == "key_mismatch"


# --------------------------------------------------------------------------- errors


def test_wire_format_errors(reg: FileRegistry) -> None:
    enc = avro_encoder(reg, "users-value", load("users-value-v2.avsc"))
    good = enc({"id": 1, "name": "Alice", "age": 3, "email": None})
    multi_byte_age = enc({"id": 1, "name": "Alice", "age": 300, "email": None})
    dec = codecs.value_decoder(USERS, reg)
    # a stream's key: a table's would refuse the record's other fields before reading it
    kdec = codecs.key_decoder(table({"id": "int", "v": "string"}, ["id"], stream=True), reg)
    cases = {
        "truncated": [good[:-1], good[:5], good[:3], b"", multi_byte_age[:-2]],
        "bad_magic": [b"\x01" + good[1:], b'{"id": 1}', b"\xff"],
        "unknown_schema": [b"\x00\x00\x00\x00\x63" + good[5:]],
        "avro_decode": [good + b"\x00", b"\x00\x00\x00\x00\x01" + b"\x02\x04\xff\xfe\x00\x00",
                        # email's union branch -2, which fastavro reads as branch 0, null
                        good[:-1] + b"\x03"],
    }
    for reason, payloads in cases.items():
        for p in payloads:
            for d in (dec, kdec):
                with pytest.raises(RecordError) as e:
                    d(p)
                assert e.value.reason == reason, (p, e.value)
    assert "looks like JSON" in _message(dec, b'{"id": 1}')


def _message(dec: Any, b: bytes) -> str:
    try:
        dec(b)
    except RecordError as e:
        return str(e)
    raise AssertionError("no error")


def test_type_mismatch_is_rejected_by_the_shaper(reg: FileRegistry) -> None:
    enc = avro_encoder(reg, "u", {"type": "record", "name": "U", "fields": [
        {"name": "id", "type": "int"}, {"name": "name", "type": "string"},
        {"name": "age", "type": "string"}]})
    with pytest.raises(RecordError) as e:
        rows(USERS, reg, [enc({"id": 1, "name": "x", "age": "old"})], [(1,)])
    assert e.value.reason == "type_mismatch"
    assert "age" in str(e.value)


def test_primitive_value_schema(reg: FileRegistry) -> None:
    one = table({"id": "int", "name": "string"}, ["id"], key_format="int")
    enc = avro_encoder(reg, "s", "string")
    assert rows(one, reg, [enc("hello")], [(1,)]) == [[1, "hello"]]
    with pytest.raises(RecordError) as e:
        codecs.value_decoder(USERS, reg)(enc("hello"))
    assert e.value.reason == "not_a_record"


def test_avro_without_registry_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="schema_registry"):
        codecs.value_decoder(USERS, None)
    with pytest.raises(ConfigError, match="schema_registry"):
        codecs.key_decoder(table({"id": "int", "v": "string"}, ["id"]), None)


def test_unreachable_registry_is_not_a_bad_record() -> None:
    from materializer.devbroker import free_port

    reg = RestRegistry(f"http://127.0.0.1:{free_port()}",
                       {"max.retries": "1", "retries.wait.ms": "10"})
    dec = codecs.value_decoder(USERS, reg)
    with pytest.raises(InfrastructureError) as e:
        dec(b"\x00\x00\x00\x00\x01\x02")
    assert not isinstance(e.value, RecordError)


def test_schema_fetched_once_per_id() -> None:
    with RegistryServer() as srv:
        sid = srv.add("users-value", load("users-value-v1.avsc"))
        reg = RestRegistry(srv.url, {})
        dec = codecs.value_decoder(USERS, reg)
        datum = wire_encode(sid, reg.schema(sid), {"id": 1, "name": "a", "age": None})
        n = srv.requests
        for _ in range(50):
            assert dec(datum)["name"] == "a"
        assert srv.requests == n


def test_a_record_that_shares_no_field_with_the_columns_is_rejected_not_stored_as_nulls(
        reg: FileRegistry, caplog: pytest.LogCaptureFixture) -> None:
    """As a JSON object (no_declared_columns): every field would be lost, the row NULLs.
    Sharing one column, the key's included, is enough; case-insensitive matches count."""
    other = {"type": "record", "name": "Other", "fields": [
        {"name": "x", "type": "long"}, {"name": "y", "type": "string"}]}
    enc = avro_encoder(reg, "t-value", other)
    dec = codecs.value_decoder(USERS, reg)
    with pytest.raises(RecordError) as e:
        dec(enc({"x": 1, "y": "data"}))
    assert e.value.reason == "no_declared_columns"
    assert "it has x, y" in str(e.value) and "(id, name, age, email)" in str(e.value)
    upper = avro_encoder(reg, "u-value", {"type": "record", "name": "U", "fields": [
        {"name": "ID", "type": "int"}, {"name": "z", "type": "string"}]})
    assert rows(USERS, reg, [upper({"ID": 1, "z": "q"})], [(1,)]) == [[1, None, None, None]]
    # ... and the columns that schema leaves NULL are logged, once
    warned = [r.getMessage() for r in caplog.records if "has no field" in r.getMessage()]
    assert warned == ["public.t: the Avro record U has no field for column(s) name, age, "
                      "email, NULL in its rows (its fields: ID, z; a partial_update column "
                      "keeps its stored value)"]
    # Debezium: the `after` record's fields are the ones that must match
    envelope = {"type": "record", "name": "Envelope", "namespace": "db", "fields": [
        {"name": "before", "type": ["null", other]}, {"name": "after", "type": ["null", "Other"]},
        {"name": "op", "type": "string"}]}
    denc = avro_encoder(reg, "d-value", envelope)
    ddec = codecs.value_decoder(table(dict(USERS_COLUMNS), ["id"], key_format="int",
                                      value_format="debezium-avro"), reg)
    with pytest.raises(RecordError) as e:
        ddec(denc({"before": None, "after": {"x": 1, "y": "data"}, "op": "c"}))
    assert e.value.reason == "no_declared_columns" and "`after` record" in str(e.value)

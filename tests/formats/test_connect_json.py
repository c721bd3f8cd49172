"""Kafka Connect's JsonConverter with `schemas.enable=true` as `json` input (keys and
values): the `{"schema", "payload"}` wrapper is unwrapped and the Connect logical types
its schema names are applied; a value object that shares no field with the declared
columns is a bad record (`no_declared_columns`), never a row of NULLs."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
from pathlib import Path
from typing import Any

import pytest

from materializer.columns import parse_type
from materializer.errors import RecordError
from materializer.formats import codecs
from materializer.formats.base import DELETE
from materializer.ingest.apply import RowShaper
from materializer.specs import Column, RelationSpec, StreamSpec, TableSpec

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
CREATED = dt.datetime(2024, 3, 1, 8, 0, 0, 123456, tzinfo=dt.UTC)


def table(columns: dict[str, str], key: list[str], key_format: str = "json",
          value_format: str = "json") -> TableSpec:
    cols = tuple(Column(n, parse_type(t)[0], n in key) for n, t in columns.items())
    return TableSpec(name="public.customers", topic="customers", columns=cols,
                     key_columns=tuple(key), key_format=key_format,  # type: ignore[arg-type]
                     value_format=value_format)  # type: ignore[arg-type]


def micros(d: dt.datetime) -> int:
    delta = d - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def field(name: str, type_: str, connect_name: str | None = None,
          params: dict[str, str] | None = None, optional: bool = True) -> dict[str, Any]:
    f: dict[str, Any] = {"type": type_, "optional": optional, "field": name}
    if connect_name:
        f["name"] = connect_name
        f["version"] = 1
    if params:
        f["parameters"] = params
    return f


def wrap(fields: list[dict[str, Any]], payload: Any, name: str = "server1.inventory.x.Value"
         ) -> bytes:
    schema = {"type": "struct", "fields": fields, "optional": False, "name": name}
    return json.dumps({"schema": schema, "payload": payload}).encode()


def unscaled(n: int) -> str:
    """Connect's Decimal bytes (two's complement, big-endian) as JsonConverter writes
    them: base64 text."""
    size = max(1, (n.bit_length() + 8) // 8)
    return base64.b64encode(n.to_bytes(size, "big", signed=True)).decode()


def row(spec: RelationSpec, fields: Any, key: tuple[Any, ...]) -> dict[str, Any]:
    layout = spec.column_names
    return dict(zip(layout, RowShaper(spec, layout).shape(fields, key), strict=True))


# What Debezium with the ExtractNewRecordState SMT and JsonConverter(schemas.enable=true)
# writes for inventory.customers (decimal.handling.mode=precise, time.precision.mode
# adaptive: MicroTimestamp for DATETIME(6), ZonedTimestamp for TIMESTAMP).
CUSTOMERS = {"id": "int", "first_name": "string", "balance": "decimal(10,2)",
             "birth_date": "date", "created_at": "timestamp", "updated_at": "timestamp",
             "login_at": "timestamp", "logout_at": "timestamp", "seen_at": "timestamp",
             "opens": "time", "closes": "time", "lunch": "time", "ratio": "decimal(20,6)"}
SPEC = table(CUSTOMERS, ["id"])
VALUE_FIELDS = [
    field("id", "int32", optional=False),
    field("first_name", "string"),
    field("balance", "bytes", "org.apache.kafka.connect.data.Decimal",
          {"scale": "2", "connect.decimal.precision": "10"}),
    field("birth_date", "int32", "io.debezium.time.Date"),
    field("created_at", "int64", "io.debezium.time.MicroTimestamp"),
    field("updated_at", "string", "io.debezium.time.ZonedTimestamp"),
    field("login_at", "int64", "org.apache.kafka.connect.data.Timestamp"),
    field("logout_at", "int64", "io.debezium.time.NanoTimestamp"),
    field("seen_at", "int64", "io.debezium.time.Timestamp"),
    field("opens", "int32", "org.apache.kafka.connect.data.Time"),
    field("closes", "int64", "io.debezium.time.MicroTime"),
    field("lunch", "int64", "io.debezium.time.NanoTime"),
    field("ratio", "struct", "io.debezium.data.VariableScaleDecimal"),
]
PAYLOAD = {"id": 1001, "first_name": "Sally", "balance": "AeI6",
           "birth_date": 7499, "created_at": micros(CREATED),
           "updated_at": "2024-03-02T09:30:00Z", "login_at": 1_709_280_000_123,
           "logout_at": micros(CREATED) * 1000 + 789, "seen_at": 1_709_280_000_000,
           "opens": 8 * 3_600_000, "closes": 17 * 3_600_000_000 + 5,
           "lunch": 12 * 3_600_000_000_000 + 30 * 60_000_000_000,
           "ratio": {"scale": 3, "value": unscaled(-12345)}}


def test_connect_wrapped_value_is_unwrapped_with_its_logical_types() -> None:
    fields = codecs.value_decoder(SPEC)(wrap(VALUE_FIELDS, dict(PAYLOAD)))
    got = row(SPEC, fields, (1001,))
    assert got == {
        "id": 1001, "first_name": "Sally", "balance": "1234.50",
        "birth_date": 7499, "created_at": micros(CREATED),
        "updated_at": micros(dt.datetime(2024, 3, 2, 9, 30, tzinfo=dt.UTC)),
        "login_at": 1_709_280_000_123_000, "logout_at": micros(CREATED),
        "seen_at": 1_709_280_000_000_000, "opens": 8 * 3_600_000_000,
        "closes": 17 * 3_600_000_000 + 5, "lunch": 12 * 3_600_000_000 + 30 * 60_000_000,
        "ratio": "-12.345000"}


def test_no_column_is_silently_null() -> None:
    """The bug: every non-key column NULL. Whatever fields the payload has, each one
    present in it is present in the row."""
    fields = codecs.value_decoder(SPEC)(wrap(VALUE_FIELDS, dict(PAYLOAD)))
    got = row(SPEC, fields, (1001,))
    assert all(got[c] is not None for c in CUSTOMERS)


def test_decimal_scale_and_negative_unscaled_values() -> None:
    spec = table({"id": "int", "amount": "decimal(14,4)"}, ["id"])
    fields = [field("id", "int32", optional=False),
              field("amount", "bytes", "org.apache.kafka.connect.data.Decimal",
                    {"scale": "4"})]
    dec = codecs.value_decoder(spec)
    for n, text in ((-1, "-0.0001"), (0, "0.0000"), (123_456_789, "12345.6789"),
                    (-(2**40), "-109951162.7776")):
        got = row(spec, dec(wrap(fields, {"id": 1, "amount": unscaled(n)})), (1,))
        assert got["amount"] == text
        assert decimal.Decimal(got["amount"]) == decimal.Decimal(n).scaleb(-4)


def test_connect_numeric_decimals_pass_as_numbers() -> None:
    """JsonConverter with decimal.format=NUMERIC writes a JSON number."""
    spec = table({"id": "int", "amount": "decimal(10,2)"}, ["id"])
    fields = [field("id", "int32"), field("amount", "bytes",
                                          "org.apache.kafka.connect.data.Decimal",
                                          {"scale": "2"})]
    got = row(spec, codecs.value_decoder(spec)(wrap(fields, {"id": 1, "amount": 19.9})), (1,))
    assert got["amount"] == "19.90"


def test_bad_base64_decimal_is_a_type_mismatch() -> None:
    spec = table({"id": "int", "amount": "decimal(10,2)"}, ["id"])
    fields = [field("id", "int32"), field("amount", "bytes",
                                          "org.apache.kafka.connect.data.Decimal",
                                          {"scale": "2"})]
    with pytest.raises(RecordError) as e:
        codecs.value_decoder(spec)(wrap(fields, {"id": 1, "amount": "not base64!"}))
    assert e.value.reason == "type_mismatch"


def test_schema_field_names_match_columns_ignoring_case() -> None:
    """ksqlDB and some connectors upper-case names; the schema says which field is which."""
    spec = table({"id": "int", "name": "string", "ts": "timestamp"}, ["id"])
    fields = [field("ID", "int32"), field("NAME", "string"),
              field("TS", "int64", "org.apache.kafka.connect.data.Timestamp")]
    got = row(spec, codecs.value_decoder(spec)(
        wrap(fields, {"ID": 1, "NAME": "x", "TS": 1000})), (1,))
    assert got == {"id": 1, "name": "x", "ts": 1_000_000}


def test_a_null_payload_is_a_delete() -> None:
    assert codecs.value_decoder(SPEC)(wrap(VALUE_FIELDS, None)) is DELETE


def test_a_primitive_payload_fills_the_one_value_column() -> None:
    spec = table({"id": "int", "at": "timestamp"}, ["id"])
    value = json.dumps({"schema": {"type": "int64", "optional": True,
                                   "name": "io.debezium.time.MicroTimestamp"},
                        "payload": micros(CREATED)}).encode()
    assert row(spec, codecs.value_decoder(spec)(value), (1,))["at"] == micros(CREATED)


def test_schemas_are_planned_once_and_evolve() -> None:
    dec = codecs.value_decoder(SPEC)
    first = [field("id", "int32"), field("created_at", "int64",
                                         "io.debezium.time.MicroTimestamp")]
    second = [field("id", "int32"), field("created_at", "int64",
                                          "org.apache.kafka.connect.data.Timestamp")]
    for _ in range(3):
        a = row(SPEC, dec(wrap(first, {"id": 1, "created_at": 5_000_000})), (1,))
        b = row(SPEC, dec(wrap(second, {"id": 1, "created_at": 5_000})), (1,))
        assert a["created_at"] == b["created_at"] == 5_000_000


# ----------------------------------------------------------------------------- keys


def test_connect_wrapped_struct_key() -> None:
    key = wrap([field("id", "int32", optional=False)], {"id": 1001},
               name="server1.inventory.customers.Key")
    assert codecs.key_decoder(SPEC)(key) == (1001,)


def test_connect_wrapped_composite_key_with_logical_types() -> None:
    spec = table({"day": "date", "amount": "decimal(10,2)", "n": "string"}, ["day", "amount"])
    key = wrap([field("day", "int32", "org.apache.kafka.connect.data.Date"),
                field("amount", "bytes", "org.apache.kafka.connect.data.Decimal",
                      {"scale": "2"})], {"day": 19000, "amount": unscaled(1999)})
    assert codecs.key_decoder(spec)(key) == (19000, "19.99")


def test_connect_wrapped_primitive_key() -> None:
    spec = table({"ts": "timestamp", "n": "string"}, ["ts"])
    key = json.dumps({"schema": {"type": "int64", "optional": False,
                                 "name": "io.debezium.time.MicroTimestamp"},
                      "payload": micros(CREATED)}).encode()
    assert codecs.key_decoder(spec)(key) == (micros(CREATED),)
    plain = json.dumps({"schema": {"type": "int32", "optional": False},
                        "payload": 7}).encode()
    assert codecs.key_decoder(table({"id": "int", "n": "string"}, ["id"]))(plain) == (7,)


@pytest.mark.parametrize("key", [b'{"id": 3, "tenant": "a"}',
                                 b'{"id": 3, "order_id": 1, "tenant": "a"}',
                                 b'{"ID": 3, "order_id": 1}'])
def test_a_table_key_object_with_a_field_beyond_the_key_columns_is_refused(key: bytes
                                                                          ) -> None:
    """{"id": 3, "tenant": "a"} and {"id": 3, "tenant": "b"} are two keys of the topic: read
    as (id) they would share one row, the later overwriting the earlier."""
    one = table({"id": "int", "n": "string"}, ["id"])
    two = table({"id": "int", "order_id": "int", "n": "string"}, ["id", "order_id"])
    with pytest.raises(RecordError) as e:
        codecs.key_decoder(two if b"order_id" in key else one)(key)
    assert e.value.reason == "key_mismatch"
    assert "that are not primary key columns" in str(e.value)
    assert ("'tenant'" if b"tenant" in key else "'ID'") in str(e.value)


def test_a_connect_key_schema_with_a_field_beyond_the_key_columns_is_refused() -> None:
    key = wrap([field("id", "int32", optional=False), field("tenant", "string")],
               {"id": 1001, "tenant": "a"}, name="server1.inventory.customers.Key")
    with pytest.raises(RecordError) as e:
        codecs.key_decoder(SPEC)(key)
    assert e.value.reason == "key_mismatch"
    assert str(e.value).startswith("key: the key has field(s) 'tenant' that are not")


def test_key_objects_of_exactly_the_key_columns_and_stream_keys_pass() -> None:
    two = table({"id": "int", "order_id": "int", "n": "string"}, ["id", "order_id"])
    assert codecs.key_decoder(two)(b'{"order_id": 1, "id": 3}') == (3, 1)
    assert codecs.key_decoder(two)(b'{"id": 3, "order_id": null}') == (3, None)  # null_key
    stream = StreamSpec(name="s", topic="s", columns=two.columns, key_columns=("id",),
                        key_format="json", value_format="json")
    assert codecs.key_decoder(stream)(b'{"id": 3, "tenant": "a"}') == (3,)  # not unique


def test_connect_wrapped_key_with_a_bad_decimal_is_a_key_mismatch() -> None:
    spec = table({"amount": "decimal(10,2)", "n": "string"}, ["amount"])
    key = wrap([field("amount", "bytes", "org.apache.kafka.connect.data.Decimal",
                      {"scale": "2"})], {"amount": "**"})
    with pytest.raises(RecordError) as e:
        codecs.key_decoder(spec)(key)
    assert e.value.reason == "key_mismatch"


# --------------------------------------------------------------- no declared columns


@pytest.mark.parametrize("value", [
    {"ID": 1, "FIRST_NAME": "Sally"},              # upper-cased names, no schema to say so
    {"customer": {"id": 1, "first_name": "x"}},   # an envelope of some other kind
    {"schema": "not a Connect schema", "data": {"first_name": "x"}},
])
def test_a_value_sharing_no_field_with_the_columns_is_rejected(value: dict[str, Any]) -> None:
    with pytest.raises(RecordError) as e:
        codecs.value_decoder(SPEC)(json.dumps(value).encode())
    assert e.value.reason == "no_declared_columns"
    assert "first_name" in str(e.value)  # says what was expected


def test_a_stream_value_sharing_no_field_is_rejected_too() -> None:
    cols = (Column("user_id", parse_type("string")[0]), Column("url", parse_type("string")[0]))
    spec = StreamSpec(name="public.clicks", topic="clicks", columns=cols,
                      key_columns=("user_id",), key_format="string", value_format="json")
    with pytest.raises(RecordError) as e:
        codecs.value_decoder(spec)(b'{"URL": "/"}')
    assert e.value.reason == "no_declared_columns"


@pytest.mark.parametrize("value", [
    {"id": 1, "FIRST_NAME": "Sally"},  # first_name absent: Sally would be lost
    {"first_name": "x", "Balance": "1.00"},  # the same for a nullable column
])
def test_a_field_differing_from_a_missing_column_only_in_case_is_rejected(
        value: dict[str, Any]) -> None:
    with pytest.raises(RecordError) as e:
        codecs.value_decoder(SPEC)(json.dumps(value).encode())
    assert e.value.reason == "case_mismatch"
    assert "case-sensitive" in str(e.value)


def test_a_key_column_in_another_case_is_not_a_mismatch() -> None:
    """The key column's value comes from the Kafka key: a value field for it is not lost."""
    assert codecs.value_decoder(SPEC)(b'{"first_name": "x", "ID": 1}') == {
        "first_name": "x", "ID": 1}


def test_values_sharing_a_field_and_empty_objects_pass() -> None:
    dec = codecs.value_decoder(SPEC)
    assert dec(b'{"first_name": "x", "other": 1}') == {"first_name": "x", "other": 1}
    assert dec(b'{"id": 5}') == {"id": 5}  # a key column is a declared column
    assert dec(b"{}") == {}  # nothing in it, so nothing lost


def test_a_key_only_relation_accepts_any_object() -> None:
    spec = table({"id": "int"}, ["id"])
    assert codecs.value_decoder(spec)(b'{"anything": 1}') == {"anything": 1}


def test_columns_named_schema_and_payload_read_json_as_it_is() -> None:
    spec = table({"id": "int", "schema": "json", "payload": "json"}, ["id"])
    value = {"schema": {"type": "struct", "fields": []}, "payload": {"a": 1}}
    assert codecs.value_decoder(spec)(json.dumps(value).encode()) == value


# ----------------------------------------------------------------------- on a broker


@pytest.mark.integration
def test_debezium_unwrapped_json_with_schemas_materializes(session_broker: Any,
                                                            tmp_path: Path) -> None:
    from connectors.producer import produce_records
    from materializer.store import Store
    from tests.support.workers import materialize, unique, write_config

    topic = session_broker.create_topic(unique("customers"), partitions=1)
    key_fields = [field("id", "int32", optional=False)]
    records: list[tuple[bytes | None, bytes | None]] = [
        (wrap(key_fields, {"id": 1001}, "k"), wrap(VALUE_FIELDS, dict(PAYLOAD))),
        (wrap(key_fields, {"id": 1002}, "k"), wrap(VALUE_FIELDS, {**PAYLOAD, "id": 1002,
                                                                  "balance": unscaled(-5)})),
        (wrap(key_fields, {"id": 1003}, "k"), b'{"ID": 1003, "FIRST_NAME": "lost"}'),
    ]
    ends = produce_records(session_broker.kafka_config(), topic, records)
    cols = ", ".join(f"{n}: \"{t}\"" for n, t in CUSTOMERS.items())
    cfg = write_config(tmp_path / "t.yaml", session_broker, f"""\
tables:
  - name: inventory.customers
    topic: {topic}
    columns: {{{cols}}}
    primary_key: [id]
    value_format: json
    on_error: skip
""")
    materialize(cfg, {"inventory.customers": ends})
    with Store.open(tmp_path / "data") as store:
        t = store.table("inventory.customers")
        a, b, c = t.get_many([1001, 1002, 1003])
        assert c is None and len(t) == 2
        assert a is not None and b is not None
        assert a["first_name"] == "Sally" and a["balance"] == decimal.Decimal("1234.50")
        assert a["created_at"] == CREATED and b["balance"] == decimal.Decimal("-0.05")
        counters = [s["counters"] for s in store.relation("inventory.customers")
                    .partition_stats()]
        assert sum(c.get("skipped:no_declared_columns", 0) for c in counters) == 1


def test_columns_a_schema_has_no_field_for_are_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    spec = table({"id": "int", "nick": "string", "mail": "string"}, ["id"])
    dec = codecs.value_decoder(spec)
    fields = [field("id", "int32"), field("NICK", "string"), field("e_mail", "string")]
    for _ in range(3):
        got = row(spec, dec(wrap(fields, {"id": 1, "NICK": "x", "e_mail": "a@b"})), (1,))
        assert got == {"id": 1, "nick": "x", "mail": None}
    warned = [r.getMessage() for r in caplog.records if "has no field" in r.getMessage()]
    assert len(warned) == 1
    assert "column(s) mail, NULL in its rows (its fields: id, NICK, e_mail;" in warned[0]

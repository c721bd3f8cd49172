"""Debezium change events as input: debezium-json (with and without the schema
wrapper) and debezium-avro."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
from pathlib import Path
from typing import Any

import pytest

from connectors.registry import FileRegistry
from materializer.columns import parse_type
from materializer.errors import RecordError
from materializer.formats import codecs
from materializer.formats.base import DELETE
from materializer.formats.wire import avro_encoder
from materializer.ingest.apply import RowShaper
from materializer.specs import Column, RelationSpec, TableSpec

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def table(columns: dict[str, str], key: list[str], value_format: str) -> RelationSpec:
    cols = tuple(Column(n, parse_type(t)[0], n in key) for n, t in columns.items())
    return TableSpec(name="public.customers", topic="dbserver1.inventory.customers",
                     columns=cols, key_columns=tuple(key), key_format="json",
                     value_format=value_format)


COLUMNS = {"id": "int", "first_name": "string", "email": "string", "balance": "decimal(10,2)",
           "birth_date": "date", "created_at": "timestamp", "updated_at": "timestamp"}
JSON_SPEC = table(COLUMNS, ["id"], "debezium-json")
AVRO_SPEC = table(COLUMNS, ["id"], "debezium-avro")


def micros(d: dt.datetime) -> int:
    delta = d - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def days(d: dt.date) -> int:
    return (d - dt.date(1970, 1, 1)).days


CREATED = dt.datetime(2024, 3, 1, 8, 0, 0, 123456, tzinfo=dt.UTC)
UPDATED = dt.datetime(2024, 3, 2, 9, 30, 0, tzinfo=dt.UTC)
BIRTH = dt.date(1990, 7, 14)


def _field(name: str, type_: str, connect_name: str | None = None,
           params: dict[str, str] | None = None, optional: bool = True) -> dict[str, Any]:
    f: dict[str, Any] = {"type": type_, "optional": optional, "field": name}
    if connect_name:
        f["name"] = connect_name
        f["version"] = 1
    if params:
        f["parameters"] = params
    return f


ROW_FIELDS = [
    _field("id", "int32", optional=False),
    _field("first_name", "string", optional=False),
    _field("email", "string"),
    _field("balance", "bytes", "org.apache.kafka.connect.data.Decimal",
           {"scale": "2", "connect.decimal.precision": "10"}),
    _field("birth_date", "int32", "io.debezium.time.Date"),
    _field("created_at", "int64", "io.debezium.time.MicroTimestamp"),
    _field("updated_at", "string", "io.debezium.time.ZonedTimestamp"),
]
ROW_STRUCT = {"type": "struct", "fields": ROW_FIELDS, "optional": True,
              "name": "dbserver1.inventory.customers.Value"}
SCHEMA = {"type": "struct", "name": "dbserver1.inventory.customers.Envelope", "optional": False,
          "fields": [{**ROW_STRUCT, "field": "before"}, {**ROW_STRUCT, "field": "after"},
                     {"type": "struct", "field": "source", "optional": False,
                      "fields": [_field("version", "string"), _field("ts_ms", "int64")]},
                     _field("op", "string", optional=False), _field("ts_ms", "int64")]}


def dbz_row(id_: int = 1004, balance: str = "1234.50") -> dict[str, Any]:
    unscaled = int(decimal.Decimal(balance).scaleb(2))
    raw = unscaled.to_bytes((unscaled.bit_length() + 8) // 8, "big", signed=True)
    return {"id": id_, "first_name": "Anne", "email": "annek@noanswer.org",
            "balance": base64.b64encode(raw).decode(), "birth_date": days(BIRTH),
            "created_at": micros(CREATED), "updated_at": "2024-03-02T09:30:00Z"}


def envelope(op: str, before: Any, after: Any, wrapped: bool = True) -> bytes:
    payload = {"before": before, "after": after, "op": op, "ts_ms": 1700000000000,
               "source": {"version": "2.5.0.Final", "ts_ms": 1700000000000}}
    return json.dumps({"schema": SCHEMA, "payload": payload} if wrapped else payload).encode()


def shape(spec: RelationSpec, fields: Any, key: tuple[Any, ...]) -> list[Any]:
    return RowShaper(spec, spec.column_names).shape(fields, key)


EXPECTED = [1004, "Anne", "annek@noanswer.org", "1234.50", days(BIRTH), micros(CREATED),
            micros(UPDATED)]


def test_json_with_schema_wrapper() -> None:
    dec = codecs.value_decoder(JSON_SPEC, None)
    for op in ("c", "r", "u"):
        before = None if op in "cr" else dbz_row()
        fields = dec(envelope(op, before, dbz_row()))
        assert shape(JSON_SPEC, fields, (1004,)) == EXPECTED
    assert dec(envelope("d", dbz_row(), None)) is DELETE
    # negative decimals (two's complement) and the cached plan on a second message
    fields = dec(envelope("u", None, dbz_row(balance="-0.01")))
    assert shape(JSON_SPEC, fields, (1004,))[3] == "-0.01"


def test_json_without_schema_wrapper() -> None:
    dec = codecs.value_decoder(JSON_SPEC, None)
    row = dbz_row()
    row.update(balance="1234.5", created_at=1709280000123)  # string decimal, ms timestamp
    fields = dec(envelope("c", None, row, wrapped=False))
    got = shape(JSON_SPEC, fields, (1004,))
    assert got[3] == "1234.50"
    assert got[5] == 1709280000123 * 1000
    assert got[4] == days(BIRTH)
    assert dec(envelope("d", row, None, wrapped=False)) is DELETE
    assert dec(b"null") is DELETE
    assert dec(json.dumps({"schema": None, "payload": None}).encode()) is DELETE


def test_json_after_that_shares_no_column_is_rejected_not_stored_as_nulls() -> None:
    """As a plain JSON object: the `after` row's data would all be lost. An empty `after`
    and one sharing a single column pass."""
    dec = codecs.value_decoder(JSON_SPEC, None)
    with pytest.raises(RecordError) as e:
        dec(envelope("c", None, {"uid": 1, "given_name": "Anne"}, wrapped=False))
    assert e.value.reason == "no_declared_columns"
    assert "`after` object" in str(e.value) and "it has uid, given_name" in str(e.value)
    assert dec(envelope("c", None, {}, wrapped=False)) == {}
    assert dec(envelope("c", None, {"email": "a@b"}, wrapped=False)) == {"email": "a@b"}
    # a field differing only in case from a column the object lacks: its data would be lost
    with pytest.raises(RecordError) as e:
        dec(envelope("c", None, {"id": 1, "FIRST_NAME": "Anne"}, wrapped=False))
    assert e.value.reason == "case_mismatch" and "'FIRST_NAME'" in str(e.value)


def test_json_without_wrapper_cannot_read_base64_decimals() -> None:
    dec = codecs.value_decoder(JSON_SPEC, None)
    fields = dec(envelope("c", None, dbz_row(), wrapped=False))
    with pytest.raises(RecordError) as e:
        shape(JSON_SPEC, fields, (1004,))
    assert e.value.reason == "type_mismatch"


def test_json_connect_types() -> None:
    spec = table({"id": "int", "ts_ms": "timestamp", "ts_ns": "timestamp", "t_ms": "time",
                  "t_us": "time", "d2": "date", "vsd": "decimal(20,5)", "doc": "json",
                  "doc_text": "string", "blob": "bytes", "flag": "boolean", "ratio": "double",
                  "big": "long", "ts_as_days": "timestamp"}, ["id"], "debezium-json")
    fields_schema = [
        _field("id", "int32"),
        _field("ts_ms", "int64", "io.debezium.time.Timestamp"),
        _field("ts_ns", "int64", "io.debezium.time.NanoTimestamp"),
        _field("t_ms", "int32", "io.debezium.time.Time"),
        _field("t_us", "int64", "io.debezium.time.MicroTime"),
        _field("d2", "int32", "org.apache.kafka.connect.data.Date"),
        {"type": "struct", "field": "vsd", "name": "io.debezium.data.VariableScaleDecimal",
         "fields": [_field("scale", "int32"), _field("value", "bytes")]},
        _field("doc", "string", "io.debezium.data.Json"),
        _field("doc_text", "string", "io.debezium.data.Json"),
        _field("blob", "bytes"),
        _field("flag", "boolean"), _field("ratio", "double"), _field("big", "int64"),
        _field("ts_as_days", "int32", "io.debezium.time.Date"),
    ]
    schema = {"type": "struct", "fields": [
        {"type": "struct", "field": "after", "fields": fields_schema},
        _field("op", "string")]}
    after = {"id": 1, "ts_ms": 1_700_000_000_123, "ts_ns": 1_700_000_000_123_456_789,
             "t_ms": 3_723_004, "t_us": 3_723_004_005, "d2": 19000,
             "vsd": {"scale": 3, "value": base64.b64encode(b"\x30\x39").decode()},
             "doc": '{"a": [1, 2]}', "doc_text": '{"a": 1}',
             "blob": base64.b64encode(b"\x00\xff").decode(), "flag": True, "ratio": 0.5,
             "big": 2**62, "ts_as_days": None}
    dec = codecs.value_decoder(spec, None)
    msg = json.dumps({"schema": schema, "payload": {"op": "r", "after": after}}).encode()
    row = shape(spec, dec(msg), (1,))
    assert row == [1, 1_700_000_000_123_000, 1_700_000_000_123_456, 3_723_004_000, 3_723_004_005,
                   19000, "12.34500", {"a": [1, 2]}, '{"a": 1}', b"\x00\xff", True, 0.5, 2**62,
                   None]
    # a Date field in a timestamp column does not fit: rejected, not guessed
    after["ts_as_days"] = 19000
    msg = json.dumps({"schema": schema, "payload": {"op": "r", "after": after}}).encode()
    with pytest.raises(RecordError) as e:
        shape(spec, dec(msg), (1,))
    assert e.value.reason == "type_mismatch"


def test_json_errors() -> None:
    dec = codecs.value_decoder(JSON_SPEC, None)
    cases = {
        "malformed_json": [b"{", b"\xff\xfe", b""],
        "not_debezium": [b"[]", b"42", b'{"after": {"id": 1}}', b'{"op": "c", "after": null}',
                         b'{"op": "u", "after": [1]}',
                         b'{"schema": {}, "payload": "x"}'],
        "unsupported_op": [b'{"op": "t", "after": null}', b'{"op": "x", "after": {}}',
                           b'{"op": 1, "after": {}}'],
    }
    for reason, payloads in cases.items():
        for p in payloads:
            with pytest.raises(RecordError) as e:
                dec(p)
            assert e.value.reason == reason, p
    with pytest.raises(RecordError, match="a truncate, whose rows are not removed here"):
        dec(b'{"op": "t", "after": null}')
    bad_decimal = dbz_row()
    bad_decimal["balance"] = "not base64!"
    with pytest.raises(RecordError) as e:
        dec(envelope("c", None, bad_decimal))
    assert e.value.reason == "type_mismatch"
    bad_ts = dbz_row()
    bad_ts["created_at"] = 10**30
    with pytest.raises(RecordError) as e:
        dec(envelope("c", None, bad_ts))
    assert e.value.reason == "type_mismatch"


def test_json_type_mismatch_in_row() -> None:
    dec = codecs.value_decoder(JSON_SPEC, None)
    row = dbz_row()
    row["first_name"] = 12
    with pytest.raises(RecordError) as e:
        shape(JSON_SPEC, dec(envelope("c", None, row)), (1004,))
    assert e.value.reason == "type_mismatch"


# --------------------------------------------------------------------------- Avro


@pytest.fixture()
def reg(tmp_path: Path) -> FileRegistry:
    return FileRegistry(tmp_path / "registry")


def avro_row(email: str | None = "annek@noanswer.org") -> dict[str, Any]:
    return {"id": 1004, "first_name": "Anne", "email": email,
            "balance": decimal.Decimal("1234.50"), "birth_date": days(BIRTH),
            "created_at": micros(CREATED), "updated_at": "2024-03-02T09:30:00Z"}


def avro_envelope(op: str, before: Any, after: Any) -> dict[str, Any]:
    return {"before": before, "after": after, "op": op, "ts_ms": 1700000000000,
            "source": {"version": "2.5.0.Final", "connector": "postgresql", "name": "dbserver1",
                       "ts_ms": 1700000000000, "db": "inventory", "schema": "inventory",
                       "table": "customers", "lsn": 1}, "transaction": None}


def test_debezium_avro(reg: FileRegistry) -> None:
    schema = json.loads((SCHEMAS / "debezium-customers-envelope.avsc").read_text())
    enc = avro_encoder(reg, "dbserver1.inventory.customers-value", schema)
    dec = codecs.value_decoder(AVRO_SPEC, reg)
    for op in ("c", "r"):
        assert shape(AVRO_SPEC, dec(enc(avro_envelope(op, None, avro_row()))),
                     (1004,)) == EXPECTED
    fields = dec(enc(avro_envelope("u", avro_row(), avro_row(email=None))))
    assert shape(AVRO_SPEC, fields, (1004,))[2] is None
    assert dec(enc(avro_envelope("d", avro_row(), None))) is DELETE
    with pytest.raises(RecordError) as e:
        dec(enc(avro_envelope("t", None, None)))
    assert e.value.reason == "unsupported_op"
    with pytest.raises(RecordError) as e:
        dec(enc(avro_envelope("c", None, None)))
    assert e.value.reason == "not_debezium"


def test_debezium_avro_rejects_plain_records(reg: FileRegistry) -> None:
    plain = avro_encoder(reg, "u", json.loads((SCHEMAS / "users-value-v1.avsc").read_text()))
    dec = codecs.value_decoder(AVRO_SPEC, reg)
    for _ in range(2):  # the verdict is cached per schema id, and stays a rejection
        with pytest.raises(RecordError) as e:
            dec(plain({"id": 1, "name": "x", "age": None}))
        assert e.value.reason == "not_debezium"


def test_plain_avro_honours_connect_names(reg: FileRegistry) -> None:
    """Debezium with ExtractNewRecordState: flat Avro rows with Connect-named fields."""
    spec = table(COLUMNS, ["id"], "avro")
    env = json.loads((SCHEMAS / "debezium-customers-envelope.avsc").read_text())
    row_schema = env["fields"][0]["type"][1]
    enc = avro_encoder(reg, "flat", row_schema)
    fields = codecs.value_decoder(spec, reg)(enc(avro_row()))
    assert shape(spec, fields, (1004,)) == EXPECTED

"""Record data that reached the table as NULL or as another value, without a word:

- a schemaless JSON field that differs from a column only by surrounding whitespace
  (`"name "`) left the column NULL: `case_mismatch`, as a field differing only in case is;
- a column no object fills while the objects carry fields that are no column (a typo in
  the YAML: `emial` for `email`) was NULL in every row with no signal at all (Avro,
  Protobuf and Connect schemas were logged): the first such object is logged per column;
- a column a schema renamed (a producer's new schema version, a Debezium column renamed in
  the source table) was NULL with no signal under a Debezium JSON wrapper's `after` schema,
  and under a Connect schema whose only field for a declared column is a key column's
  (Avro schemas were logged): now logged once per schema as well;
- an Avro `timestamp-nanos` / `local-timestamp-nanos` long (Avro 1.12; fastavro leaves it
  an integer) in a timestamp column was read as epoch milliseconds (1 s after the epoch
  stored as 1970-01-12; current instants refused as "ms ... outside years 1-9999");
- Connect/Debezium NanoTimestamp and NanoTime keys were floored to the microsecond, so two
  keys of the topic shared one row ("keys are never rounded"): refused, `key_mismatch`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from connectors.registry import FileRegistry
from materializer.columns import parse_type
from materializer.errors import RecordError
from materializer.formats import codecs
from materializer.formats.wire import avro_encoder
from materializer.ingest.relation import open_relation
from materializer.specs import Column, RelationSpec, TableSpec
from materializer.store.store import Store
from materializer.testing import FakeRecord


def spec(columns: dict[str, str], key: list[str], key_format: str = "json",
         value_format: str = "json") -> TableSpec:
    cols = tuple(Column(n, parse_type(t)[0], n in key) for n, t in columns.items())
    return TableSpec(name="public.t", topic="t", columns=cols, key_columns=tuple(key),
                     key_format=key_format, value_format=value_format,  # type: ignore[arg-type]
                     on_error="skip")


def applied(table: RelationSpec, tmp_path: Path, values: list[bytes], registry: Any = None
            ) -> list[Any]:
    """Each value (keys 0, 1, ...) through a real relation: its row, or its rejection's
    (reason, message)."""
    rel = open_relation(table, tmp_path / "data", map_size=1 << 24, registry=registry)
    out = rel.apply({0: [FakeRecord(json.dumps(i).encode(), v, i)
                         for i, v in enumerate(values)]})[0]
    rejected = {r.offset: (r.reason, r.message) for r in out.rejected}
    with Store(tmp_path / "data") as store:
        t = store.table(table.name)
        return [rejected.get(i) or t.get(i) for i in range(len(values))]


USERS = {"id": "int", "name": "string", "n": "long"}


# --------------------------------------------------- a field named with surrounding whitespace

@pytest.mark.parametrize("field", ["name ", " name", "\tName"])
def test_a_json_field_differing_by_surrounding_whitespace_is_not_dropped(
        tmp_path: Path, field: str) -> None:
    got = applied(spec(USERS, ["id"]), tmp_path,
                  [json.dumps({field: "Ann", "n": 1}).encode(), b'{"name": "Bob", "n": 2}'])
    assert got[0][0] == "case_mismatch", got[0]
    assert f"field {field!r} is not a declared column and differs only in case or " \
           "surrounding whitespace from column 'name'" in got[0][1]
    assert got[1] == {"id": 1, "name": "Bob", "n": 2}


def test_a_debezium_json_after_field_with_surrounding_whitespace_is_not_dropped(
        tmp_path: Path) -> None:
    event = {"before": None, "after": {"id": 0, "name ": "Ann", "n": 1}, "op": "c"}
    got = applied(spec(USERS, ["id"], value_format="debezium-json"), tmp_path,
                  [json.dumps(event).encode()])
    assert got[0][0] == "case_mismatch", got[0]


# --------------------------------------------------- a column no object fills

def test_a_column_the_objects_never_fill_is_logged_naming_their_other_fields(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "materializer.formats")
    table = spec({"id": "int", "name": "string", "emial": "string"}, ["id"])
    values = [json.dumps({"name": f"u{i}", "email": f"u{i}@x"}).encode() for i in range(40)]
    got = applied(table, tmp_path, values)
    assert got[0] == {"id": 0, "name": "u0", "emial": None}  # still stored, as documented
    warned = [r.getMessage() for r in caplog.records if "has no field" in r.getMessage()]
    assert warned == ["public.t: the JSON object has no field for column(s) emial, NULL in "
                      "its row (a partial_update column keeps its stored value), and has "
                      "field(s) that are no column: email; check the column names (logged "
                      "once per column)"]


def test_objects_lacking_a_column_without_other_fields_are_not_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "materializer.formats")
    dec = codecs.value_decoder(spec(USERS, ["id"]))
    assert dec(b'{"name": "a"}') == {"name": "a"}  # an absent optional field: nothing lost
    assert dec(b'{"id": 1, "name": "a"}') == {"id": 1, "name": "a"}  # the key's field
    assert not [r for r in caplog.records if "has no field" in r.getMessage()]


# --------------------------------------------------- a field renamed by a new schema version

def _unfilled_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "NULL in its rows" in r.getMessage()]


def test_a_connect_schema_renaming_the_only_value_column_is_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "materializer.formats")
    table = spec({"id": "int", "label": "string"}, ["id"])

    def wrapped(fields: list[str], payload: dict[str, Any]) -> bytes:
        schema = {"type": "struct", "name": "Renamed", "fields": [
            {"field": f, "type": "int32" if f == "id" else "string"} for f in fields]}
        return json.dumps({"schema": schema, "payload": payload}).encode()

    got = applied(table, tmp_path, [wrapped(["id", "label"], {"id": 0, "label": "a"}),
                                    wrapped(["id", "full_label"], {"id": 1, "full_label": "b"})])
    assert got == [{"id": 0, "label": "a"}, {"id": 1, "label": None}]  # stored, as documented
    assert _unfilled_warnings(caplog) == [
        "public.t: the Connect schema Renamed has no field for column(s) label, NULL in its "
        "rows (its fields: id, full_label; a partial_update column keeps its stored value)"]


def test_a_column_renamed_under_a_debezium_json_schema_is_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "materializer.formats")
    table = spec({"id": "int", "title": "string", "n": "int"}, ["id"],
                 value_format="debezium-json")

    def event(fields: list[str], after: dict[str, Any]) -> bytes:
        row = {"type": "struct", "name": "db.renamed.Value", "optional": True, "fields": [
            {"field": f, "type": "string" if "title" in f else "int32"} for f in fields]}
        schema = {"type": "struct", "name": "db.renamed.Envelope", "fields": [
            {**row, "field": "before"}, {**row, "field": "after"},
            {"field": "op", "type": "string"}]}
        return json.dumps({"schema": schema, "payload": {"before": None, "after": after,
                                                         "op": "u"}}).encode()

    got = applied(table, tmp_path, [
        event(["id", "title", "n"], {"id": 0, "title": "a", "n": 1}),
        event(["id", "book_title", "n"], {"id": 1, "book_title": "b", "n": 2})])
    assert got == [{"id": 0, "title": "a", "n": 1}, {"id": 1, "title": None, "n": 2}]
    assert _unfilled_warnings(caplog) == [
        "public.t: the Debezium `after` schema db.renamed.Value has no field for column(s) "
        "title, NULL in its rows (its fields: id, book_title, n; a partial_update column "
        "keeps its stored value)"]


# --------------------------------------------------- Avro timestamp-nanos

NANOS = {"type": "long", "logicalType": "timestamp-nanos"}
LOCAL_NANOS = {"type": "long", "logicalType": "local-timestamp-nanos"}


def test_avro_timestamp_nanos_fill_timestamp_columns_as_nanoseconds(tmp_path: Path) -> None:
    reg = FileRegistry(tmp_path / "registry")
    schema = {"type": "record", "name": "V", "fields": [
        {"name": "id", "type": "int"}, {"name": "a", "type": NANOS},
        {"name": "b", "type": ["null", LOCAL_NANOS]},
        {"name": "c", "type": {"type": "array", "items": NANOS}},
        {"name": "raw", "type": NANOS}]}
    table = spec({"id": "int", "a": "timestamp", "b": "timestamp", "c": "array<timestamp>",
                  "raw": "long"}, ["id"], value_format="avro")
    enc = avro_encoder(reg, "t-value", schema)
    now_ns = 1_700_000_000_123_456_789
    second = dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=dt.UTC)
    got = applied(table, tmp_path, [
        enc({"id": 0, "a": 1_000_000_000, "b": 1_000_000_000, "c": [1_000_000_000],
             "raw": 5}),
        enc({"id": 1, "a": now_ns, "b": None, "c": [], "raw": now_ns})], registry=reg)
    assert got[0] == {"id": 0, "a": second, "b": second, "c": [second], "raw": 5}
    instant = dt.datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=dt.UTC)  # floored
    assert got[1] == {"id": 1, "a": instant, "b": None, "c": [], "raw": now_ns}


# --------------------------------------------------- nanosecond keys are never floored

@pytest.mark.parametrize(("ctype", "name", "exact", "finer"), [
    ("timestamp", "io.debezium.time.NanoTimestamp", 1_000_000_000, 1_000_000_001),
    ("time", "io.debezium.time.NanoTime", 3_600_000_000_000, 3_600_000_000_001)])
def test_connect_nanosecond_keys_are_refused_rather_than_floored(
        ctype: str, name: str, exact: int, finer: int) -> None:
    table = spec({"k": ctype, "v": "string"}, ["k"])
    decode = codecs.key_decoder(table)

    def bare(n: int) -> bytes:
        return json.dumps({"schema": {"type": "int64", "name": name}, "payload": n}).encode()

    def struct(n: int) -> bytes:
        return json.dumps({"schema": {"type": "struct", "fields": [
            {"field": "k", "type": "int64", "name": name}]}, "payload": {"k": n}}).encode()

    for wrap in (bare, struct):
        assert decode(wrap(exact)) == (exact // 1000,)
        with pytest.raises(RecordError) as e:
            decode(wrap(finer))
        assert e.value.reason == "key_mismatch"
        assert f"{finer} ns is finer than the microseconds a {ctype} keeps" in str(e.value)


@pytest.mark.parametrize("node", [
    {"type": "long", "connect.name": "io.debezium.time.NanoTimestamp"}, NANOS])
def test_avro_nanosecond_keys_are_refused_rather_than_floored(
        tmp_path: Path, node: dict[str, Any]) -> None:
    reg = FileRegistry(tmp_path / "registry")
    table = spec({"k": "timestamp", "v": "string"}, ["k"], key_format="avro")
    decode = codecs.key_decoder(table, reg)
    prim = avro_encoder(reg, "p-key", node)
    rec = avro_encoder(reg, "r-key", {"type": "record", "name": "K",
                                      "fields": [{"name": "k", "type": node}]})
    assert decode(prim(1_000_000_000)) == (1_000_000,)
    assert decode(rec({"k": 1_000_000_000})) == (1_000_000,)
    for raw in (prim(1_000_000_001), rec({"k": 1_000_000_001})):
        with pytest.raises(RecordError) as e:
            decode(raw)
        assert e.value.reason == "key_mismatch" and "finer than the microseconds" in str(e.value)

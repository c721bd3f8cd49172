"""A record whose data sat under another spelling than its column's, stored as NULL without
a word, or refused where it can be read:

- a Kafka Connect `{"schema", "payload"}` value (json, json_sr) or a Debezium JSON event
  under the wrapper whose payload had the column's field in another case than its schema
  (`NAME` in the payload, `name` in the schema) stored NULL silently, where the same
  object without the wrapper is `case_mismatch`;
- a schema naming the column's field in another case (`Name`) over a payload holding the
  column's own name (`name`) overwrote that value with NULL;
- a payload lacking a field its schema lists for a column, with a field that is no column
  instead, was stored NULL with no warning (without the wrapper it is logged);
- in a partial update, a payload lacking a field its schema lists under a Connect logical
  type (a plan entry) set the column NULL, where a payload lacking any other field keeps the
  stored value;
- RFC 3339 (JSON Schema's `date-time` and `time` formats) allows a lower-case `z`, which
  Python's fromisoformat refuses: `2024-01-01T00:00:00z` was `type_mismatch`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from materializer.formats.wire import HEADER_SIZE
from materializer.ingest.relation import open_relation
from materializer.specs import RelationSpec
from materializer.store.store import Store
from materializer.testing import FakeRecord
from tests.formats.test_nulls_where_data_was import applied, spec

USERS = {"id": "int", "name": "string", "n": "long"}
TYPES = {"id": "int32", "n": "int64"}


def wrapped(fields: list[str], payload: dict[str, Any], types: dict[str, Any] | None = None
            ) -> bytes:
    """A Connect-wrapped value whose schema lists `fields` (optional; `types` by field)."""
    given = {**TYPES, **(types or {})}
    schema = {"type": "struct", "name": "S", "fields": [
        {"field": f, "type": "string", "optional": True, **(
            given[f] if isinstance(given.get(f), dict) else
            {"type": given.get(f, "string")})} for f in fields]}
    return json.dumps({"schema": schema, "payload": payload}).encode()


def debezium(fields: list[str], after: dict[str, Any]) -> bytes:
    row = {"type": "struct", "name": "db.t.Value", "optional": True, "fields": [
        {"field": f, "type": TYPES.get(f, "string"), "optional": True} for f in fields]}
    schema = {"type": "struct", "name": "db.t.Envelope", "fields": [
        {**row, "field": "before"}, {**row, "field": "after"},
        {"field": "op", "type": "string"}]}
    return json.dumps({"schema": schema, "payload": {"before": None, "after": after,
                                                     "op": "c"}}).encode()


def _framed(b: bytes) -> bytes:
    return b"\x00" + (1).to_bytes(HEADER_SIZE - 1, "big") + b


# ------------------------------------- a payload field in another case than its schema's

@pytest.mark.parametrize("value_format", ["json", "json_sr"])
def test_a_connect_payload_field_in_another_case_than_its_schema_is_not_dropped(
        tmp_path: Path, value_format: str) -> None:
    frame = _framed if value_format == "json_sr" else (lambda b: b)
    got = applied(spec(USERS, ["id"], value_format=value_format), tmp_path, [
        frame(wrapped(["id", "name", "n"], {"id": 0, "NAME": "Ann", "n": 1})),
        frame(wrapped(["id", "NAME", "n"], {"id": 1, "NAME": "Bob", "n": 2}))])
    assert isinstance(got[0], tuple) and got[0][0] == "case_mismatch", got[0]
    assert ("field 'NAME' is not a declared column and differs only in case or surrounding "
            "whitespace from column 'name', which the object lacks: its Connect schema gives "
            "no field of the payload for that column") in got[0][1]
    assert got[1] == {"id": 1, "name": "Bob", "n": 2}  # schema and payload agree: read


def test_a_debezium_after_field_in_another_case_than_its_schema_is_not_dropped(
        tmp_path: Path) -> None:
    got = applied(spec(USERS, ["id"], value_format="debezium-json"), tmp_path, [
        debezium(["id", "name", "n"], {"id": 0, "NAME": "Ann", "n": 1}),
        debezium(["id", "NAME", "n"], {"id": 1, "NAME": "Bob", "n": 2})])
    assert isinstance(got[0], tuple) and got[0][0] == "case_mismatch", got[0]
    assert got[1] == {"id": 1, "name": "Bob", "n": 2}


def test_a_schema_naming_the_field_in_another_case_does_not_erase_the_payloads_value(
        tmp_path: Path) -> None:
    """The plan renames the schema's `Name` to the column; a payload without `Name` but with
    `name` had its `name` overwritten by NULL."""
    got = applied(spec(USERS, ["id"]), tmp_path, [
        wrapped(["id", "Name", "n"], {"id": 0, "name": "Ann", "n": 1}),
        wrapped(["id", "Name", "n"], {"id": 1, "Name": "Bob", "n": 2})])
    assert isinstance(got[0], tuple) and got[0][0] == "case_mismatch", got[0]
    assert ("field 'name' is not in the record's schema, which names field 'Name' for "
            "column 'name', and the record lacks 'Name'") in got[0][1]
    assert got[1] == {"id": 1, "name": "Bob", "n": 2}


def test_a_payload_lacking_its_schemas_field_for_a_column_is_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "materializer.formats")
    got = applied(spec(USERS, ["id"]), tmp_path, [
        wrapped(["id", "name", "n"], {"id": 0, "name": "Ann", "count": 1}),
        wrapped(["id", "name", "n"], {"id": 1, "name": "Bob", "count": 2})])
    assert got == [{"id": 0, "name": "Ann", "n": None}, {"id": 1, "name": "Bob", "n": None}]
    logged = [r.getMessage() for r in caplog.records if "NULL in its row" in r.getMessage()]
    assert logged == [
        "public.t: the JSON object has no field for column(s) n, NULL in its row (a "
        "partial_update column keeps its stored value), and has field(s) that are no "
        "column: count; check the column names (logged once per column)"]


# ------------------------------------- partial update: a planned field the payload lacks

def _partial_rows(table: RelationSpec, tmp_path: Path, values: list[bytes]) -> Any:
    """The values applied in order to key 0 of a real relation: the stored row."""
    rel = open_relation(table, tmp_path / "data", map_size=1 << 24)
    out = rel.apply({0: [FakeRecord(b"0", v, i) for i, v in enumerate(values)]})[0]
    assert not out.rejected, out.rejected
    with Store(tmp_path / "data") as store:
        return store.table(table.name).get(0)


def test_a_partial_update_keeps_a_column_whose_planned_field_the_payload_lacks(
        tmp_path: Path) -> None:
    table = dataclasses.replace(spec({"id": "int", "name": "string", "ts": "timestamp"},
                                     ["id"]), partial_update=("name", "ts"))
    ts = {"type": "int64", "name": "io.debezium.time.MicroTimestamp"}
    first = wrapped(["id", "name", "ts"], {"id": 0, "name": "Ann", "ts": 1_000_000},
                    {"ts": ts})
    second = wrapped(["id", "name", "ts"], {"id": 0, "name": "Bob"}, {"ts": ts})
    moment = dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=dt.UTC)
    assert _partial_rows(table, tmp_path, [first, second]) == {
        "id": 0, "name": "Bob", "ts": moment}


# ------------------------------------- RFC 3339's lower-case z

@pytest.mark.parametrize("value_format", ["json", "json_sr"])
def test_rfc3339_lower_case_z_is_utc(tmp_path: Path, value_format: str) -> None:
    frame = _framed if value_format == "json_sr" else (lambda b: b)
    table = spec({"id": "int", "ts": "timestamp", "t": "time"}, ["id"],
                 value_format=value_format)
    got = applied(table, tmp_path, [
        frame(json.dumps({"id": 0, "ts": "2024-05-03t10:20:30.5z", "t": "10:20:30z"}).encode()),
        frame(json.dumps({"id": 1, "ts": "2024-05-03T10:20:30.5Z", "t": "10:20:30Z"}).encode()),
        frame(json.dumps({"id": 2, "ts": "2024-13-03T10:20:30z"}).encode())])
    moment = dt.datetime(2024, 5, 3, 10, 20, 30, 500000, tzinfo=dt.UTC)
    assert got[0] == {"id": 0, "ts": moment, "t": dt.time(10, 20, 30)}
    assert got[1] == {"id": 1, "ts": moment, "t": dt.time(10, 20, 30)}
    assert got[2] == ("type_mismatch",  # the text as it came in the message
                      "value: column 'ts': Invalid isoformat string: '2024-13-03T10:20:30z'")

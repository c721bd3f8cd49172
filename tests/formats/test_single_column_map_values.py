"""A table with one value column whose producer writes the column's value itself, not a
record of it: an Avro value schema that is a `map` (or `["null", map]`), a Connect JSON
wrapper whose schema is a `map`. Such a value is the column's value, whatever it holds.

Failed before (probe h86, schema evolution: a value schema going from a record holding
the map to the bare map, or back): the map read as a mapping was taken for the fields of
a row, so its entries were matched to the columns. The column was NULL (Avro, silently)
or the record refused as `no_declared_columns` (Connect), and a map holding an entry
named as the column stored that entry's value instead of the map (`{"attrs": 7, "x": 1}`
as 7); an Avro map<string,string> holding `__deleted: "true"` deleted the row. A union of
a record and a map cannot be told apart (both read as a mapping): refused, not guessed.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from connectors.registry import FileRegistry
from materializer.columns import parse_type
from materializer.formats.wire import avro_encoder
from materializer.ingest.relation import open_relation
from materializer.specs import Column, TableSpec
from materializer.store.store import Store
from materializer.testing import FakeRecord

MAP = {"type": "map", "values": "long"}
HOLDER = {"type": "record", "name": "Holder", "fields": [{"name": "attrs", "type": MAP}]}


def spec(column: str, value_format: str) -> TableSpec:
    cols = (Column("id", parse_type("int")[0], True), Column("attrs", parse_type(column)[0]))
    return TableSpec(name="public.t", topic="t", columns=cols, key_columns=("id",),
                     key_format="json", value_format=value_format,  # type: ignore[arg-type]
                     on_error="skip")


def applied(table: TableSpec, tmp_path: Path, values: list[bytes], registry: Any = None
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


def test_an_avro_map_value_is_the_columns_value_across_schema_versions(tmp_path: Path) -> None:
    reg = FileRegistry(tmp_path / "registry")
    holder = avro_encoder(reg, "t-value", HOLDER)
    bare = avro_encoder(reg, "t-value", MAP)
    nullable = avro_encoder(reg, "t-value", ["null", MAP])
    for column in ("map<string,long>", "json"):
        got = applied(spec(column, "avro"), tmp_path / column[:3], [
            holder({"attrs": {"a": 1}}),
            bare({"a": 1, "b": 2}),
            bare({"attrs": 7, "x": 1}),  # an entry named as the column: still the whole map
            nullable({"c": 3}),
            bare({}),
        ], reg)
        assert got == [{"id": 0, "attrs": {"a": 1}}, {"id": 1, "attrs": {"a": 1, "b": 2}},
                       {"id": 2, "attrs": {"attrs": 7, "x": 1}}, {"id": 3, "attrs": {"c": 3}},
                       {"id": 4, "attrs": {}}], column


def test_an_avro_map_holding_a_deleted_entry_is_no_delete(tmp_path: Path) -> None:
    reg = FileRegistry(tmp_path / "registry")
    bare = avro_encoder(reg, "t-value", {"type": "map", "values": "string"})
    got = applied(spec("map<string,string>", "avro"), tmp_path,
                  [bare({"__deleted": "true", "k": "v"})], reg)
    assert got == [{"id": 0, "attrs": {"__deleted": "true", "k": "v"}}]


def test_an_avro_union_of_a_record_and_a_map_is_refused(tmp_path: Path) -> None:
    reg = FileRegistry(tmp_path / "registry")
    both = avro_encoder(reg, "t-value", [HOLDER, MAP])
    other = avro_encoder(reg, "t-value", ["string", HOLDER])
    got = applied(spec("json", "avro"), tmp_path,
                  [both({"attrs": {"a": 1}}), both({"x": 1}), other({"attrs": {"a": 2}}),
                   other("s")], reg)
    for refused in got[:2]:
        assert refused[0] == "not_a_record", refused
        assert "union of a record and a map" in refused[1]
    # a union whose only mapping is a record still gives the fields of a row
    assert got[2:] == [{"id": 2, "attrs": {"a": 2}}, {"id": 3, "attrs": "s"}]


def connect(schema: dict[str, Any], payload: Any, framed: bool = False) -> bytes:
    text = json.dumps({"schema": schema, "payload": payload}).encode()
    return b"\x00\x00\x00\x00\x01" + text if framed else text


def test_a_connect_map_payload_is_the_columns_value(tmp_path: Path) -> None:
    schema = {"type": "map", "keys": {"type": "string"}, "values": {"type": "int64"}}
    struct = {"type": "struct", "fields": [{"field": "attrs", "type": "map",
                                            "keys": {"type": "string"},
                                            "values": {"type": "int64"}}]}
    for fmt, framed in (("json", False), ("json_sr", True)):
        for column in ("map<string,long>", "json"):
            got = applied(spec(column, fmt), tmp_path / f"{fmt}-{column[:3]}", [
                connect(struct, {"attrs": {"a": 1}}, framed),
                connect(schema, {"a": 1, "b": 2}, framed),
                connect(schema, {"attrs": 7}, framed),
                connect(schema, None, framed),  # a null payload: a delete, as before
            ])
            assert got == [{"id": 0, "attrs": {"a": 1}}, {"id": 1, "attrs": {"a": 1, "b": 2}},
                           {"id": 2, "attrs": {"attrs": 7}}, None], (fmt, column)


def test_a_connect_map_of_timestamps_is_converted(tmp_path: Path) -> None:
    schema = {"type": "map", "keys": {"type": "string"},
              "values": {"type": "int64", "name": "io.debezium.time.MicroTimestamp"}}
    got = applied(spec("map<string,timestamp>", "json"), tmp_path,
                  [connect(schema, {"a": 1_700_000_000_000_001})])
    assert got == [{"id": 0, "attrs": {"a": dt.datetime(2023, 11, 14, 22, 13, 20, 1,
                                                         tzinfo=dt.UTC)}}]

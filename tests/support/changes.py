"""Change-event test helpers: a table of every column type, rows of it, Debezium `source`."""

from __future__ import annotations

from typing import Any

from materializer import __version__
from materializer.columns import parse_type
from materializer.specs import ChangesSpec, Column, TableSpec
from materializer.values import to_storage

COLUMNS = {
    "id": "int not null", "name": "string", "price": "decimal(10,2)", "born": "date",
    "at": "timestamp", "t": "time", "blob": "bytes", "u": "uuid", "doc": "json",
    "tags": "array<string>", "attrs": "map<string,decimal(5,1)>", "ok": "boolean",
    "big": "long", "ratio": "double",
}


def table(changes: ChangesSpec | None = None, columns: dict[str, str] | None = None,
          key: tuple[str, ...] = ("id",), name: str = "shop.items") -> TableSpec:
    cols = []
    for n, text in (columns or COLUMNS).items():
        t, nn = parse_type(text)
        cols.append(Column(n, t, nn or n in key))
    return TableSpec(name=name, topic="items", columns=tuple(cols), key_columns=key,
                     changes=changes or ChangesSpec(topic="items.changes"))


def stored(spec: TableSpec, row: dict[str, Any]) -> tuple[Any, ...]:
    """A row given in decoded (JSON-ish) form -> its stored tuple in declaration order."""
    return tuple(None if row.get(c.name) is None else to_storage(c.type)(row[c.name])
                 for c in spec.columns)


ROW: dict[str, Any] = {"id": 7, "name": "Ada", "price": "12.5", "born": "1990-03-04",
       "at": "2024-05-06T07:08:09.123456Z", "t": "10:11:12.500000", "blob": "AAEC/w==",
       "u": "0E0B6A2C-3C53-4E4B-9A7E-9B8E2D1F0A11", "doc": {"a": [1, {"b": None}]},
       "tags": ["x", None], "attrs": {"k": "1.25", "n": None}, "ok": True,
       "big": 2**40, "ratio": 0.5}
JSON_ROW = {**ROW, "price": "12.50", "u": "0e0b6a2c-3c53-4e4b-9a7e-9b8e2d1f0a11",
            "attrs": {"k": "1.2", "n": None}}


def source(partition: int, offset: int, ts_ms: int, snapshot: str = "false",
           table: str = "shop.items") -> dict[str, Any]:
    """Debezium's required source fields, then SPEC §5's table/topic/partition/offset."""
    return {"version": __version__, "connector": "materializer", "name": "materializer",
            "ts_ms": ts_ms, "snapshot": snapshot, "db": table.split(".")[0], "table": table,
            "topic": "items", "partition": partition, "offset": offset}

"""Where an `lmdb://` store keeps a faust table (`data_dir_of`), whether the relation the
directory holds under the table's name is that table's, and that only one worker writes
it: what `LmdbStore` decides and refuses at start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from faust.exceptions import ImproperlyConfigured
from faust.types import AppT
from yarl import URL

from materializer.errors import StoreError
from materializer.store.layout import relation_key
from materializer.store.lock import hold_for_life

VIEW = "faust"
"""The identity's `view`: `materializer.Store` reads the relation with `FaustTableView`."""


def data_dir_of(url: URL, app: AppT) -> Path:
    """`lmdb://` -> faust's table directory; `lmdb:///abs/dir`; `lmdb://./rel/dir`."""
    host = url.raw_host or ""
    if host == "" and url.path in ("", "/"):
        return Path(app.conf.tabledir)
    if host == "":
        return Path(url.path)
    if host == ".":
        return Path("." + url.path)
    raise ImproperlyConfigured(
        f"{url}: say where the tables go as lmdb:// (faust's tabledir), lmdb:///absolute/dir "
        "or lmdb://./relative/dir")


def hold_table(data_dir: Path, table: str) -> None:
    """Hold the table's flock for this process's life (`.faust-<table>.lock`): two
    workers on one table would mark each other's partitions revoked and read their own
    as empty (RocksDB refuses the second worker too). StoreError naming the holder."""
    hold_for_life(data_dir / f".faust-{relation_key(table)}.lock",
                  f"{data_dir}: faust table {table} is in use by another worker ({{holder}}): "
                  "one faust worker per lmdb:// directory (give each worker its own datadir "
                  "or lmdb:// directory)")


def check_identity(data_dir: Path, table: str, old: dict[str, Any], new: dict[str, Any]
                   ) -> None:
    """StoreError unless the stored relation (identity `old`) can continue as the table
    declared now (`new`): a faust table, of the same changelog topic (another app's rows
    and offsets are another changelog's), with the same serializers and windowing."""
    if old.get("view") != VIEW:
        raise StoreError(f"{data_dir}: {table} is a materializer table, not a faust table: "
                         "give the faust table another name or another lmdb:// directory")
    if old.get("topic") != new["topic"]:
        raise StoreError(
            f"{data_dir}: faust table {table} holds the changelog {old.get('topic')!r} "
            f"(app {old['faust'].get('app')!r}), not {new['topic']!r}: its rows and offsets "
            "are another changelog's. Give this app another lmdb:// directory, or delete "
            "that table's local state (reset the table) to rebuild it from this changelog")
    for k in ("key_serializer", "value_serializer", "windowed"):
        if old["faust"].get(k) != new["faust"].get(k):
            raise StoreError(
                f"{data_dir}: faust table {table}: {k} changed from {old['faust'].get(k)!r} "
                f"to {new['faust'].get(k)!r}; delete its local state (reset the table) to "
                "rebuild it from the changelog")

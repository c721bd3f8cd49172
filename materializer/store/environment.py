"""LMDB environments (one per relation and process), paths, metadata and key layout of `meta`."""

from __future__ import annotations

import json
import os
import shutil
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb

from materializer.columns import ColumnType, parse_type
from materializer.errors import StoreError, UsageError

META = b"meta"
OFFSET = struct.Struct(">Q")
_LOCK = threading.Lock()
_ENVS: dict[tuple[str, bool], lmdb.Environment] = {}
_ENV_INODES: dict[tuple[str, bool], int] = {}
MAX_DBS = 4096


def relations_dir(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / "relations"


def relation_dir(data_dir: str | os.PathLike[str], name: str) -> Path:
    if "/" in name or name in (".", "..") or "\x00" in name:
        raise UsageError(f"invalid relation name {name!r}")
    return relations_dir(data_dir) / name


def partition_db_name(partition: int) -> bytes:
    return b"p:%d" % partition


def file_inode(path: Path) -> int:
    try:
        return (path / "data.mdb").stat().st_ino
    except OSError:
        return -1


def open_env(path: Path, writable: bool, map_size: int) -> lmdb.Environment:
    """One environment per path and process (LMDB forbids opening one twice).

    A read-only environment whose files were replaced (by `rebuild` in another
    process) is closed and opened again."""
    key = (str(path.resolve()), writable)
    with _LOCK:
        env = _ENVS.get(key)
        if env is not None and not writable and _ENV_INODES.get(key) != file_inode(path):
            env.close()
            del _ENVS[key]
            env = None
        if env is None:
            other = _ENVS.get((key[0], not writable))
            if other is not None and not writable:
                return other  # a writer in this process serves reads too
            try:
                if writable:
                    path.mkdir(parents=True, exist_ok=True)
                    env = lmdb.open(str(path), map_size=map_size, max_dbs=MAX_DBS,
                                    max_readers=512, sync=True, metasync=True)
                else:
                    env = lmdb.open(str(path), readonly=True, lock=True, max_dbs=MAX_DBS,
                                    max_readers=512, create=False)
                env.reader_check()  # clear reader slots left by crashed processes
            except lmdb.Error as e:
                raise StoreError(f"cannot open LMDB environment {path}: {e}") from e
            _ENVS[key] = env
            _ENV_INODES[key] = file_inode(path)
        return env


def read_txn(env: lmdb.Environment) -> lmdb.Transaction[bytes]:
    """A read transaction; if the writer grew the file past this process's mapping,
    adopt the new size first (LMDB reports that as MapResizedError)."""
    try:
        return env.begin()
    except lmdb.MapResizedError:
        env.set_mapsize(0)
        return env.begin()


def close_env(path: Path) -> None:
    resolved = str(path.resolve())
    with _LOCK:
        for writable in (True, False):
            env = _ENVS.pop((resolved, writable), None)
            if env is not None:
                env.close()


def drop_relation(data_dir: str | os.PathLike[str], name: str) -> bool:
    """Delete the local state of one relation (for `rebuild`). Returns whether it existed."""
    path = relation_dir(data_dir, name)
    close_env(path)
    if path.exists():
        shutil.rmtree(path)
        return True
    return False


# ------------------------------------------------------------------------- metadata


@dataclass(frozen=True, slots=True)
class RelationMeta:
    """What a reader needs to interpret a relation's bytes, read from its `meta` DB."""

    identity: dict[str, Any]
    layout: tuple[str, ...]

    @property
    def kind(self) -> str:
        return str(self.identity["kind"])

    @property
    def name(self) -> str:
        return str(self.identity["name"])

    @property
    def key_columns(self) -> tuple[str, ...]:
        return tuple(self.identity["key"])

    def column_types(self) -> dict[str, ColumnType]:
        return {c[0]: parse_type(c[1])[0] for c in self.identity["columns"]}


def read_meta(txn: lmdb.Transaction[bytes], meta_db: Any) -> RelationMeta | None:
    ident = txn.get(b"identity", db=meta_db)
    layout = txn.get(b"layout", db=meta_db)
    if ident is None or layout is None:
        return None
    return RelationMeta(json.loads(ident), tuple(json.loads(layout)))


def offset_key(partition: int) -> bytes:
    return b"offset:%d" % partition


def counter_key(partition: int, name: str) -> bytes:
    return b"count:%d:" % partition + name.encode()

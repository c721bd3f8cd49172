"""The single writer of a relation: rows, next offsets and counters in one transaction."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import lmdb

from materializer.errors import StoreError, UsageError
from materializer.store.environment import (
    META,
    OFFSET,
    RelationMeta,
    counter_key,
    offset_key,
    open_env,
    partition_db_name,
    read_meta,
    relation_dir,
)

# --------------------------------------------------------------------------- writer


class RelationWriter:
    """The single writer of one relation's environment (owned by the worker)."""

    def __init__(self, data_dir: str | os.PathLike[str], name: str, map_size: int) -> None:
        self.path = relation_dir(data_dir, name)
        self.env = open_env(self.path, True, map_size)
        self._meta_db = self.env.open_db(META)
        self._dbs: dict[int, Any] = {}

    def meta(self) -> RelationMeta | None:
        with self.env.begin(db=self._meta_db) as txn:
            return read_meta(txn, self._meta_db)

    def write_meta(self, identity: dict[str, Any], layout: Sequence[str]) -> None:
        with self.env.begin(write=True) as txn:
            txn.put(b"identity", json.dumps(identity).encode(), db=self._meta_db)
            txn.put(b"layout", json.dumps(list(layout)).encode(), db=self._meta_db)

    def db(self, partition: int, txn: lmdb.Transaction[bytes] | None = None) -> Any:
        """The named DB of a partition, created (and listed in meta) on first use.

        Pass the open write transaction when there is one: LMDB has one writer lock
        and it is not reentrant."""
        db = self._dbs.get(partition)
        if db is None:
            if txn is None:
                with self.env.begin(write=True) as own:
                    return self._create_db(partition, own)
            return self._create_db(partition, txn)
        return db

    def _create_db(self, partition: int, txn: lmdb.Transaction[bytes]) -> Any:
        db = self.env.open_db(partition_db_name(partition), txn=txn)
        parts = set(json.loads(txn.get(b"partitions", b"[]", db=self._meta_db)))
        if partition not in parts:
            parts.add(partition)
            txn.put(b"partitions", json.dumps(sorted(parts)).encode(), db=self._meta_db)
        self._dbs[partition] = db
        return db

    def forget_handles(self) -> None:
        """After an aborted transaction, DB handles it created are gone."""
        self._dbs.clear()

    def next_offsets(self) -> dict[int, int]:
        """Per partition, the next source offset to apply (absent: start from the beginning)."""
        out: dict[int, int] = {}
        with self.env.begin(db=self._meta_db) as txn:
            cur = txn.cursor()
            if cur.set_range(b"offset:"):
                for k, v in cur:
                    if not k.startswith(b"offset:"):
                        break
                    out[int(k[7:])] = OFFSET.unpack(v)[0]
        return out

    def begin(self) -> WriteBatch:
        return WriteBatch(self)

    # -- side databases (the change outbox of materializer.changes) ----------------------
    # Call these outside any open WriteBatch: they run their own short transactions.

    def named_db(self, name: bytes) -> Any:
        """A named DB beside the partitions and `meta`, created if missing; write to it
        inside a WriteBatch (`put_many`) so it commits together with the rows."""
        if name == META or name.startswith(b"p:"):
            raise UsageError(f"database name {name!r} is reserved")
        try:
            return self.env.open_db(name)
        except lmdb.Error as e:
            raise StoreError(f"cannot open database {name!r} in {self.path}: {e}") from e

    def first_items(self, db: Any, limit: int) -> list[tuple[bytes, bytes]]:
        """Up to `limit` committed (key, value) pairs of `db`, smallest keys first."""
        out: list[tuple[bytes, bytes]] = []
        if limit <= 0:
            return out
        with self.env.begin(db=db) as txn:
            for k, v in txn.cursor():
                out.append((k, v))
                if len(out) >= limit:
                    break
        return out

    def last_key(self, db: Any) -> bytes | None:
        """The largest committed key of `db`, or None if it is empty."""
        with self.env.begin(db=db) as txn:
            cur = txn.cursor()
            return bytes(cur.key()) if cur.last() else None

    def entries(self, db: Any) -> int:
        """How many committed entries `db` holds (O(1))."""
        with self.env.begin() as txn:
            return int(txn.stat(db)["entries"])

    def delete_keys(self, db: Any, keys: Sequence[bytes]) -> None:
        """Delete `keys` from `db` in one write transaction, committed on return."""
        try:
            with self.env.begin(write=True, db=db) as txn:
                for k in keys:
                    txn.delete(k)
        except lmdb.Error as e:
            raise StoreError(f"cannot delete from {self.path}: {e}") from e


class WriteBatch:
    """One write transaction: rows, next offsets and counters commit together or not at all.

    Use as a context manager; leaving it by an exception aborts everything.
    """

    __slots__ = ("_writer", "txn", "_meta_db")

    def __init__(self, writer: RelationWriter) -> None:
        self._writer = writer
        self._meta_db = writer._meta_db
        try:
            self.txn = writer.env.begin(write=True)
        except lmdb.Error as e:
            raise StoreError(f"cannot begin a write transaction: {e}") from e

    def __enter__(self) -> WriteBatch:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.txn.abort()
            self._writer.forget_handles()

    def db(self, partition: int) -> Any:
        return self._writer.db(partition, self.txn)

    def get(self, db: Any, key: bytes) -> bytes | None:
        v: bytes | None = self.txn.get(key, db=db)
        return v

    def put(self, db: Any, key: bytes, value: bytes) -> None:
        self.txn.put(key, value, db=db)

    def delete(self, db: Any, key: bytes) -> bool:
        return bool(self.txn.delete(key, db=db))

    def put_many(self, db: Any, items: list[tuple[bytes, bytes]]) -> None:
        self.txn.cursor(db=db).putmulti(items)

    def cursor(self, db: Any) -> lmdb.Cursor[bytes]:
        return self.txn.cursor(db=db)

    def set_next_offset(self, partition: int, offset: int) -> None:
        self.txn.put(offset_key(partition), OFFSET.pack(offset), db=self._meta_db)

    def add_counter(self, partition: int, name: str, n: int) -> None:
        key = counter_key(partition, name)
        old = self.txn.get(key, db=self._meta_db)
        self.txn.put(key, OFFSET.pack((OFFSET.unpack(old)[0] if old else 0) + n), db=self._meta_db)

    def put_meta(self, key: bytes, value: bytes) -> None:
        self.txn.put(key, value, db=self._meta_db)

    def get_meta(self, key: bytes) -> bytes | None:
        v: bytes | None = self.txn.get(key, db=self._meta_db)
        return v

    def delete_meta(self, key: bytes) -> None:
        self.txn.delete(key, db=self._meta_db)

    def meta_cursor(self) -> lmdb.Cursor[bytes]:
        return self.txn.cursor(db=self._meta_db)

    def commit(self) -> None:
        try:
            self.txn.commit()
        except lmdb.Error as e:
            raise StoreError(f"commit failed: {e}") from e

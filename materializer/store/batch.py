"""One write transaction of a relation (`WriteBatch`, its partitions' `PartitionWriter`),
and the committed state a batch is decided on before it (`CommittedState`).

Guarantees:
- Everything written through one `WriteBatch` (rows of any partitions, next offsets,
  counters, side-table entries such as staged change events) commits atomically;
  callbacks given to `after_commit` run only after the commit.
- A partition's rows change only in a batch that also sets its next offset, so a write
  transaction that reads the offset a `CommittedState` read finds the same rows.
- LMDB failures surface as `StoreError`; a full map as `MapFull`, which the caller
  answers with `RelationWriter.grow()` (up to the `store.map_size` ceiling) and a retry.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import lmdb

from materializer.errors import StoreError
from materializer.store.environment import OFFSET, begin, counter_key, offset_key
from materializer.store.keys import STREAM_KEY_SUFFIX, stream_key
from materializer.store.rows import decode_row, encode_event, encode_row

if TYPE_CHECKING:
    from materializer.store.writer import RelationWriter, SideTable


class MapFull(StoreError):
    """The LMDB map is full; `RelationWriter.grow()` may make room (then retry)."""

    retriable = False


@contextmanager
def translated(path: Any, what: str) -> Iterator[None]:
    """LMDB errors raised inside as the project's own (MapFull, StoreError)."""
    try:
        yield
    except lmdb.MapFullError as e:
        raise MapFull(f"{path}: the LMDB map is full while {what} (its size may grow up to "
                      "`store.map_size` in the declaration file)") from e
    except lmdb.Error as e:
        raise StoreError(f"{path}: LMDB failed while {what}: {e}{_full_disk(path)}") from e


FULL_BELOW = 1 << 20
"""Free bytes under which a failed write is put down to a full file system (LMDB reports
a short write there as "Input/output error", not ENOSPC)."""


def _full_disk(path: Any) -> str:
    """What to add to an LMDB failure when the file system holding `path` is full."""
    try:
        st = os.statvfs(path)
    except (OSError, TypeError, ValueError):
        return ""
    free = st.f_bavail * st.f_frsize
    if free >= FULL_BELOW:
        return ""
    return (f" (the file system holding it is full: {free:,} bytes free; make room and "
            "start again: what was committed is kept)")


class CommittedState:
    """Stored rows and next offsets as one read transaction sees them. A partition's rows
    change only in a batch that also moves its next offset, so a write transaction that
    reads the same `next_offset` finds the same rows (`WriteBatch.next_offset`)."""

    __slots__ = ("_writer", "_txn")

    def __init__(self, writer: RelationWriter, txn: lmdb.Transaction[bytes]) -> None:
        self._writer = writer
        self._txn = txn

    def next_offset(self, partition: int) -> int:
        return _stored_offset(self._txn, self._writer._meta_db, partition)

    def partition(self, partition: int) -> PartitionWriter | None:
        """The partition's stored rows to read (`get` only), or None while this process
        has not opened its database in a write transaction yet."""
        db = self._writer._dbs.get(partition)
        if db is None:
            return None
        return PartitionWriter(self._txn, db, self._writer.width, self._writer.path)


class PartitionWriter:
    """Rows (tables) or events (streams) of one partition, inside a `WriteBatch`."""

    __slots__ = ("_txn", "_db", "_width", "_path")

    def __init__(self, txn: lmdb.Transaction[bytes], db: Any, width: int, path: Any) -> None:
        self._txn = txn
        self._db = db
        self._width = width
        self._path = path

    def get(self, key: bytes) -> tuple[Any, ...] | None:
        """The stored row of an encoded key (padded to the layout), or None."""
        raw = self._txn.get(key, db=self._db)
        return None if raw is None else decode_row(raw, self._width)

    def put_rows(self, rows: dict[bytes, tuple[Any, ...] | None]) -> None:
        """Store each row under its encoded key; None deletes the key."""
        dumps = encode_row
        puts = [(k, dumps(v)) for k, v in rows.items() if v is not None]
        with translated(self._path, "writing rows"):
            if puts:
                self._txn.cursor(db=self._db).putmulti(puts)
            if len(puts) != len(rows):
                delete = self._txn.delete
                for k, v in rows.items():
                    if v is None:
                        delete(k, db=self._db)

    def append_events(self, events: Sequence[tuple[bytes, int, int, tuple[Any, ...] | None]],
                      keep: int) -> None:
        """Append stream events (encoded key, offset, timestamp ms, row or None), then keep
        only the `keep` newest events of every key they touched."""
        if not events:
            return
        items = [(stream_key(kb, offset), encode_event(ts, row)) for kb, offset, ts, row in events]
        with translated(self._path, "appending events"):
            self._txn.cursor(db=self._db).putmulti(items)
            self._trim({kb for kb, _, _, _ in events}, keep)

    def trim_every_key(self, keep: int) -> int:
        """Keep only the `keep` newest events of every key this partition holds (a
        retention lowered since they were appended); the number of events deleted."""
        cur = self._txn.cursor(db=self._db)
        deleted = 0
        current = None
        n = 0
        with translated(self._path, "trimming events"):
            ok = cur.last()
            while ok:
                k = cur.key()
                kb = k[:-STREAM_KEY_SUFFIX]
                if kb != current:
                    current, n = bytes(kb), 0
                n += 1
                if n > keep:  # never the newest (keep >= 1): a later event follows it
                    cur.delete()  # LMDB moves the cursor forward on delete: step back
                    deleted += 1
                ok = cur.prev()
        return deleted

    def _trim(self, keys: set[bytes], keep: int) -> None:
        cur = self._txn.cursor(db=self._db)
        for kb in keys:
            want = len(kb) + STREAM_KEY_SUFFIX
            ok = cur.prev() if cur.set_range(kb + b"\xff" * (STREAM_KEY_SUFFIX + 1)) \
                else cur.last()
            n = 0
            while ok:
                k = cur.key()
                if len(k) != want or not k.startswith(kb):
                    break
                n += 1
                if n > keep:
                    cur.delete()  # LMDB moves the cursor forward on delete: step back
                ok = cur.prev()


class WriteBatch:
    """One write transaction: rows, next offsets and counters commit together or not at all.

    Use as a context manager; leaving it by an exception aborts everything. Callbacks
    given to `after_commit` run once the transaction has committed, never after an abort.
    """

    __slots__ = ("_writer", "_txn", "_meta_db", "_after")

    def __init__(self, writer: RelationWriter) -> None:
        self._writer = writer
        self._meta_db = writer._meta_db
        self._after: list[Callable[[], None]] = []
        with translated(writer.path, "beginning a write transaction"):
            self._txn = begin(writer.env, write=True)

    def __enter__(self) -> WriteBatch:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def partition(self, partition: int) -> PartitionWriter:
        with translated(self._writer.path, f"opening partition {partition}"):
            db = self._writer._db(partition, self._txn)
        return PartitionWriter(self._txn, db, self._writer.width, self._writer.path)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` right after this batch commits (not at all if it aborts)."""
        self._after.append(callback)

    def last_side_key(self, table: SideTable) -> bytes | None:
        """The largest key of `table` as this batch sees it (what another process sharing
        the store committed before this batch began counts)."""
        cur = self._txn.cursor(db=table._db)
        return bytes(cur.key()) if cur.last() else None

    def put_side(self, table: SideTable, items: list[tuple[bytes, bytes]]) -> None:
        with translated(self._writer.path, "staging side-table entries"):
            self._txn.cursor(db=table._db).putmulti(items)

    def set_next_offset(self, partition: int, offset: int) -> None:
        with translated(self._writer.path, "recording a next offset"):
            self._txn.put(offset_key(partition), OFFSET.pack(offset), db=self._meta_db)

    def next_offset(self, partition: int) -> int:
        """The partition's next offset as committed (0: none yet), read inside this batch:
        what another process sharing the store wrote last counts."""
        return _stored_offset(self._txn, self._meta_db, partition)

    def add_counter(self, partition: int, name: str, n: int) -> None:
        key = counter_key(partition, name)
        old = self._txn.get(key, db=self._meta_db)
        with translated(self._writer.path, "counting records"):
            self._txn.put(key, OFFSET.pack((OFFSET.unpack(old)[0] if old else 0) + n),
                          db=self._meta_db)

    def abort(self) -> None:
        self._txn.abort()
        self._writer.forget_handles()

    def commit(self) -> None:
        with translated(self._writer.path, "committing"):
            try:
                self._txn.commit()
            except lmdb.Error:
                self._writer.forget_handles()
                raise
        for callback in self._after:
            callback()


def _stored_offset(txn: lmdb.Transaction[bytes], meta_db: Any, partition: int) -> int:
    """A partition's committed next offset as `txn` sees it (0: none yet)."""
    raw = txn.get(offset_key(partition), db=meta_db)
    return OFFSET.unpack(raw)[0] if raw else 0

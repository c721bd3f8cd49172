"""The single writer of a relation: its environment, generations, metadata and side tables.

Guarantees:
- A batch's writes go through one `WriteBatch` (`begin()`, materializer.store.batch):
  rows, next offsets, counters and side-table entries commit atomically.
- Callers never see `lmdb` objects or byte formats: rows go in and come out as tuples
  (`encode_row` / `decode_row`), stream events as (key, offset, timestamp, row).
- LMDB failures surface as `StoreError`; a full map as `MapFull`, which the caller
  answers with `RelationWriter.grow()` (up to the `store.map_size` ceiling) and a retry.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import lmdb

from materializer.errors import UsageError
from materializer.store.batch import CommittedState, PartitionWriter, WriteBatch, translated
from materializer.store.environment import (
    LIVE_WRITER,
    META,
    OFFSET,
    REVOKED,
    SERVED,
    RelationMeta,
    begin,
    cached_env,
    counter_key,
    forget_env,
    offset_key,
    open_db,
    open_env,
    open_existing_db,
    open_partition_db,
    read_meta,
)
from materializer.store.layout import (
    new_generation,
    publish,
    remove_generation,
    remove_orphans,
    writable_dir,
)
from materializer.store.lock import held_here

INITIAL_MAP_SIZE: int | None = None
"""A writer's map at open when below its ceiling; None (outside tests): the ceiling, address
space only (without MDB_WRITEMAP the file is not extended). A map that never grows never
cancels a read: py-lmdb's `set_mapsize` invalidates every transaction of this process's
environment, which its readers share (`open_env`): a `Store` beside an in-process worker
failed reads at each doubling. Tests start small to exercise `grow`."""


class RelationWriter:
    """The single writer of one relation's environment (owned by the worker).

    It writes the relation's current generation (see `layout`), created if the relation
    is new; with `fresh=True` it writes a new, empty generation that readers do not see
    until `publish()` swaps it in atomically (what `rebuild` does). A process that holds
    the store lock also deletes generations that a dead `rebuild` left behind."""

    def __init__(self, data_dir: str | os.PathLike[str], name: str, map_size: int, *,
                 fresh: bool = False) -> None:
        self.data_dir = data_dir
        self.name = name
        self.path = new_generation(data_dir, name) if fresh else writable_dir(data_dir, name)
        self.published = not fresh
        if held_here(data_dir):
            remove_orphans(data_dir, name, keep=self.path)
        self.ceiling = map_size
        start = map_size if INITIAL_MAP_SIZE is None else min(map_size, INITIAL_MAP_SIZE)
        self.env = open_env(self.path, True, start)
        with translated(self.path, "opening the meta database"):
            self._meta_db = open_db(self.env, META)
        self._dbs: dict[int, Any] = {}
        meta = self.meta()
        self.width = len(meta.layout) if meta is not None else 0

    def publish(self) -> None:
        """Make this (fresh) generation the relation's current state in one atomic rename,
        then delete the generation it replaced. Readers switch on their next check (see
        `TableView`); until then they keep reading the replaced files, which stay readable
        while mapped. Call with no write transaction open; the caller holds the store lock."""
        if self.published:
            return
        self.env.sync(True)
        old = publish(self.data_dir, self.name, self.path)
        self.published = True
        if old is not None:
            old_env = cached_env(old)  # e.g. the outbox writer of the replaced state
            if old_env is not None:
                forget_env(old_env)
            remove_generation(old)

    def discard(self) -> None:
        """Delete this fresh generation unpublished (a rebuild that failed); a no-op for
        a published one."""
        if self.published:
            return
        forget_env(self.env)
        self.env.close()
        remove_generation(self.path)

    def meta(self) -> RelationMeta | None:
        with begin(self.env, db=self._meta_db) as txn:
            return read_meta(txn, self._meta_db)

    def write_meta(self, identity: dict[str, Any], layout: Sequence[str]) -> None:
        """Record the declaration identity and the stored row layout (column order)."""
        with translated(self.path, "writing metadata"), begin(self.env, write=True) as txn:
            txn.put(b"identity", json.dumps(identity).encode(), db=self._meta_db)
            txn.put(b"layout", json.dumps(list(layout)).encode(), db=self._meta_db)
        self.width = len(layout)

    def grow(self) -> bool:
        """Double the map size, up to the ceiling (`store.map_size`); False at the ceiling,
        where a writer's map is from its open (see INITIAL_MAP_SIZE). Call only while no
        write transaction of this writer is open."""
        current = self.env.info()["map_size"]
        if current >= self.ceiling:
            return False
        with translated(self.path, "growing the map"):
            self.env.set_mapsize(min(self.ceiling, current * 2))
        return True

    def _db(self, partition: int, txn: lmdb.Transaction[bytes]) -> Any:
        """The named DB of a partition, created (and listed in meta) on first use."""
        db = self._dbs.get(partition)
        if db is None:
            db = open_partition_db(self.env, self.path, partition, txn, len(self._dbs))
            parts = set(json.loads(txn.get(b"partitions", b"[]", db=self._meta_db)))
            if partition not in parts:
                parts.add(partition)
                txn.put(b"partitions", json.dumps(sorted(parts)).encode(), db=self._meta_db)
                self._publish_served(txn)
            self._dbs[partition] = db
        return db

    def _publish_served(self, txn: lmdb.Transaction[bytes]) -> None:
        """Keep SERVED (partitions and revoked ones, in one value) in step with both lists,
        so a reader learns what to read with one get per lookup."""
        parts = txn.get(b"partitions", b"[]", db=self._meta_db)
        revoked = txn.get(REVOKED, b"[]", db=self._meta_db)
        txn.put(SERVED, b"%s|%s" % (parts, revoked), db=self._meta_db)

    def set_revoked(self, partitions: Iterable[int], revoked: bool) -> bool:
        """Mark `partitions` as revoked from this worker (True: a rebalance gave them to
        another one, so their rows here stop being current) or as its own again (False),
        in one small write transaction of its own (call while no WriteBatch of this
        writer is open). Readers skip revoked partitions (`TableView`, `StreamView`);
        their next offsets and counters stay. Returns whether anything changed."""
        wanted = set(partitions)
        with translated(self.path, "marking revoked partitions"), \
                begin(self.env, write=True, db=self._meta_db) as txn:
            before = set(json.loads(txn.get(REVOKED, b"[]")))
            after = before | wanted if revoked else before - wanted
            if after == before:
                return False
            if after:
                txn.put(REVOKED, json.dumps(sorted(after)).encode())
            else:
                txn.delete(REVOKED)
            self._publish_served(txn)
        return True

    def forget_handles(self) -> None:
        """After an aborted transaction, DB handles it created are gone."""
        self._dbs.clear()

    def replace_partition(self, partition: int, pairs: Iterable[tuple[bytes, bytes]],
                          next_offset: int, counters: dict[str, int]) -> None:
        """Replace all this store holds of `partition` (rows or events, next offset,
        counters) with a copy taken from another worker's store of the same relation
        (`RelationReader.partition_copy`; pairs in key order), in one write transaction:
        readers see the old state or the copy, whole. Call while no WriteBatch is open;
        MapFull if the map must grow first."""
        prefix = b"count:%d:" % partition
        try:
            with translated(self.path, "copying a partition"), \
                    begin(self.env, write=True) as txn:
                db = self._db(partition, txn)
                txn.drop(db, delete=False)
                txn.cursor(db=db).putmulti(pairs, append=True)
                txn.put(offset_key(partition), OFFSET.pack(next_offset), db=self._meta_db)
                cur = txn.cursor(db=self._meta_db)
                stale = []
                if cur.set_range(prefix):
                    for k, _ in cur:
                        if not k.startswith(prefix):
                            break
                        stale.append(bytes(k))
                for k in stale:
                    txn.delete(k, db=self._meta_db)
                for name, n in counters.items():
                    txn.put(counter_key(partition, name), OFFSET.pack(n), db=self._meta_db)
        except BaseException:
            self.forget_handles()  # a DB created in the aborted transaction is gone
            raise

    def source_topic_id(self) -> str | None:
        """The broker's id of the topic this state was built from (None: not recorded)."""
        return self._meta_text(b"topic_id")

    def set_source_topic_id(self, topic_id: str) -> None:
        self._set_meta_text(b"topic_id", topic_id)

    def source_partitions(self) -> int | None:
        """The topic's partition count when last seen (None: not recorded)."""
        raw = self._meta_text(b"topic_partitions")
        return None if raw is None else int(raw)

    def set_source_partitions(self, count: int) -> None:
        self._set_meta_text(b"topic_partitions", str(count))

    def _meta_text(self, name: bytes) -> str | None:
        with begin(self.env, db=self._meta_db) as txn:
            raw = txn.get(name)
        return None if raw is None else bytes(raw).decode()

    def _set_meta_text(self, name: bytes, value: str) -> None:
        with translated(self.path, "writing metadata"), begin(self.env, write=True) as txn:
            txn.put(name, value.encode(), db=self._meta_db)

    def apply_retention(self, keep: int) -> int:
        """Make a stream hold at most `keep` events per key and partition, as declared
        (`max_events_per_key`): appends trim only the keys they touch, so a retention
        lowered since (or never recorded: state written before it was) trims every key
        of every partition once, in one write transaction that records `keep`. The
        number of events deleted."""
        recorded = self._meta_text(b"max_events_per_key")
        if recorded is not None and int(recorded) == keep:
            return 0
        deleted = 0
        try:
            with translated(self.path, "applying the stream's retention"), \
                    begin(self.env, write=True) as txn:
                if recorded is None or int(recorded) > keep:
                    parts = json.loads(txn.get(b"partitions", b"[]", db=self._meta_db))
                    for p in parts:
                        pw = PartitionWriter(txn, self._db(p, txn), self.width, self.path)
                        deleted += pw.trim_every_key(keep)
                txn.put(b"max_events_per_key", str(keep).encode(), db=self._meta_db)
        except BaseException:
            self.forget_handles()  # a DB opened in the aborted transaction is gone
            raise
        return deleted

    def snapshot_due(self) -> bool:
        """Whether this state was replayed without change events and still owes its
        change topic a snapshot (`op: r` for every row): see ingest.resync."""
        return self._flag(b"snapshot_due")

    def set_snapshot_due(self, due: bool, *, keep_events: bool = False) -> None:
        """Mark (or clear) the snapshot debt; `keep_events`: the records applied until the
        snapshot is staged still emit their own events (state of an older materializer that
        did not record whether its change topic holds every row: see
        `ingest.announced`), instead of being replayed silently (an in-place rebuild)."""
        self._set_flag(b"snapshot_due", due, b"events" if keep_events else b"1")

    def snapshot_due_keeps_events(self) -> bool:
        """Whether the snapshot debt leaves change events on meanwhile (`set_snapshot_due`)."""
        with begin(self.env, db=self._meta_db) as txn:
            return txn.get(b"snapshot_due") == b"events"

    def has_side_table(self, name: bytes) -> bool:
        """Whether the side table `name` exists (without creating it)."""
        with translated(self.path, f"opening database {name!r}"):
            try:
                open_existing_db(self.env, name)
            except lmdb.NotFoundError:
                return False
        return True

    def changes_announced(self) -> bool:
        """Whether every row of this state is on the table's change topic: `changes:` was
        declared whenever a row was applied, or a snapshot was staged since (see
        `ingest.worker.owe_snapshot_if_unannounced`)."""
        return self._flag(b"changes_announced")

    def set_changes_announced(self, announced: bool) -> None:
        self._set_flag(b"changes_announced", announced)

    def changes_target(self) -> tuple[str, str] | None:
        """(topic, format) of the change events `changes_announced` speaks of (None: not
        recorded, state from before it was)."""
        with begin(self.env, db=self._meta_db) as txn:
            raw = txn.get(b"changes_target")
        if raw is None:
            return None
        topic, fmt = json.loads(bytes(raw))
        return str(topic), str(fmt)

    def set_changes_target(self, topic: str, fmt: str) -> None:
        with translated(self.path, "writing metadata"), begin(self.env, write=True) as txn:
            txn.put(b"changes_target", json.dumps([topic, fmt]).encode(), db=self._meta_db)

    def _flag(self, name: bytes) -> bool:
        with begin(self.env, db=self._meta_db) as txn:
            return txn.get(name) is not None

    def set_live_writer(self, identity: dict[str, Any] | None) -> None:
        """Record (or clear, None) the process that applies this relation's partitions while
        other processes apply the rest (a faust worker beside others of its app): readers
        refuse its rows as current once that process is gone (`store.read`), which a worker
        killed with kill -9 cannot say itself."""
        self._set_flag(LIVE_WRITER, identity is not None,
                       json.dumps(identity).encode() if identity is not None else b"")

    def _set_flag(self, name: bytes, on: bool, value: bytes = b"1") -> None:
        """A meta flag set (`on`, to `value`) or cleared, in a small write transaction."""
        with translated(self.path, "writing metadata"), begin(self.env, write=True) as txn:
            if on:
                txn.put(name, value, db=self._meta_db)
            else:
                txn.delete(name, db=self._meta_db)

    def next_offsets(self) -> dict[int, int]:
        """Per partition, the next source offset to apply (absent: start from the beginning)."""
        out: dict[int, int] = {}
        with begin(self.env, db=self._meta_db) as txn:
            cur = txn.cursor()
            if cur.set_range(b"offset:"):
                for k, v in cur:
                    if not k.startswith(b"offset:"):
                        break
                    out[int(k[7:])] = OFFSET.unpack(v)[0]
        return out

    def begin(self) -> WriteBatch:
        return WriteBatch(self)

    @contextmanager
    def reading(self) -> Iterator[CommittedState]:
        """A read transaction over what is committed now (other processes' writes too),
        to decide a batch before its write transaction (see `CommittedState`)."""
        with translated(self.path, "beginning a read transaction"), \
                begin(self.env) as txn:
            yield CommittedState(self, txn)

    def side_table(self, name: bytes) -> SideTable:
        """A named table beside the partitions and `meta` (the change outbox), created if
        missing. Write to it inside a WriteBatch (`put_side`) so it commits with the rows."""
        if name == META or name.startswith(b"p:"):
            raise UsageError(f"database name {name!r} is reserved")
        with translated(self.path, f"opening database {name!r}"):
            return SideTable(self, open_db(self.env, name))


class SideTable:
    """Committed (key, value) pairs of a side table; each call is its own transaction
    (call outside any open WriteBatch of the same writer: LMDB has one writer lock)."""

    __slots__ = ("_writer", "_db")

    def __init__(self, writer: RelationWriter, db: Any) -> None:
        self._writer = writer
        self._db = db

    def first_items(self, limit: int) -> list[tuple[bytes, bytes]]:
        """Up to `limit` committed pairs, smallest keys first."""
        out: list[tuple[bytes, bytes]] = []
        if limit <= 0:
            return out
        with begin(self._writer.env, db=self._db) as txn:
            for k, v in txn.cursor():
                out.append((k, v))
                if len(out) >= limit:
                    break
        return out

    def entries(self) -> int:
        """How many committed entries the table holds (O(1))."""
        with begin(self._writer.env) as txn:
            return int(txn.stat(self._db)["entries"])

    def first_key(self) -> bytes | None:
        """The smallest committed key, or None if the table is empty."""
        with begin(self._writer.env, db=self._db) as txn:
            cur = txn.cursor()
            return bytes(cur.key()) if cur.first() else None

    def clear(self) -> None:
        """Delete every entry in one write transaction (one call, however many there
        are), committed on return."""
        with translated(self._writer.path, "emptying a side table"), \
                begin(self._writer.env, write=True) as txn:
            txn.drop(self._db, delete=False)

    def delete_keys(self, keys: Sequence[bytes]) -> None:
        """Delete `keys` in one write transaction, committed on return."""
        with translated(self._writer.path, "deleting from a side table"), \
                begin(self._writer.env, write=True, db=self._db) as txn:
            for k in keys:
                txn.delete(k)

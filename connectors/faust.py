"""`lmdb://`: a faust-streaming table store on materializer's LMDB store (with
`connectors.faust_codec`, `connectors.faust_identity` and `connectors.faust_sensor`, the
only modules that import faust; its recovery and revocation bookkeeping is
`connectors.faust_recovery`).

`app = faust.App(..., store="lmdb://")` or `app.Table(..., store="lmdb://")` picks it
through the `faust.stores` entry point. `lmdb://` keeps the tables in faust's table
directory (`app.conf.tabledir`); `lmdb:///abs/dir` or `lmdb://./rel/dir` in that
directory. Each table is one materializer relation named like the table: a data
directory that `materializer.Store` opens and `materializer serve DIR` serves.

Layout: columns `key bytes not null, value bytes` (the bytes faust's serializers made,
the same as the changelog records), primary key `key`, one LMDB database per changelog
partition, the next changelog offset per partition in `meta`, and the faust side of the
declaration (serializers, key type, windowing) in the identity under `faust`.

Guarantees:
- Rows reach the disk only from changelog records the broker acknowledged (through a
  faust sensor), in one LMDB transaction with the partition's changelog offset, so
  after a crash (kill -9 included) the disk holds the changelog folded up to the
  persisted offset, and recovery reads only the changelog after it. Writes faust makes
  without a changelog record (expired windows) are written as local deletes/sets.
- Until then a write is served from memory (`connectors.faust_journal`): the table
  reads its own writes at once.
- External readers (any process) see committed state only, and only the partitions
  this worker owns and has recovered (standby and revoked ones are marked revoked).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from faust.exceptions import ImproperlyConfigured
from faust.stores.base import SerializedStore
from faust.streams import current_event
from faust.types import AppT, CollectionT
from faust.types.enums import ProcessingGuarantee
from yarl import URL

from connectors.faust_codec import codec_name, type_name
from connectors.faust_identity import VIEW, check_identity, data_dir_of, hold_table
from connectors.faust_journal import Journal, Taken
from connectors.faust_recovery import ChangelogBookkeeping, as_bytes
from connectors.faust_sensor import sensor_of
from connectors.faust_view import FirstFoundView
from materializer.columns import parse_type
from materializer.errors import StoreError
from materializer.specs import DEFAULT_MAP_SIZE
from materializer.store import MapFull, RelationWriter
from materializer.store.generation import open_generation
from materializer.store.keys import MAX_KEY_BYTES, KeyCodec

log = logging.getLogger("materializer.faust")

LAYOUT = ("key", "value")
_BYTES = parse_type("bytes")[0]
_SCAN_CHUNK = 1000
_SURE_FIT = (MAX_KEY_BYTES - 3) // 2


def refuse_exactly_once(app: AppT, table: str) -> None:
    """ImproperlyConfigured under `processing_guarantee="exactly_once"`: faust never tells a
    store there that its changelog is committed (faust keeps the offsets to persist by
    changelog partition and looks them up by source partition at commit, robinhood/faust#599),
    so no write would ever reach the disk: every write would stay in memory for the worker's
    life, outside readers would read the table's keys as absent, and each start would replay
    the whole changelog."""
    guarantee: Any = app.conf.processing_guarantee  # typed as the enum class in faust
    if guarantee == ProcessingGuarantee.EXACTLY_ONCE:
        raise ImproperlyConfigured(
            f"faust table {table}: lmdb:// does not support processing_guarantee="
            "'exactly_once': faust never reports a committed changelog offset to a table "
            "store under it (robinhood/faust#599), so no write would reach the disk. Use "
            "processing_guarantee='at_least_once' with lmdb://, or another store")


# ---------------------------------------------------------------------------- store


class LmdbStore(ChangelogBookkeeping, SerializedStore[Any, Any]):
    """faust table storage in an LMDB relation of a materializer data directory.

    Table options (`app.Table(..., options={...})`): `map_size` (bytes, the ceiling of
    the LMDB map), `flush_interval` (seconds between disk writes, 1.0), `cache_size`
    (values read from disk kept in memory, 100000; the cache empties when full)."""

    def __init__(self, url: str | URL, app: AppT, table: CollectionT, *,
                 options: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(url, app, table, options=options, **kwargs)
        refuse_exactly_once(app, table.name)
        opts = dict(options or {})
        self.data_dir = data_dir_of(self.url, app)
        self.map_size = int(opts.get("map_size", DEFAULT_MAP_SIZE))
        self.flush_interval = float(opts.get("flush_interval", 1.0))
        self.cache_size = int(opts.get("cache_size", 100_000))
        self._cache: dict[bytes, bytes | None] = {}
        self.changelog_topic: str = table.changelog_topic.get_topic_name()
        self._journal = Journal()
        self._writer: RelationWriter | None = None
        self._disk: FirstFoundView | None = None
        self._next: dict[int, int] = {}
        self._announced = 0
        self._encode = KeyCodec((_BYTES,)).encode
        sensor = sensor_of(app)
        sensor.by_table[id(table)] = self
        sensor.by_topic[self.changelog_topic] = self
        self.replayed = 0
        """Changelog records applied by recovery since the last one completed."""
        self.shared = False
        """Another worker of the app was active for some partitions at the last recovery."""

    # --------------------------------------------------------------- the relation

    def identity(self) -> dict[str, Any]:
        t = self.table
        return {
            "kind": "table", "name": self.table_name, "topic": self.changelog_topic,
            "columns": [["key", "bytes", True], ["value", "bytes", False]],
            "key": ["key"], "key_format": "bytes", "value_format": "bytes", "view": VIEW,
            "faust": {"app": str(self.app.conf.id), "table": t.name,
                      "key_serializer": codec_name(self.key_serializer),
                      "value_serializer": codec_name(self.value_serializer),
                      "key_type": type_name(self.key_type),
                      "value_type": type_name(self.value_type),
                      "windowed": t.window is not None, "global": bool(t.is_global),
                      "partitions": t.partitions},
        }

    def _open(self) -> RelationWriter:
        w = self._writer
        if w is not None:
            return w
        hold_table(Path(self.data_dir), self.table_name)
        w = RelationWriter(self.data_dir, self.table_name, self.map_size)
        ident = self.identity()
        meta = w.meta()
        if meta is not None:
            check_identity(Path(self.data_dir), self.table_name, meta.identity, ident)
        if meta is None or meta.identity != ident:
            w.write_meta(ident, LAYOUT)
        self._next = w.next_offsets()
        self._writer = w
        self._disk = FirstFoundView(Path(self.data_dir),
                                    open_generation(Path(self.data_dir), self.table_name))
        return w

    def _view(self) -> FirstFoundView:
        if self._disk is None:
            self._open()
        assert self._disk is not None
        return self._disk

    def _commit(self, rows: Mapping[int, Mapping[bytes, bytes | None]],
                offsets: Mapping[int, int]) -> None:
        """Rows (None deletes) and next offsets, in one LMDB transaction."""
        w = self._open()
        enc = self._encode
        while True:
            try:
                with w.begin() as wb:
                    for p, part in rows.items():
                        if part:
                            wb.partition(p).put_rows(
                                {enc((k,)): None if v is None else (k, v)
                                 for k, v in part.items()})
                    for p, nxt in offsets.items():
                        wb.set_next_offset(p, nxt)
                break
            except MapFull:
                if not w.grow():
                    raise
        self._next.update(offsets)

    def flush(self) -> None:
        """Write every journaled write that may go to disk now (see `Journal.take`)."""
        if self._journal.waiting() == 0:
            return
        self._open()
        taken: dict[int, Taken] = self._journal.take(self._next)
        if not taken:
            return
        offsets = {p: t.offset + 1 for p, t in taken.items()
                   if t.offset is not None and t.offset + 1 > self._next.get(p, 0)}
        self._commit({p: t.rows for p, t in taken.items()}, offsets)
        cache = self._cache
        for t in taken.values():
            for k, v in t.rows.items():
                if k in cache:
                    cache[k] = v
        self._journal.settle(taken)

    def _key_fits(self, key: bytes) -> bool:
        """Whether `key` is short enough for LMDB once encoded (a zero byte takes two)."""
        return len(key) <= _SURE_FIT or len(self._encode((key,))) <= MAX_KEY_BYTES

    # ------------------------------------------------------------ what faust calls

    def _event_partition(self) -> int | None:
        event = current_event()
        if event is None or self.table.is_global or self.table.use_partitioner:
            return None
        return int(event.message.partition)

    def _write_partition(self, key: bytes, logged: bool) -> int | None:
        """The changelog partition faust sends a write of `key` to (faust's own rule:
        the event's partition, else the producer's partitioner); None for a local write
        outside any event."""
        event = current_event()
        if event is not None and not self.table.use_partitioner:
            return int(event.message.partition)
        if not logged:
            return None
        return int(self.app.producer.key_partition(self.changelog_topic, key).partition)

    def _write(self, key: bytes, value: bytes | None) -> None:
        logged = self._announced > 0
        if logged:
            self._announced -= 1
        p = self._write_partition(key, logged)
        if not self._key_fits(key):
            if logged and p is not None:
                # faust sent its changelog record already: its acknowledgement must not
                # be taken for the next write's, nor its row written
                self._journal.unstorable(p, key)
            raise ValueError(f"table {self.table_name}: a key of {len(key)} bytes is too long "
                             f"for LMDB (at most {MAX_KEY_BYTES} bytes encoded)")
        if p is not None:
            self._journal.write(p, key, value, logged)
            if value is None:
                self._delete_elsewhere(key, p)
        else:  # a local write outside any event: every partition it may be in
            for q in self._partitions():
                self._journal.write(q, key, value, False)

    def _delete_elsewhere(self, key: bytes, partition: int) -> None:
        """Local deletes of `key` in the other served partitions holding it (`clear()`
        logs every tombstone to the event's partition; RocksDB deletes a key where it is)."""
        journal = self._journal
        held = set(self._view().partitions_holding(self._encode((key,))))
        for q in journal.partitions():
            found, value = journal.lookup(q, key)
            if found:
                if value is None:
                    held.discard(q)
                else:
                    held.add(q)
        held.discard(partition)
        for q in sorted(held):
            journal.write(q, key, None, False)

    def _partitions(self) -> set[int]:
        known = {s["partition"] for s in self._view().partition_stats()}
        return known | set(self._journal.partitions())

    def _set(self, key: bytes, value: bytes | None) -> None:
        self._write(key, value)

    def _del(self, key: bytes) -> None:
        self._write(key, None)

    def _get(self, key: bytes) -> bytes | None:
        journal = self._journal
        p = self._event_partition()
        for q in (p,) if p is not None else journal.partitions():
            found, value = journal.lookup(q, key)
            if found:
                return value
        cache = self._cache
        if key in cache:
            return cache[key]
        if not self._key_fits(key):
            return None
        row = self._view().get(key, held_only=True)
        value = None if row is None else bytes(row["value"])
        if len(cache) >= self.cache_size:
            cache.clear()
        cache[key] = value
        return value

    def _contains(self, key: bytes) -> bool:
        return self._get(key) is not None

    def _iteritems(self) -> Iterator[tuple[bytes, bytes]]:
        self.flush()
        mine: dict[bytes, bytes | None] = {k: v for _, k, v in self._journal.overlay_items()}
        view = self._view()
        after: bytes | None = None
        while True:
            pairs = view.scan_raw((), _SCAN_CHUNK, after=after)
            for _, raw in pairs:
                row = view.layout.to_python(raw)
                k = bytes(row["key"])
                if k not in mine:
                    yield k, bytes(row["value"])
            if len(pairs) < _SCAN_CHUNK:
                break
            after = pairs[-1][0]
        for k, v in mine.items():
            if v is not None:
                yield k, v

    def _iterkeys(self) -> Iterator[bytes]:
        for k, _ in self._iteritems():
            yield k

    def _itervalues(self) -> Iterator[bytes]:
        for _, v in self._iteritems():
            yield v

    def _size(self) -> int:
        self.flush()
        view = self._view()
        n = len(view)
        seen: set[bytes] = set()
        for _, k, v in self._journal.overlay_items():
            if k in seen:
                continue
            seen.add(k)
            on_disk = self._key_fits(k) and view.get(k, held_only=True) is not None
            n += (v is not None) - on_disk
        return n

    def _clear(self) -> None:
        for key in list(self._iterkeys()):
            self._del(key)

    def announced(self) -> None:
        """faust logs the next write (the sensor's `on_table_set/del`)."""
        self._announced += 1

    def acked(self, partition: int, offset: int, key: Any, value: Any) -> None:
        kb = as_bytes(key)
        assert kb is not None
        problem = self._journal.acked(partition, offset, kb, as_bytes(value))
        if problem is not None:
            log.error("faust table %s, changelog %s[%d]: %s", self.table_name,
                      self.changelog_topic, partition, problem)

    def failed(self, partition: int | None, key: Any, exc: BaseException) -> None:
        kb = as_bytes(key)
        log.error("faust table %s: the changelog record of key %r (partition %s) was not "
                  "produced (%s): the write stays out of the store", self.table_name, kb,
                  partition, exc)
        if partition is not None and kb is not None:
            self._journal.failed(partition, kb)

    async def on_start(self) -> None:
        self._open()
        self.add_future(self._flusher())

    async def _flusher(self) -> None:
        """Writes what may be written every `flush_interval`; a store that cannot write
        (the map at its ceiling, a disk error) crashes the worker, loudly."""
        while not self.should_stop:
            await asyncio.sleep(self.flush_interval)
            try:
                self.flush()
            except StoreError as e:
                log.error("faust table %s: %s", self.table_name, e)
                await self.crash(e)
                return

    async def on_stop(self) -> None:
        self.flush()
        self.on_worker_stop()

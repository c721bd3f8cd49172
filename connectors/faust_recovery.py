"""The recovery and revocation bookkeeping of the `lmdb://` faust table store
(`connectors.faust.LmdbStore`, which mixes `ChangelogBookkeeping` in): changelog batches
from recovery and standbys, persisted offsets, rebalances (which partitions outside readers
are served), `reset_state`, and the refused backups. The reads and writes, the journal of
writes in flight and the LMDB transactions stay in `connectors.faust`.

Imports no faust at run time (the types only for type checking)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connectors.faust_journal import Journal
from materializer.status import writer_identity
from materializer.store import RelationWriter, drop_relation

if TYPE_CHECKING:
    from faust.types import TP, AppT, CollectionT, EventT

    from connectors.faust_view import FirstFoundView

log = logging.getLogger("materializer.faust")


def as_bytes(b: Any) -> bytes | None:
    if b is None or isinstance(b, bytes):
        return b
    if isinstance(b, str):
        return b.encode()
    return bytes(b)


class ChangelogBookkeeping:
    """What faust's recovery, standbys and rebalances call on an `lmdb://` store. The
    attributes and methods annotated here are `LmdbStore`'s."""

    app: AppT
    table: CollectionT
    table_name: str
    changelog_topic: str
    data_dir: Path
    replayed: int
    shared: bool
    _journal: Journal
    _cache: dict[bytes, bytes | None]
    _next: dict[int, int]
    _writer: RelationWriter | None
    _disk: FirstFoundView | None
    flush: Callable[[], None]
    _open: Callable[[], RelationWriter]
    _commit: Callable[..., None]
    _key_fits: Callable[[bytes], bool]
    _partitions: Callable[[], set[int]]

    def _changelog_partitions(self) -> set[int]:
        """Every partition of the changelog topic, held here or not (the consumer's count
        once it knows the topic, else the table's declared count)."""
        n: int | None = None
        consumer = getattr(self.app, "_consumer", None)  # never create one here
        if consumer is not None:
            try:
                n = consumer.topic_partitions(self.changelog_topic)
            except Exception:  # noqa: BLE001 - no metadata for the topic yet
                n = None
        if not isinstance(n, int) or isinstance(n, bool):
            n = None
        n = n or self.table.partitions or self.app.conf.topic_partitions
        return set(range(int(n or 0)))

    def apply_changelog_batch(self, batch: Iterable[EventT[Any]], to_key: Callable[[Any], Any],
                              to_value: Callable[[Any], Any]) -> None:
        """Recovery and standby replicas: changelog records and their offsets, one
        transaction per batch. Records at or below the persisted offset are skipped."""
        self.flush()
        self._open()
        rows: dict[int, dict[bytes, bytes | None]] = {}
        offsets: dict[int, int] = {}
        n = 0
        for event in batch:
            msg = event.message
            p, off = int(msg.partition), int(msg.offset)
            if off < self._next.get(p, 0):
                continue
            key = as_bytes(msg.key)
            offsets[p] = max(offsets.get(p, 0), off + 1)
            if key is None or not self._key_fits(key):
                log.error("faust table %s: changelog %s[%d] offset %d: %s, not stored",
                          self.table_name, msg.topic, p, off,
                          "no key" if key is None else f"a key of {len(key)} bytes is too long")
                continue
            rows.setdefault(p, {})[key] = as_bytes(msg.value)
            n += 1
        if offsets:
            self._cache.clear()
            self._commit(rows, offsets)
            self.replayed += n

    def persisted_offset(self, tp: TP) -> int | None:
        """The highest changelog offset of `tp` on disk (None: nothing yet)."""
        if tp.topic != self.changelog_topic:
            return None
        self.flush()
        self._open()
        nxt = self._next.get(tp.partition)
        return None if nxt is None else nxt - 1

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        """faust declares the changelog persisted up to `offset`: the writes it holds may
        go to disk (with the next flush)."""
        if tp.topic == self.changelog_topic:
            self._journal.durable(tp.partition, offset)

    async def need_active_standby_for(self, tp: TP) -> bool:
        return True

    def _mine(self, tps: Iterable[TP]) -> set[int]:
        return {tp.partition for tp in tps if tp.topic == self.changelog_topic}

    async def on_rebalance(self, assigned: set[TP], revoked: set[TP],
                           newly_assigned: set[TP], generation_id: int = 0) -> None:
        """Write what may be written, forget revoked partitions' journals, and mark them
        revoked for external readers."""
        self.flush()
        gone = self._mine(revoked)
        self._cache.clear()
        for p in gone:
            self._journal.drop_partition(p)
        # newly assigned partitions are not current here until their recovery completes
        # (a partition never held here has no rows at all: a miss must not say "absent")
        unready = gone | self._mine(newly_assigned)
        if unready:
            self._open().set_revoked(unready, True)

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        """External readers are served the recovered active partitions (every partition
        of a global table), and no other."""
        self.flush()
        log.info("faust table %s: recovery replayed %d changelog records after the persisted "
                 "offsets", self.table_name, self.replayed)
        self.replayed = 0
        served = self._mine(active_tps)
        # another worker of the app is active for the partitions not assigned here: it
        # takes over this worker's partitions when this one stops
        self.shared = bool(self._changelog_partitions() - served)
        if self.table.is_global:
            served |= self._mine(standby_tps)
        w = self._open()
        # every other partition of the changelog, held here or never seen (another worker
        # serves it: a miss here must not say "absent")
        others = (self._partitions() | self._changelog_partitions()) - served
        w.set_revoked(served, False)
        w.set_revoked(others, True)
        # readers refuse these rows once this process is gone without `on_worker_stop` (a
        # kill -9): another worker of the app then applies its partitions
        w.set_live_writer(writer_identity() if self.shared else None)

    def on_worker_stop(self) -> None:
        """At a clean stop, after the last flush: a worker that shared the app's partitions
        with another one marks every partition revoked for outside readers (the other
        worker takes them over and writes on: this directory's rows stop being current);
        a worker that was active for every partition leaves them served (the table as of
        the stop)."""
        if not self.shared:
            return
        log.info("faust table %s: stopping while another worker of the app is active: every "
                 "partition is marked revoked for outside readers", self.table_name)
        w = self._open()
        w.set_revoked(self._partitions() | self._changelog_partitions(), True)
        w.set_live_writer(None)  # the marks say it now

    def reset_state(self) -> None:
        """Delete this table's local state (the changelog stays)."""
        self._journal.clear()
        self._cache.clear()
        self._writer = None
        self._disk = None
        self._next = {}
        drop_relation(self.data_dir, self.table_name)

    async def backup_partition(self, tp: TP | int, flush: bool = True, purge: bool = False,
                               keep: int = 1) -> None:
        raise NotImplementedError("lmdb:// keeps no backups: copy the data directory while "
                                  "the app is stopped, or let recovery replay the changelog")

    def restore_backup(self, tp: TP | int, latest: bool = True, backup_id: int = 0) -> None:
        raise NotImplementedError("lmdb:// keeps no backups")

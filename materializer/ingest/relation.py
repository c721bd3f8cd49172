"""A relation's write side: open its local state, apply a batch in one transaction.

`open_relation` is the one way to get a writable relation (the worker, `rebuild`, the
tests and the benchmarks use it). `Relation.apply` is the one way to apply records:
per call, one LMDB write transaction holds the rows of every partition given, their
next offsets, their counters and their staged change events.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from materializer.errors import SchemaChangedError, StoreError
from materializer.formats.codecs import key_decoder, value_decoder
from materializer.ingest.apply import PartitionOutcome, Rejected, StreamApplier, TableApplier
from materializer.protocols import SchemaRegistry, SourceRecord
from materializer.specs import (
    DEFAULT_MAP_SIZE,
    RelationSpec,
    StreamSpec,
    TableSpec,
    identity_difference,
    storage_identity,
)
from materializer.status import APPLIED, UNCHANGED, rejection_counter
from materializer.store import MapFull, PartitionWriter, RelationWriter

if TYPE_CHECKING:
    from materializer.changes.envelope_base import Message
    from materializer.changes.outbox import ChangeOutbox

log = logging.getLogger("materializer.ingest")


class RejectRouter(Protocol):
    """Where rejected records go (dead letters); called inside the batch transaction."""

    def route(self, spec: RelationSpec, partition: int, rejects: Sequence[Rejected]
              ) -> dict[str, int]:
        """Send or count each rejected record; returns counters to add (name -> n)."""
        ...

    def settle(self) -> None:
        """Block until everything routed so far is durable (before the batch commits)."""
        ...


def count_rejects(rejects: Sequence[Rejected]) -> dict[str, int]:
    """The counters rejected records add to, by policy and reason."""
    counts: dict[str, int] = {}
    for r in rejects:
        name = rejection_counter(r.policy, r.reason)
        counts[name] = counts.get(name, 0) + 1
    return counts


class CountOnly:
    """A router that only counts (dead letters are not sent): for tests and tools."""

    def route(self, spec: RelationSpec, partition: int, rejects: Sequence[Rejected]
              ) -> dict[str, int]:
        return count_rejects(rejects)

    def settle(self) -> None:
        return None


@dataclass(slots=True)
class Relation:
    """One declared table or stream with its writer, applier and progress."""

    spec: RelationSpec
    writer: RelationWriter
    applier: TableApplier | StreamApplier
    next_offsets: dict[int, int]
    outbox: ChangeOutbox | None = None
    shared: bool = False  # other processes write this store too (`run --processes N`)

    def apply(self, parts: Mapping[int, Sequence[SourceRecord]],
              router: RejectRouter | None = None, ends: Mapping[int, int] | None = None
              ) -> dict[int, PartitionOutcome]:
        """Apply each partition's records (offset order) in one transaction, then commit.

        Records below a partition's next offset are passed over, so applying a batch
        again after a failure is safe. A full LMDB map is grown (up to `store.map_size`)
        and the batch applied again; past the ceiling, StoreError says what to change.

        `ends`: per partition, an offset the consumer reached the end of the partition at
        (connectors.kafka.Polled: every record below it was given, in this batch or an
        earlier one). The next offset moves up to it in the same transaction, past what no
        record stands for (a transaction's commit marker), unless a record stopped the
        partition: a partition that ends in a marker is read to its end (lag 0)."""
        router = router or CountOnly()
        ends = {p: o for p, o in (ends or {}).items() if o > self.next_offsets.get(p, 0)}
        if ends:
            parts = {**{p: () for p in ends}, **parts}
        if not parts:
            return {}
        while True:
            try:
                outcomes = self._apply_once(parts, router, ends)
                break
            except MapFull as e:
                if not self.writer.grow():
                    raise StoreError(
                        f"{self.spec.name}: the LMDB map is full at its ceiling of "
                        f"{self.writer.ceiling:,} bytes ({e}); raise `store.map_size` in the "
                        "declaration file and start the worker again") from e
        for p, out in outcomes.items():
            self.next_offsets[p] = out.next_offset
        return outcomes

    def _stage(self, parts: Mapping[int, Sequence[SourceRecord]]) -> dict[int, _Decided]:
        """Decide partitions before the write transaction, so that worker processes sharing
        the store (`run --processes N`) decode, shape, merge and encode change events at
        the same time and queue only for the writes:
        - where the applier never reads the store (streams; tables that overwrite and emit
          nothing): always;
        - other tables, when the store is shared: on the rows committed when the batch
          began (`RelationWriter.reading`), kept only if the write transaction still finds
          the partition's next offset as it was (no other process wrote it since)."""
        if isinstance(self.applier, StreamApplier) or getattr(self.applier, "blind", False):
            staged = {}
            for p, recs in parts.items():
                start = self.next_offsets.get(p, 0)
                st = _Staged()
                try:
                    out = self.applier.apply(cast(PartitionWriter, st), p, recs, start)
                except _NeedsStore:
                    continue  # decided per record after all: applied inside the transaction
                staged[p] = _Decided(start, None, st, out, None)
            return staged
        if not self.shared:
            return {}
        return self._stage_on_committed(parts)

    def _stage_on_committed(self, parts: Mapping[int, Sequence[SourceRecord]]
                            ) -> dict[int, _Decided]:
        staged = {}
        with self.writer.reading() as committed:
            for p, recs in parts.items():
                rows = committed.partition(p)
                if rows is None:
                    continue  # not opened here yet: applied inside the transaction
                seen = committed.next_offset(p)
                start = max(self.next_offsets.get(p, 0), seen)
                st = _Staged(rows)
                out = self.applier.apply(cast(PartitionWriter, st), p, recs, start)
                msgs = (self.outbox.encode(out.changes)
                        if out.changes and self.outbox is not None else None)
                staged[p] = _Decided(start, seen, st, out, msgs)
        return staged

    def _apply_once(self, parts: Mapping[int, Sequence[SourceRecord]],
                    router: RejectRouter, ends: Mapping[int, int]
                    ) -> dict[int, PartitionOutcome]:
        outcomes: dict[int, PartitionOutcome] = {}
        staged = self._stage(parts)
        with self.writer.begin() as wb:
            for p, recs in parts.items():
                # the stored offset too: with `run --processes N` another process may have
                # applied this partition since (a rebalance), never apply a record twice
                stored = wb.next_offset(p)
                start = max(self.next_offsets.get(p, 0), stored)
                pre = staged.get(p)
                msgs = None
                if pre is not None and pre.start == start and pre.seen in (None, stored):
                    out, msgs = pre.outcome, pre.msgs
                    pre.writes.replay(wb.partition(p))
                else:
                    out = self.applier.apply(wb.partition(p), p, recs, start)
                if p in ends and out.fatal is None:
                    out.next_offset = max(out.next_offset, ends[p])
                outcomes[p] = out
                wb.set_next_offset(p, out.next_offset)
                counts = router.route(self.spec, p, out.rejected) if out.rejected else {}
                if out.applied:
                    counts[APPLIED] = out.applied
                if out.unchanged:
                    counts[UNCHANGED] = out.unchanged
                for name, n in counts.items():
                    wb.add_counter(p, name, n)
                if msgs is not None and self.outbox is not None:
                    self.outbox.put(wb, msgs)
                elif out.changes and self.outbox is not None:
                    self.outbox.stage(wb, out.changes)
            if any(o.rejected for o in outcomes.values()):
                router.settle()  # dead letters are durable before the offset moves
        return outcomes


class _NeedsStore(Exception):
    """An applier asked a staged partition for a stored row: stage no further."""


class _Staged:
    """What an applier writes to one partition, kept to be written in the transaction
    (`replay`): a stand-in `PartitionWriter` that reads stored rows from `committed`
    (a read transaction's view), or refuses to (`_NeedsStore`) without one."""

    __slots__ = ("rows", "events", "committed")

    def __init__(self, committed: PartitionWriter | None = None) -> None:
        self.rows: dict[bytes, tuple[Any, ...] | None] | None = None
        self.events: tuple[Sequence[tuple[bytes, int, int, tuple[Any, ...] | None]], int] | None \
            = None
        self.committed = committed

    def get(self, key: bytes) -> tuple[Any, ...] | None:
        if self.committed is None:
            raise _NeedsStore
        return self.committed.get(key)

    def put_rows(self, rows: dict[bytes, tuple[Any, ...] | None]) -> None:
        self.rows = rows

    def append_events(self, events: Sequence[tuple[bytes, int, int, tuple[Any, ...] | None]],
                      keep: int) -> None:
        self.events = (events, keep)

    def replay(self, pw: PartitionWriter) -> None:
        if self.rows is not None:
            pw.put_rows(self.rows)
        if self.events is not None:
            pw.append_events(*self.events)


@dataclass(slots=True)
class _Decided:
    """A partition applied before the write transaction: from `start`, on rows whose next
    offset was `seen` (None: the applier read no rows), its writes, outcome and encoded
    change events."""

    start: int
    seen: int | None
    writes: _Staged
    outcome: PartitionOutcome
    msgs: list[Message] | None


def _added_columns_refused(spec: RelationSpec, added: list[str]) -> str:
    """Why `added` columns are not taken over applied records, and the two ways on."""
    names = ", ".join(repr(n) for n in added)
    held = "rows" if isinstance(spec, TableSpec) else "events"
    return (f"{spec.name}: the declaration no longer matches the local state: column(s) "
            f"{names} were added, but the {held} held were applied without them and would "
            f"read null where their records carry a value. Run `materializer rebuild CONFIG "
            f"{spec.name}` to replay its topic {spec.topic} from the beginning, or, if the "
            f"{held} held should read null in them (their records do not carry them, or the "
            f"topic no longer holds those records), `materializer add-columns CONFIG "
            f"{spec.name}` with the worker stopped.")


def open_relation(spec: RelationSpec, store_path: str | os.PathLike[str], *,
                  map_size: int = DEFAULT_MAP_SIZE,
                  registry: SchemaRegistry | None = None, fresh: bool = False,
                  add_columns: bool = False) -> Relation:
    """Open (or create) a relation's local state, refusing a declaration that changed.

    A nullable column added is appended to the stored row layout while nothing was
    applied yet; once records were, it is refused (the rows held were applied without
    it and would read null where their records carry a value: `rebuild` replays them)
    unless `add_columns` (`materializer add-columns`: the rows held read null in it).
    `fresh=True` starts an empty state that readers see only once
    `relation.writer.publish()` swaps it in (for `rebuild`).
    """
    writer = RelationWriter(store_path, spec.name, map_size, fresh=fresh)
    current = storage_identity(spec)
    meta = writer.meta()
    if meta is None:
        layout = list(spec.column_names)
        writer.write_meta(current, layout)
    else:
        diff = identity_difference(meta.identity, current)
        if diff is not None:
            raise SchemaChangedError(
                f"{spec.name}: the declaration no longer matches the local state: {diff}. "
                f"Run `materializer rebuild CONFIG {spec.name}` to drop the local state of "
                f"{spec.name} and replay its topic {spec.topic} from the beginning.")
        added = [n for n in spec.column_names if n not in meta.layout]
        if added and not add_columns and any(writer.next_offsets().values()):
            raise SchemaChangedError(_added_columns_refused(spec, added))
        layout = list(meta.layout) + added
        if layout != list(meta.layout) or meta.identity != current:
            writer.write_meta(current, layout)
    if isinstance(spec, StreamSpec):
        while True:
            try:
                trimmed = writer.apply_retention(spec.max_events_per_key)
                break
            except MapFull as e:  # deleting rewrites pages: room first, as a batch does
                if not writer.grow():
                    raise StoreError(f"{spec.name}: the LMDB map is full at its ceiling of "
                                     f"{writer.ceiling:,} bytes ({e}); raise `store.map_size` "
                                     "in the declaration file and start again") from e
        if trimmed:
            log.info("%s: retention is %d events per key and partition: %d older events "
                     "removed", spec.name, spec.max_events_per_key, trimmed)
    kdec = key_decoder(spec, registry)
    vdec = value_decoder(spec, registry)
    applier: TableApplier | StreamApplier
    if isinstance(spec, TableSpec):
        applier = TableApplier(spec, layout, kdec, vdec)
    else:
        applier = StreamApplier(spec, layout, kdec, vdec)  # type: ignore[arg-type]
    return Relation(spec, writer, applier, writer.next_offsets())

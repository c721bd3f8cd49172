"""Change events (SPEC §5): a transactional outbox per table, drained to Kafka.

Guarantees:
- Atomic with the rows. `ChangeOutbox.stage` writes a batch's events into the
  table's own LMDB environment (named DB `changes`) inside the same write
  transaction as the rows and next offsets. After a crash at any moment, either
  rows, offsets and events are all there, or none is and the records are
  applied (and their events staged) again.
- At least once. `drain` deletes events only after the producer acknowledged
  them, so a crash or a broker failure never loses one; it may repeat one, with
  the same key, `source.partition` and `source.offset` (only `ts_ms` differs).
- Order. Events are drained in staging order (keys of the outbox are an 8-byte
  big-endian sequence), and all events of one key go to one change-topic
  partition, so a consumer sees each key's events in the order they were
  applied. After a failure, everything from the first unacknowledged event is
  sent again, in order, so the last event seen for a key is always its latest.
- Bounded. `drain` reads at most `chunk` events from LMDB at a time (or sends the at
  most `hot_limit` events it kept in memory, in one round) and never has more than one
  round in the producer; the worker stops ingesting while `full`.

Cost: events staged by this outbox are also kept in memory once their batch commits
(`WriteBatch.after_commit`), so `drain` sends them without reading them back from
LMDB whenever they are exactly what the outbox holds (its first committed key is the
first of them); otherwise (a backlog left by an earlier process, or after a failure)
it reads the outbox. A drain that delivered everything the outbox held empties it
in one call (`SideTable.clear`) instead of deleting key by key.

Placement: if the change topic has as many partitions as the source topic, the
event of a change in source partition p goes to partition p (table partition p is
source partition p); otherwise to `murmur2(key) % partitions`, as the Java
client's default partitioner would place the key; a snapshot's `d` event and tombstone
go where the key's earlier events went (`pinned`: after the source topic was recreated
with another partition count, that is not where its events go now). A missing change topic is
created with the source topic's partition count and `cleanup.policy=compact` (so a
compacted read of it ends as a copy of the table), once the source topic exists.

A `Sink` may be shared (with other outboxes, dead letters): an outbox trusts only a
`flush` that it calls right after producing its own chunk, and after any failure
re-sends that chunk once the producer has settled.

Several processes (`run --processes N`): every worker process stages into the one outbox
of the shared store (`shared=True`): a batch numbers its events after the largest key the
outbox holds inside its own write transaction, and LMDB lets one write transaction in at
a time across processes, so the outbox's key order is the order the batches committed
(per source partition, offset order). Exactly one process drains it (the supervisor's
materializer.changes.drainer; the workers' outboxes have `drains=False` and their `drain`
does nothing), reading it back from LMDB (nothing is kept in memory: another process's
events may lie between this one's), so one producer sends everything in key order, as
one process would.
"""

from __future__ import annotations

import logging
import marshal
import struct
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from connectors.producer import MessageTooLarge
from materializer.changes.envelope import encoder_for
from materializer.changes.envelope_base import EventEncoder, Message
from materializer.changes.event import Change
from materializer.changes.placement import ChangePlacement
from materializer.errors import ConfigError, InfrastructureError, MaterializerError, UsageError
from materializer.protocols import SchemaRegistry
from materializer.specs import TableSpec
from materializer.store import RelationWriter, WriteBatch

if TYPE_CHECKING:
    from connectors.producer import Sink

__all__ = ["OUTBOX_DB", "ChangeOutbox"]

log = logging.getLogger("materializer.changes")

OUTBOX_DB = b"changes"
_SEQ = struct.Struct(">Q")
_dumps = marshal.dumps
_loads = marshal.loads


class ChangeOutbox:
    """Per table with `changes`: stages events in the same LMDB txn as the rows, drains
    them to Kafka.

    The worker calls `stage(wb, outcome.changes)` inside each batch's WriteBatch, before
    it commits; `drain()` once at start and after every commit (never while a
    WriteBatch is open: it runs its own write transaction); and, while `full`, keeps
    calling `drain()` instead of ingesting. `drain` never raises for broker trouble:
    it logs, backs off (returning 0 at once until the back-off has passed) and keeps
    every undelivered event for the next call. Construction registers the Avro
    envelope (debezium-avro) and may raise InfrastructureError if the registry is down.

    `kafka_conf` (the catalog's Kafka settings) lets the outbox look up and create
    the change topic; without it the producer's own partitioner places events by key.
    """

    chunk = 10_000  # events read, produced and acknowledged per round
    hot_limit = 40_000  # committed events kept in memory for drain (see the module doc)
    flush_timeout = 10.0  # seconds to wait for a chunk's acknowledgements
    settle_timeout = 1.0  # seconds per attempt to let a failed chunk leave the producer
    min_backoff = 0.5
    max_backoff = 30.0

    def __init__(self, spec: TableSpec, writer: RelationWriter, layout: Sequence[str],
                 sink: Sink, source_partitions: int | None,
                 registry: SchemaRegistry | None = None,
                 max_backlog: int = 100_000, *,
                 kafka_conf: Mapping[str, str] | None = None,
                 shared: bool = False, drains: bool = True) -> None:
        if spec.changes is None:
            raise UsageError(f"{spec.name} declares no `changes`")
        self.spec = spec
        self.topic = spec.changes.topic
        self.max_backlog = max_backlog
        self.drained_total = 0
        self.drains = drains  # False: another process drains this outbox (see the module doc)
        self._hot_limit = 0 if shared else self.hot_limit
        self._writer = writer
        self._sink = sink
        self._kafka_conf = dict(kafka_conf) if kafka_conf is not None else None
        self._place = ChangePlacement(self.topic, spec.topic, kafka_conf, source_partitions)
        if spec.changes.format == "debezium-avro" and registry is None:
            raise ConfigError(f"{spec.name}: change events in debezium-avro need a "
                              "schema_registry (url or path) that can register schemas")
        self._layout = tuple(layout)
        self._registry = registry
        self._encoder: EventEncoder | None = None  # built on first use: the registry may be away
        self._table = writer.side_table(OUTBOX_DB)
        # committed events staged here, oldest first, until delivered (see the module doc)
        self._hot: list[tuple[bytes, tuple[int, bytes, bytes | None]]] = []
        self._unsettled = False  # a chunk may still sit in the producer after a failure
        self._retry_at = 0.0
        self._backoff = 0.0
        self._failures = 0
        self.stuck: str | None = None
        """Why the outbox cannot deliver (an event larger than the producer or the change
        topic takes), while it cannot: the worker's status carries it, so /readyz
        answers 503 naming it. None when the last drain delivered or failed otherwise."""

    # ------------------------------------------------------------------ staging

    def stage(self, wb: WriteBatch, changes: list[Change], *,
              snapshot_last: bool = False) -> None:
        """Encode `changes` (in applied order) and put them into the outbox within `wb`.
        `snapshot_last`: the last change is the last r event of a snapshot.

        Nothing is visible to `drain` until `wb` commits; if it aborts, the events
        vanish with the rows (their sequence numbers are used again, which is harmless)."""
        if changes:
            self.put(wb, self.encode(changes, snapshot_last=snapshot_last))

    def encode(self, changes: list[Change], *,
               snapshot_last: bool = False, snapshot: bool = False) -> list[Message]:
        """The messages of `changes` (source partition, key, value), for `put` (may run
        before the write transaction begins)."""
        if self._encoder is None:  # InfrastructureError if the registry is away: retried
            self._encoder = encoder_for(self.spec, self._layout, self._registry)
        return self._encoder.encode(changes, time.time_ns() // 1_000_000,
                                    snapshot_last=snapshot_last, snapshot=snapshot)

    def put(self, wb: WriteBatch, msgs: list[Message]) -> None:
        """Put encoded messages into the outbox within `wb` (see `stage`)."""
        if not msgs:
            return
        # numbered after what the outbox holds as this transaction sees it (another
        # process may have staged since); an emptied outbox starts again at 0
        last = wb.last_side_key(self._table)
        seq = 0 if last is None else _SEQ.unpack(last)[0] + 1
        pack = _SEQ.pack
        entries = [(pack(seq + i), m) for i, m in enumerate(msgs)]
        wb.put_side(self._table, [(k, _dumps(m)) for k, m in entries])
        if self._hot_limit:
            wb.after_commit(lambda: self._keep(entries))

    def announced_keys(self) -> set[tuple[int, bytes]] | None:
        """(change-topic partition, key) of every key the change topic holds a row for,
        counting the events still waiting here (they are sent first): what a compacted
        read of it ends with. None when the outbox has no Kafka settings (placement by
        the producer). Reads the whole change topic (a snapshot's check for keys the
        table no longer holds); InfrastructureError if the broker does not answer."""
        from connectors.kafka_admin import live_keys  # noqa: PLC0415

        if self._kafka_conf is None:
            return None
        self._place.resolve()
        live = live_keys(self._kafka_conf, self.topic)
        for _, raw in self._table.first_items(self._table.entries()):
            p, key, value = _loads(raw)
            at = self.placement(p, key)
            if value is None:
                live.discard((at, key))
            else:
                live.add((at, key))
        return live

    def announced_values(self, wanted: set[tuple[int, bytes]]
                         ) -> dict[tuple[int, bytes], bytes | None]:
        """The last value (None: a tombstone) that the change topic holds or will hold for
        each (change-topic partition, key) of `wanted`, counting the events still waiting
        here (sent first): the event a snapshot's `d` for a key the table no longer holds
        takes its `before` from (see materializer.changes.readback). Reads the change topic
        whole; InfrastructureError if the broker does not answer. Call after
        `announced_keys`."""
        from connectors.kafka_admin import last_values  # noqa: PLC0415

        if self._kafka_conf is None or not wanted:
            return {}
        out = last_values(self._kafka_conf, self.topic, wanted)
        for _, raw in self._table.first_items(self._table.entries()):
            p, key, value = _loads(raw)
            at = self.placement(p, key)
            if (at, key) in wanted:
                out[(at, key)] = value
        return out

    @property
    def registry(self) -> SchemaRegistry | None:
        return self._registry

    def placement(self, partition: int, key: bytes) -> int:
        """The change-topic partition of a message staged for source `partition` (only
        once the topic is resolved: see `announced_keys`), or pinned (`pinned`)."""
        return self._place.of(partition, key)

    def pinned(self, msgs: list[Message], at: int) -> list[Message]:
        """`msgs` sent to change-topic partition `at` whatever the placement: a snapshot's
        `d` event and tombstone for a key an earlier placement put there (the source
        topic was recreated with another partition count, so the placement changed from
        source partition to key hash or back: sent where the key's events go now, they
        would leave its old row live in `at` and delete its current one)."""
        return [m if self.placement(m[0], m[1]) == at else (-1 - at, m[1], m[2])
                for m in msgs]

    def _keep(self, entries: list[tuple[bytes, tuple[int, bytes, bytes | None]]]) -> None:
        """After their batch committed: keep staged events in memory for `drain`, unless
        that would hold more than `hot_limit` (a broker away: then LMDB alone holds them)."""
        if len(self._hot) + len(entries) <= self._hot_limit:
            self._hot.extend(entries)
        else:
            self._hot.clear()

    # ------------------------------------------------------------------ draining

    def backlog(self) -> int:
        """Committed events (tombstones included) not yet acknowledged by the broker."""
        return self._table.entries()

    @property
    def full(self) -> bool:
        """True while the backlog exceeds `max_backlog`: the worker should stop ingesting."""
        return self.backlog() > self.max_backlog

    def drain(self, max_chunks: int | None = None) -> int:
        """Produce every committed event in order, wait for the acknowledgements, then
        delete them from the outbox; returns how many were delivered and deleted.
        `max_chunks`: return after that many chunks even if more are waiting.

        On a broker failure: logs, backs off exponentially (`min_backoff` to
        `max_backoff` seconds) and returns what was delivered so far; the next call
        after the back-off first lets the failed chunk leave the producer, then sends
        everything again from the first unacknowledged event. Raises only for errors a
        retry cannot fix (a store failure, a bug). Does nothing unless `drains`."""
        if not self.drains or time.monotonic() < self._retry_at:
            return 0
        drained = 0
        try:
            self._place.resolve()
            if self._unsettled:
                self._sink.flush(self.settle_timeout)  # raises until the producer is empty
                self._unsettled = False
            chunks = 0
            while True:
                batch, hot = self._next_chunk()
                if not batch:
                    break
                full_chunk = len(batch) >= self.chunk
                try:
                    self._send(batch)
                except MessageTooLarge as e:
                    self.stuck = self._too_large(batch)
                    drained += self._settle_before(batch, e.produced, hot)
                    raise
                if hot and len(batch) == len(self._hot):
                    self._table.clear()  # the outbox held exactly these: empty it at once
                else:
                    self._table.delete_keys([k for k, _ in batch])
                if hot:
                    del self._hot[:len(batch)]
                drained += len(batch)
                chunks += 1
                if not full_chunk or (max_chunks is not None and chunks >= max_chunks):
                    break
        except Exception as e:
            if not _is_transient(e):
                raise
            self.drained_total += drained
            self._back_off(e)
            return drained
        self.drained_total += drained
        self.stuck = None
        if self._failures:
            log.info("change events of %s reach %s again (%d failed attempt(s))",
                     self.spec.name, self.topic, self._failures)
            self._failures = 0
        self._backoff = 0.0
        return drained

    def _next_chunk(self) -> tuple[list[tuple[bytes, tuple[int, bytes, bytes | None]]], bool]:
        """The next `chunk` committed events, oldest first, and whether they come from
        memory: the in-memory events are used when the outbox's first committed key is
        the first of them (then the outbox holds exactly those), else it is read."""
        hot = self._hot
        if hot:
            if self._table.first_key() == hot[0][0]:
                return hot[:], True  # already in memory (at most hot_limit): one round
            hot.clear()  # an older backlog comes first: read everything from the outbox
        return [(k, _loads(raw)) for k, raw in self._table.first_items(self.chunk)], False

    def _send(self, batch: list[tuple[bytes, tuple[int, bytes, bytes | None]]]) -> None:
        """Produce one chunk and wait until every message of it is acknowledged."""
        self._unsettled = True
        # MessageTooLarge says how many went to the producer before it (`produced`)
        self._sink.produce_many(self.topic, self._place.placed(m for _, m in batch))
        self._sink.flush(self.flush_timeout)  # raises unless all acknowledged, none failed
        self._unsettled = False

    def _settle_before(self, batch: list[tuple[bytes, tuple[int, bytes, bytes | None]]],
                       produced: int, hot: bool) -> int:
        """After the producer refused message `produced` of `batch` as too large: deliver
        and delete the ones before it, so that an outbox stuck on that message does not
        send them again at every retry (the change topic would grow by them each time).
        How many were deleted (none if the producer does not confirm them)."""
        if not produced:
            return 0
        try:
            self._sink.flush(self.flush_timeout)
        except InfrastructureError:
            return 0
        self._unsettled = False
        self._table.delete_keys([k for k, _ in batch[:produced]])
        if hot:
            del self._hot[:produced]
        return produced

    def _too_large(self, batch: list[tuple[bytes, tuple[int, bytes, bytes | None]]]) -> str:
        """What to tell the operator about a chunk the producer or the broker refused as
        too large (the largest event of it is the one)."""
        _, (_, key, value) = max(batch, key=lambda e: len(e[1][1]) + len(e[1][2] or b""))
        shown = key.decode("utf-8", "replace")
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        return (f"a change event of {len(key) + len(value or b''):,} bytes (key {shown}) is "
                f"larger than the producer or {self.topic} takes; it and every later change "
                f"event of {self.spec.name} wait in the outbox ({self.backlog():,} now) and "
                "are retried: raise `message.max.bytes` in `kafka:` (librdkafka's default "
                "is 1,000,000 bytes; then start the worker again) and the change topic's "
                "`max.message.bytes` above it")

    def _back_off(self, err: Exception) -> None:
        self._failures += 1
        self._backoff = min(self.max_backoff, max(self.min_backoff, self._backoff * 2))
        self._retry_at = time.monotonic() + self._backoff
        if self.stuck is not None and isinstance(err, MessageTooLarge):
            log.error("change events of %s to %s cannot be delivered: %s (%s); retrying in "
                      "%.1f s", self.spec.name, self.topic, self.stuck, err, self._backoff)
            return
        self.stuck = None
        log.warning("change events of %s to %s not delivered (%s); %d waiting, "
                    "retrying in %.1f s", self.spec.name, self.topic, err, self.backlog(),
                    self._backoff)


def _is_transient(e: Exception) -> bool:
    """Broker and registry trouble that a later attempt may not meet (the connectors
    translate theirs into InfrastructureError, which is retriable)."""
    return isinstance(e, MaterializerError) and e.retriable

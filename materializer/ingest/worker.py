"""The long-lived worker: consume, apply, commit, emit (SPEC §4-§6).

Loop guarantees:
- For each relation, one LMDB write transaction per batch holds the rows of every
  partition in that batch *and* their next offsets; Kafka's committed offsets are
  informational only. A restart after any crash resumes exactly after the last
  committed batch: nothing applied twice, nothing skipped.
- Dead letters of a batch are acknowledged by the broker before that batch commits, by a
  producer of their own (change events the broker holds up never delay or fail a batch).
- Change events are staged in the same transaction and drained after it commits.
- SIGTERM/SIGINT: the current batch finishes and commits, then `run` returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from materializer.errors import RecordRejectedFatal
from materializer.ingest.apply import Rejected
from materializer.ingest.batch_retry import apply_with_retry, back_off
from materializer.ingest.batching import split_by_partition, split_ends
from materializer.ingest.deadletter import DeadLetters, dead_letter_limit, settle_within
from materializer.ingest.opening import (
    Feed,
    fatal_message,
    open_registry,
    open_relations,
    registry_within_poll_interval,
)
from materializer.ingest.progress import Progress
from materializer.ingest.relation import Relation
from materializer.ingest.replicated import clear_revoked, read_new_partitions
from materializer.ingest.resets import handle_out_of_range, handle_resets, rebuild_in_place
from materializer.ingest.resync import PendingSnapshots
from materializer.ingest.topics import OffsetWatch, TopicWatch
from materializer.ingest.worker_status import worker_status
from materializer.shutdown import bounded
from materializer.specs import BATCH_SIZE, Catalog, TableSpec
from materializer.status import (
    Histogram,
    lag,
    rejection_counter,
    write_status,
    writer_identity,
)
from materializer.store.presence import StorePresence
from materializer.versions.schedule import SnapshotScheduler

log = logging.getLogger("materializer.worker")

POLL_TIMEOUT = 0.25
STATUS_INTERVAL = 1.0
_OUTBOX_FULL = "change events of "  # how `retrying` says an outbox is full
SHUTDOWN_GRACE = 5.0
"""Seconds the shutdown steps may take after the loop stops, even with a broker that hangs
(with the loop's own broker calls, at most 5 s each, SIGTERM takes at most about 10 s)."""


class Worker:
    """Materializes every relation of a catalog from its topic, until stopped."""

    cluster: Any = None  # materializer.cluster.agent.ClusterAgent, once the group consumer runs
    cluster_member = True  # False: no membership (one of `run --processes N`'s workers)
    declares = True  # False: the store's declared relations are recorded by another process
    api_token: str | None = None  # the API's token (cluster: copies from other workers' APIs)

    def __init__(self, catalog: Catalog, *, batch_size: int = BATCH_SIZE,
                 progress: Progress | None = None,
                 stop_event: threading.Event | None = None) -> None:
        self.catalog = catalog
        self.batch_size = batch_size
        self.stop_event = stop_event or threading.Event()
        self.group = catalog.group
        self.progress = progress
        self.registry = open_registry(catalog)
        self.relations = open_relations(catalog, self.registry, declare=self.declares)
        self.grouped = Feed({})
        self.replicated = Feed({})
        for rel in self.relations:
            feed = self.replicated if getattr(rel.spec, "replicated", False) else self.grouped
            feed.by_topic.setdefault(rel.spec.topic, []).append(rel)
        self.applied_total = 0
        self.clean_shutdown = True
        self.applied_by_relation: dict[str, int] = {r.spec.name: 0 for r in self.relations}
        self.counters: dict[str, int] = {}
        self.batch_hist = Histogram()
        self._sink: Any = None
        # a producer of their own: a batch's dead letters settle (are acknowledged before
        # it commits) without waiting for change events another topic holds up
        self.dead_letters = DeadLetters(self._dead_letter_sink, catalog.kafka_config,
                                        dead_letter_limit(catalog.kafka_config))
        # one wait for their acknowledgements within max.poll.interval.ms: a longer outage
        # retries the batch, the group's consumer held meanwhile (`ingest.batch_retry`)
        self.dead_letters.flush_timeout = settle_within(catalog.kafka_config)
        self._last_status = 0.0
        self.retrying: str | None = None  # what a batch retried with backoff waits on
        self.started_at = time.time()
        self.identity = writer_identity()  # the status file names its writer
        self.snapshots = SnapshotScheduler(catalog)  # `snapshots:` (materializer.versions)
        self.pending = PendingSnapshots(lambda rel: self._attach_outboxes(only=rel))
        self.presence = StorePresence(catalog.store_path)  # stops the worker if removed
        self.presence.check(rel.writer.path for rel in self.relations)
        for rel in self.relations:
            if rel.writer.snapshot_due():  # rebuilt in place, stopped before its snapshot
                self.pending.add(rel, keep_events=rel.writer.snapshot_due_keeps_events())

    # ---------------------------------------------------------------- plumbing

    def sink(self) -> Any:
        if self._sink is None:
            from connectors.producer import Sink  # noqa: PLC0415

            self._sink = Sink(self.catalog.kafka_config)
        return self._sink

    def _dead_letter_sink(self) -> Any:
        from connectors.producer import Sink  # noqa: PLC0415

        return Sink(self.catalog.kafka_config)

    @property
    def feeds(self) -> list[Feed]:
        return [f for f in (self.grouped, self.replicated) if f.by_topic]

    def _attach_outboxes(self, only: Relation | None = None) -> None:
        from materializer.changes.outbox import ChangeOutbox  # noqa: PLC0415

        for rel in self.relations:
            spec = rel.spec
            if only not in (None, rel) or (only is None and self.pending.silent(rel)):
                continue
            if isinstance(spec, TableSpec) and spec.changes is not None:
                rel.outbox = ChangeOutbox(spec, rel.writer, rel.applier.layout,  # type: ignore[union-attr]
                                          self.sink(), None, self.registry,
                                          kafka_conf=self.catalog.kafka_config,
                                          # a shared store's are sent by the supervisor
                                          shared=rel.shared, drains=not rel.shared)
                if not self.stop_event.is_set():  # stopping: the shutdown delivers them
                    rel.outbox.drain()

    # ---------------------------------------------------------------- the loop

    def join_cluster(self) -> None:
        """Become a member of the group's cluster (publish, read, route: see
        materializer.cluster.agent), once; `cluster.json` is this run's from here on, broker
        or not. `run` calls it before starting the API, so the API never routes by the
        file of an earlier run, nor answers from the store alone meanwhile."""
        if self.cluster is None and self.cluster_member and self.grouped.by_topic:
            from materializer.cluster.agent import ClusterAgent  # noqa: PLC0415

            self.cluster = ClusterAgent.start(self)

    def run(self) -> None:
        """Consume and apply until `stop_event` is set. Raises RecordRejectedFatal for a bad
        record under policy `fail` (after committing everything before it)."""
        from connectors.kafka import AssignedSource, Source  # noqa: PLC0415
        from connectors.kafka_admin import create_missing_topic, describe_topics  # noqa: PLC0415

        # SIGTERM during start-up: each step that may wait for the broker (up to 5 s) is
        # skipped once the stop is asked, so the stop takes one such step plus the shutdown
        stopping = self.stop_event.is_set
        self.join_cluster()
        self._attach_outboxes()
        conf = self.catalog.kafka_config
        self.topics = TopicWatch(self.relations, lambda ts: describe_topics(conf, ts),
                                 create=lambda t, n, r: create_missing_topic(conf, t, n, r),
                                 on_partitions=self._replicated_partitions)
        self.offsets = OffsetWatch()
        if not stopping():
            self._handle_resets(self.topics.changed(force=True))
        if self.grouped.by_topic and not stopping():
            too_long = registry_within_poll_interval(self.registry, conf)
            if too_long:
                log.warning("%s", too_long)
            self.grouped.source = Source(conf, self.group, list(self.grouped.by_topic),
                                         self.grouped.start_offset)
            self.grouped.source.on_ownership = self._ownership_changed
        if self.replicated.by_topic and not stopping():
            # a topic missing yet is waited for, as the group's are (`_replicated_partitions`)
            self.replicated.source = AssignedSource(conf, list(self.replicated.by_topic),
                                                    self.replicated.start_offset,
                                                    wait_for_topics=True)
            self._replicated_held(sorted(self.replicated.source.assigned))
        feeds = self.feeds
        timeout = POLL_TIMEOUT / max(1, len(feeds))
        try:
            while not self.stop_event.is_set():
                if any(rel.outbox is not None and rel.outbox.full for rel in self.relations):
                    self._drain()
                    if self._outbox_full():
                        back_off(self.grouped.source, self.stop_event, 0.2)  # change topic away
                        continue
                elif self.retrying is not None and self.retrying.startswith(_OUTBOX_FULL):
                    self.retrying = None  # drained by another process (run --processes N)
                for feed in feeds:
                    msgs, ends = feed.source.poll(self.batch_size, timeout)
                    if feed.source.generation != feed.generation:  # a new assignment: the
                        feed.generation = feed.source.generation   # topics may be new ones
                        rebuilt = self._handle_resets(self.topics.changed(force=True))
                        msgs = [m for m in msgs if m.topic() not in rebuilt]  # re-read
                        ends = {tp: o for tp, o in ends.items() if tp[0] not in rebuilt}
                    if msgs or ends:
                        self._apply_with_retry(msgs, feed, ends)
                    handle_out_of_range(feed, self.offsets.check(feed.by_topic, feed.source),
                                        self._rebuild_in_place)
                if self.cluster is not None:
                    self.cluster.poll()  # partitions caught up, standby copies
                self._handle_resets(self.topics.changed())
                self.snapshots.tick()
                now = time.monotonic()
                if now - self._last_status >= STATUS_INTERVAL:
                    self._last_status = now
                    self.presence.check(rel.writer.path for rel in self.relations)
                    self.pending.settle((f.source, self.relations) for f in feeds)
                    self._write_status()
        finally:
            self._write_status(stopping=True)
            self.clean_shutdown = self._shut_down(feeds, time.monotonic() + SHUTDOWN_GRACE)
            self.snapshots.close()

    def _shut_down(self, feeds: list[Feed], deadline: float) -> bool:
        """Deliver what the outboxes hold, leave the group, flush the producer: each step in
        a helper thread, all within `deadline`. False if the broker did not answer in time
        (committed state is safe either way; the caller may then exit at once)."""
        if self.cluster is not None:  # the others stop routing to this worker at once
            bounded(self.cluster.stop, "leaving the cluster", deadline, log)
        ok = bounded(lambda: self._drain(waiting_only=True), "delivering change events",
                     deadline, log)
        for feed in feeds:
            if ok and feed.source is not None:
                ok = bounded(feed.source.close, "leaving the consumer group", deadline, log)
        if ok and self._sink is not None:
            sink = self._sink
            ok = bounded(lambda: sink.flush(max(0.1, deadline - time.monotonic())),
                         "flushing the producer", deadline, log)
        return ok

    def _ownership_changed(self, pairs: list[tuple[str, int]], owned: bool) -> None:
        """A rebalance took (owned=False) or gave (True) these partitions: mark them revoked
        in each relation they feed, or clear the mark, so that readers of this store never
        answer a revoked partition's rows as current. Called inside poll, between batches."""
        if owned and self.cluster is not None:  # it serves them once caught up
            self.cluster.ownership_changed(pairs, owned)
            return
        for topic in {t for t, _ in pairs}:
            parts = [p for t, p in pairs if t == topic]
            for rel in self.grouped.by_topic.get(topic, ()):
                rel.writer.set_revoked(parts, not owned)
        if self.cluster is not None:
            self.cluster.ownership_changed(pairs, owned)

    def _replicated_partitions(self, counts: Mapping[str, int]) -> None:
        """Read the partitions the replicated tables' topics gained (`ingest.replicated`)."""
        self._replicated_held(read_new_partitions(self.replicated, counts))

    def _replicated_held(self, pairs: list[tuple[str, int]]) -> None:
        """Clear the revoked mark of replicated partitions now read (`ingest.replicated`)."""
        clear_revoked(self.replicated, pairs)

    def _apply_with_retry(self, msgs: list[Any], feed: Feed,
                          ends: dict[tuple[str, int], int] | None = None) -> None:
        """Apply a batch, again while it fails in a retriable way (`ingest.batch_retry`)."""
        apply_with_retry(lambda m, e: self.apply_batch(m, feed, e), msgs, ends,
                         group=self.grouped.source,
                         of_group=self.grouped.source is not None
                         and feed.source is self.grouped.source,
                         stop=self.stop_event, waiting_on=self._waiting_on,
                         write_status=self._status_at, status_every=STATUS_INTERVAL)

    def _outbox_full(self) -> bool:
        """Whether a relation's outbox is still full (its change topic does not take the
        events): then ingestion waits, and the status file keeps being written saying so
        (`retrying`; lag unknown while the consumer is held), so readers see a worker held
        up, neither a stopped one nor one caught up."""
        full = [r.spec.name for r in self.relations if r.outbox is not None and r.outbox.full]
        if full:
            self.retrying = (f"{_OUTBOX_FULL}{', '.join(full)} are not taken by the broker "
                             "(the outbox is full): ingestion waits")
            if (now := time.monotonic()) - self._last_status >= STATUS_INTERVAL:
                self._status_at(now)
        elif self.retrying is not None and self.retrying.startswith(_OUTBOX_FULL):
            self.retrying = None
        return bool(full)

    def _waiting_on(self, what: str | None) -> None:
        self.retrying = what

    def _status_at(self, now: float) -> None:
        self._last_status = now
        self._write_status()

    def apply_batch(self, msgs: list[Any], feed: Feed,
                    ends: dict[tuple[str, int], int] | None = None) -> None:
        """Apply one polled batch of `feed` (and the partition ends it reached): per
        relation one transaction with rows and offsets, then drain change events and tell
        the group how far it is."""
        t0 = time.perf_counter()
        fatal: tuple[Relation, Rejected] | None = None
        commits: dict[tuple[str, int], int] = {}
        ends_of = split_ends(ends)
        for topic, parts in split_by_partition(msgs, ends_of).items():
            for rel in feed.by_topic.get(topic, ()):
                outcomes = rel.apply(parts, self.dead_letters, ends_of.get(topic))
                for p, out in outcomes.items():
                    self.applied_total += out.applied
                    self.applied_by_relation[rel.spec.name] += out.applied
                    for r in out.rejected:
                        key = f"{rel.spec.name}|{rejection_counter(r.policy, r.reason)}"
                        self.counters[key] = self.counters.get(key, 0) + 1
                    if out.fatal is not None and fatal is None:
                        fatal = (rel, out.fatal)
                    key_tp = (topic, p)
                    commits[key_tp] = min(commits.get(key_tp, out.next_offset), out.next_offset)
        self.batch_hist.observe(time.perf_counter() - t0)
        self._drain()
        if feed.source is not None:
            feed.source.commit(commits)
        if fatal is not None:
            raise RecordRejectedFatal(fatal_message(*fatal))

    def _handle_resets(self, changed: list[tuple[Relation, str, str]]) -> set[str]:
        return handle_resets(changed, self._rebuild_in_place)

    def _rebuild_in_place(self, rel: Relation, topic_id: str | None) -> None:
        """`on_reset: rebuild` (`ingest.resets`); ProcessWorker refuses instead."""
        rebuild_in_place(rel, topic_id, self.catalog, self.registry, self.pending, self.feeds)

    def _drain(self, waiting_only: bool = False) -> None:
        """Deliver the outboxes' change events. `waiting_only` (the shutdown): only those
        of outboxes that hold some (an empty one would still look the change topic up,
        waiting for a broker that is away when it never was reached)."""
        for rel in self.relations:
            if rel.outbox is not None and not (waiting_only and not rel.outbox.backlog()):
                rel.outbox.drain()

    # ---------------------------------------------------------------- status

    def partition_progress(self) -> list[dict[str, Any]]:
        out = []
        for feed in self.feeds:
            src = feed.source
            if src is None:
                continue
            for topic, p in sorted(src.assigned):
                for rel in feed.by_topic.get(topic, ()):
                    nxt = rel.next_offsets.get(p, 0)
                    end = src.end_offset(topic, p)
                    out.append({"relation": rel.spec.name, "topic": topic, "partition": p,
                                "next_offset": nxt, "end_offset": end, "lag": lag(end, nxt)})
        return out

    def _write_status(self, stopping: bool = False) -> None:
        parts = self.partition_progress()
        if self.cluster is not None:
            self.cluster.progress(parts)
        caught_up = (not stopping and bool(parts) and self.retrying is None
                     and all(x["lag"] == 0 for x in parts))
        status = worker_status(self, parts, caught_up, stopping)
        try:
            self._publish_status(status)
        except OSError as e:
            log.warning("cannot write the status file in %s: %s", self.catalog.store_path, e)
        if self.progress is not None and not stopping:
            self.progress.update(parts, self.applied_by_relation)

    def _publish_status(self, status: dict[str, Any]) -> None:
        """Write the status where readers look for it (`<store>/worker.json`)."""
        write_status(self.catalog.store_path, status)

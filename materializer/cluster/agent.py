"""The worker's side of the cluster: its membership record, and its store kept to its
assignment.

`materializer.ingest.worker.Worker` calls in at five points (each a line or two there):
`ClusterAgent.start(worker)` first (`Worker.join_cluster`, before `run` starts the API),
`ownership_changed()` from the rebalance callback (which leaves marking assigned
partitions to it), `poll()` once per loop (partitions caught up, standby copies, see
`standby` and `handover`), `progress(parts)` with each status update, and `stop()` at
shutdown.

Guarantees:
- This worker's record always shows its current assignment (published at once on every
  change, and with every heartbeat) with the group generation it came with.
- On every assignment, the partitions the store holds but this worker was not assigned
  are marked revoked (`RelationWriter.set_revoked`), and so are the topic's partitions it
  never held, so the store answers as current exactly the partitions this worker owns:
  after a restart it never serves partitions the group gave to another worker while it
  was away, and a read of the store alone (a snapshot's `?as_of=`, a `Store`) never takes
  a key of another worker's partition for absent.
- A partition assigned while other members are around stays marked revoked until this
  store has caught up with its end offset (as first seen after the assignment; or the last
  stable offset of a transaction open then and still open, `end_to_reach`): another
  worker may have answered newer rows of it, so an older copy (or none) here must not
  answer, not even "absent". So does one assigned to a worker left alone when another
  worker had it since this store last read it (the store had it marked revoked, a
  member's record or the group's committed offset is past this store's offset): the
  survivor of a two-worker cluster does not answer the other's partitions from its older
  copy. A worker alone answers its own partitions at once (after a restart, a new group).
- A worker process that was frozen longer than the group's `session.timeout.ms` (SIGSTOP,
  a paused VM: seen as a gap in the membership thread's heartbeats, which nothing else
  delays that long) may have lost its assignment without knowing yet: the group may have
  given its partitions to another worker that applied newer rows meanwhile, and its
  consumer learns so only at its next heartbeat. Its record and `cluster.json` then say it
  owns nothing (its API answers its keys 503, never its older rows as current) until the
  group's verdict arrives (a rebalance callback) or two consumer heartbeat intervals passed
  without one (the session held). A worker loop that is only slow (a long batch, a registry
  outage retried) keeps its heartbeats, and its session: nothing is doubted.
- This worker's record carries each topic's partition count as the broker last said it,
  None while not known (`partition_counts`): the API then answers misses and scans 503,
  never routed by a guessed count. A topic created after the start (by this worker for a
  relation declaring `partitions`, or by anyone) is routed within seconds of its
  assignment, not up to 30 s later.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from materializer.cluster.handover import Handover
from materializer.cluster.membership import Membership, now_ms
from materializer.cluster.partition_counts import PartitionCounts
from materializer.cluster.partitioning import Partitioning
from materializer.cluster.record import Member, RelationState
from materializer.cluster.settings import advertised_url, worker_id
from materializer.cluster.standby import Standby
from materializer.specs import RelationSpec, TableSpec

if TYPE_CHECKING:
    from materializer.ingest.worker import Worker

log = logging.getLogger("materializer.cluster")

SESSION_TIMEOUT_MS = 45_000  # librdkafka's default session.timeout.ms
HEARTBEAT_INTERVAL_MS = 3_000  # and heartbeat.interval.ms


def _setting_ms(conf: dict[str, Any], name: str, default: int) -> int:
    value = str(conf.get(name, "")).strip()
    return int(value) if value.isdigit() and int(value) > 0 else default


def session_timeout_ms(conf: dict[str, Any]) -> int:
    """The group session timeout a worker's consumer runs with."""
    return _setting_ms(conf, "session.timeout.ms", SESSION_TIMEOUT_MS)


def verdict_wait_s(conf: dict[str, Any]) -> float:
    """How long a worker frozen past its session timeout waits, after it runs again, for
    its consumer's next heartbeat to tell it lost the session (a rebalance callback): two
    heartbeat intervals, at most the session timeout."""
    beat = _setting_ms(conf, "heartbeat.interval.ms", HEARTBEAT_INTERVAL_MS)
    return min(2 * beat, session_timeout_ms(conf)) / 1000


def end_to_reach(seen: int, end: int | None, marks: tuple[int, int] | None) -> int:
    """The end offset a partition taken over must reach before it is answered: `seen`, its
    end first seen after the assignment; or its end now (`end`), when that is lower while
    its high watermark (`marks`, the last fetch response's) is not: the last stable offset
    of a transaction open then and still open (`Reach.stable_end`; before librdkafka's
    statistics showed it, the end read was the high watermark, the open transaction's
    records counted). No reader (`read_committed`) can read past it, the previous owner no
    more than this worker, and it never moves down, so the store then holds every record
    any worker could have applied up to `seen`; without it, the partition answered 503
    until the broker aborted a transaction left open (`transaction.timeout.ms`, up to 15
    min). A high watermark now below `seen` (a topic truncated, a leader behind) lowers
    nothing: `seen` is waited for, as before."""
    if end is None or end >= seen or marks is None or marks[1] < seen:
        return seen
    return end


def is_replicated(spec: RelationSpec) -> bool:
    return isinstance(spec, TableSpec) and spec.replicated


class ClusterAgent:
    """This worker as a member of its group (see the module doc)."""

    def __init__(self, worker: Worker) -> None:
        catalog = worker.catalog
        self.worker = worker
        self.specs = list(catalog.relations)
        self.id = worker_id(catalog)
        self.url = advertised_url(catalog.api)
        self.started_at = now_ms()
        self._lock = threading.Lock()
        self._assigned: frozenset[tuple[str, int]] = frozenset()
        self._standby: frozenset[tuple[str, int]] = frozenset()
        self._generation: int | None = None
        self._assigned_at = self.started_at
        self._progress: dict[tuple[str, int], tuple[int, int | None]] = {}
        # (topic, partition) -> (offset another member had applied, end offset first seen
        # (`end_to_reach`), the relations not answering it until then)
        self._restoring: dict[tuple[str, int], tuple[int, int | None, tuple[str, ...]]] = {}
        self.counts = PartitionCounts((s.topic for s in self.specs), catalog.kafka_config,
                                      on_learned=lambda: self.membership.wake())
        self.session_ms = session_timeout_ms(catalog.kafka_config)
        self._verdict_wait = verdict_wait_s(catalog.kafka_config)
        self._last_local: float | None = None  # the membership thread's last record
        self._doubted_until: float | None = None  # frozen past the session timeout
        self._partitioning = {
            s.name: Partitioning(s.partitioner, s.key_format, s.key_columns,
                                 [t.kind for t in s.key_types],
                                 getattr(s, "shard_key", ())).exact for s in self.specs}
        self.standby = Standby(worker) if any(
            r.spec.standby_replicas > 0 for rels in worker.grouped.by_topic.values()
            for r in rels) else None
        self.handover = Handover(self, getattr(worker, "api_token", None),
                                 catalog.cluster.forward_timeout_ms / 1000 * 6) \
            if self.standby is not None else None
        self.membership = Membership(
            catalog.kafka_config, catalog.group, catalog.store_path, self.id, self.local,
            heartbeat_ms=catalog.cluster.heartbeat_ms,
            timeout_ms=catalog.cluster.member_timeout_ms,
            extra={"forward_timeout_ms": catalog.cluster.forward_timeout_ms, "url": self.url,
                   "session_timeout_ms": self.session_ms})

    @classmethod
    def start(cls, worker: Worker) -> ClusterAgent:
        agent = cls(worker)
        agent.membership.start()
        log.info("cluster: this worker is %s, API advertised at %s", agent.id, agent.url)
        return agent

    # ------------------------------------------------------------ worker hooks

    def ownership_changed(self, pairs: list[tuple[str, int]], owned: bool) -> None:
        """From the rebalance callback (the worker's thread, between batches)."""
        source = self.worker.grouped.source
        assigned = frozenset(source.assigned) if source is not None else frozenset()
        generation = source.group_generation() if source is not None else None
        if owned:
            self.counts.ask_soon(pairs)
            self._mark_unassigned(assigned)
            if self.standby is not None:  # the group consumer starts where the copy is
                if self.handover is not None:  # or another worker's copy is fetched
                    self.handover.plan(sorted(set(pairs) - self.standby.partitions),
                                       self.standby.by_topic)
                for topic, p in sorted(set(pairs) & self.standby.partitions):
                    for rel in self.standby.by_topic.get(topic, ()):
                        log.info("cluster: %s partition %d taken over from this worker's "
                                 "standby copy at offset %d", rel.spec.name, p,
                                 rel.next_offsets.get(p, 0))
                self.standby.drop(pairs)
                self._standby = frozenset(self.standby.partitions)
            self._restore(pairs)
        else:
            for pair in pairs:
                self._restoring.pop(pair, None)
        with self._lock:
            self._assigned, self._generation = assigned, generation
            self._assigned_at = now_ms()
            if self._doubted_until is not None:  # the group's verdict: what it gave is ours
                log.info("cluster: the group answered after the stall: this worker owns "
                         "what it was given")
            self._doubted_until = None
        self.membership.wake()

    def progress(self, parts: list[dict[str, Any]]) -> None:
        """The worker's per-partition progress (next offset, lag), about once a second."""
        got = {(p["relation"], p["partition"]): (p["next_offset"], p["lag"]) for p in parts}
        if self.standby is not None:
            got.update(self.standby.progress())
        with self._lock:
            self._progress = got

    def poll(self) -> None:
        """From the worker's loop (its thread, between batches): serve the partitions that
        caught up, follow the routing table's standby choice, take pending copies, apply
        what the standby consumer has."""
        source = self.worker.grouped.source
        if self.standby is not None:
            owned = set(source.assigned) if source is not None else set()
            if self.standby.sync(self.membership.routing(), self.id, owned):
                with self._lock:
                    self._standby = frozenset(self.standby.partitions)
                self.membership.wake()
            if self.handover is not None and self.handover.pending:
                self.handover.run(self.standby.by_topic)
        if self._restoring and source is not None:
            self._serve_caught_up(source)
        if self.standby is not None:
            self.standby.poll()

    def _doubted(self) -> bool:
        """Whether this worker's assignment may have been lost without its knowing (module
        doc): the membership thread's records came further apart than the session timeout
        (the process was frozen), and no verdict has come since. Called from `local`."""
        now = time.monotonic()
        with self._lock:
            last = self._last_local
            if last is not None and (now - last) * 1000 > self.session_ms:
                if self._doubted_until is None:
                    log.warning("cluster: this worker was frozen for %.1f s, past the group "
                                "session timeout (%d ms): its partitions may have been given "
                                "to another worker; owning nothing until the group says",
                                now - last, self.session_ms)
                self._doubted_until = now + self._verdict_wait
            elif self._doubted_until is not None and now >= self._doubted_until:
                log.info("cluster: no rebalance after the freeze: the group session held")
                self._doubted_until = None
            return self._doubted_until is not None

    def _restore(self, pairs: list[tuple[str, int]]) -> None:
        """Partitions just assigned: not answered here until this store has caught up with
        their end offset as first seen after the assignment, when another worker may have
        served newer rows of them: with other members around, and alone too when this
        store's copy is known to be behind what another worker applied (it was given to
        another worker since, a member's record or the group's committed offset says more
        was applied). Alone otherwise (a worker's own partitions after its restart, a new
        group), at once."""
        routing = self.membership.routing()
        alone = len(routing.members) <= 1
        source = self.worker.grouped.source
        committed = (source.committed(pairs) if source is not None else None) if alone \
            else {}
        for topic, p in pairs:
            rels = self.worker.grouped.by_topic.get(topic, ())
            said = [st.offsets.get(p, 0) for m in (*routing.members.values(),
                                                   *routing.expired.values())
                    if m.id != self.id for r in rels
                    if (st := m.relations.get(r.spec.name)) is not None
                    and p in st.assigned]
            floor = max(said, default=0)  # at least as far as any other member said
            behind = floor if committed is None else max(floor, committed.get((topic, p), 0))
            waiting = []
            for rel in rels:
                was_revoked = not rel.writer.set_revoked([p], True)
                if not alone or was_revoked or committed is None \
                        or behind > rel.next_offsets.get(p, 0):
                    waiting.append(rel.spec.name)
                else:
                    rel.writer.set_revoked([p], False)
            if waiting:
                self._restoring[(topic, p)] = (floor, None, tuple(waiting))

    def _serve_caught_up(self, source: Any) -> None:
        for (topic, p), (floor, seen, names) in list(self._restoring.items()):
            if (topic, p) not in source.assigned:
                del self._restoring[(topic, p)]
                continue
            end = source.end_offset(topic, p)
            if seen is None:
                if end is None:
                    continue  # no fetch response yet
                seen = end
                self._restoring[(topic, p)] = (floor, seen, names)
            target = max(floor, end_to_reach(seen, end, source.watermarks(topic, p)))
            rels = [r for r in self.worker.grouped.by_topic.get(topic, ())
                    if r.spec.name in names]
            nxt = min((r.next_offsets.get(p, 0) for r in rels), default=0)
            if nxt >= target:
                del self._restoring[(topic, p)]
                for rel in rels:
                    rel.writer.set_revoked([p], False)
                log.info("cluster: %s partition %d caught up at offset %d: answered here",
                         topic, p, nxt)

    def stop(self) -> None:
        self.membership.stop()
        if self.standby is not None:
            self.standby.close()
        if self.handover is not None:
            self.handover.close()

    # ------------------------------------------------------------ the record

    def local(self) -> Member:
        """This worker's record as of now (called from the membership thread)."""
        doubted = self._doubted()
        self.counts.refresh()
        with self._lock:
            assigned, standby = self._assigned, self._standby
            if doubted:
                assigned = frozenset()
            generation, assigned_at, progress = self._generation, self._assigned_at, \
                self._progress
        relations = {}
        for s in self.specs:
            mine = sorted(p for t, p in assigned if t == s.topic)
            warm = sorted(p for t, p in standby if t == s.topic)
            offsets = {p: progress[(s.name, p)][0] for p in mine + warm
                       if (s.name, p) in progress}
            lags = {p: progress[(s.name, p)][1] for p in mine + warm if (s.name, p) in progress}
            relations[s.name] = RelationState(
                topic=s.topic, partitions=self.counts.get(s.topic),
                assigned=() if is_replicated(s) else tuple(mine), standby=tuple(warm),
                offsets=offsets, lag=lags, partitioner=s.partitioner,
                key_format=s.key_format, exact_keys=self._partitioning[s.name],
                replicated=is_replicated(s))
        record = Member(id=self.id, url=self.url, generation=generation,
                        assigned_at=assigned_at, heartbeat_at=now_ms(),
                        started_at=self.started_at, pid=os.getpid(), relations=relations)
        with self._lock:  # after the work above: a slow partition count is no freeze
            self._last_local = time.monotonic()
        return record

    def _mark_unassigned(self, assigned: frozenset[tuple[str, int]]) -> None:
        """Mark revoked what the store holds of the group's topics and this worker was not
        assigned (see the module doc), and the topic's partitions it never held: a read of
        this store alone (a snapshot of it, `?as_of=`, a `Store`) must not answer "absent"
        for a key of theirs, it raises PartitionsNotHeld."""
        for topic, rels in self.worker.grouped.by_topic.items():
            mine = {p for t, p in assigned if t == topic}
            for rel in rels:
                held = set(rel.next_offsets)
                if not is_replicated(rel.spec):  # the partition count the store recorded
                    held |= set(range(rel.writer.source_partitions() or 0))
                stale = held - mine
                if stale and rel.writer.set_revoked(sorted(stale), True):
                    log.info("%s: partitions %s are not assigned to this worker: not served "
                             "as current", rel.spec.name, sorted(stale))

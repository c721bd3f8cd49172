"""The worker's side of the cluster: its membership record, and its store kept to its
assignment.

`materializer.ingest.worker.Worker` calls in at four points (each a line or two there):
`ClusterAgent.start(worker)` once its group consumer exists, `ownership_changed()` from
the rebalance callback, `progress(parts)` with each status update, and `stop()` at
shutdown.

Guarantees:
- This worker's record always shows its current assignment (published at once on every
  change, and with every heartbeat) with the group generation it came with.
- On every assignment, the partitions the store holds but this worker was not assigned
  are marked revoked (`RelationWriter.set_revoked`), so the store answers as current
  exactly the partitions this worker owns: after a restart it never serves partitions the
  group gave to another worker while it was away.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from materializer.cluster.membership import Membership, now_ms
from materializer.cluster.partitioning import Partitioning
from materializer.cluster.record import Member, RelationState
from materializer.cluster.settings import advertised_url, worker_id
from materializer.errors import InfrastructureError
from materializer.specs import RelationSpec, TableSpec

if TYPE_CHECKING:
    from materializer.ingest.worker import Worker

log = logging.getLogger("materializer.cluster")

PARTITION_REFRESH_S = 30.0


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
        self._counts: dict[str, int | None] = {}
        self._counted_at = -1e9
        self._partitioning = {
            s.name: Partitioning(s.partitioner, s.key_format, s.key_columns,
                                 [t.kind for t in s.key_types],
                                 getattr(s, "shard_key", ())).exact for s in self.specs}
        self.membership = Membership(
            catalog.kafka_config, catalog.group, catalog.store_path, self.id, self.local,
            heartbeat_ms=catalog.cluster.heartbeat_ms,
            timeout_ms=catalog.cluster.member_timeout_ms,
            extra={"forward_timeout_ms": catalog.cluster.forward_timeout_ms, "url": self.url})

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
            self._mark_unassigned(assigned)
        with self._lock:
            self._assigned, self._generation = assigned, generation
            self._assigned_at = now_ms()
        self.membership.wake()

    def progress(self, parts: list[dict[str, Any]]) -> None:
        """The worker's per-partition progress (next offset, lag), about once a second."""
        got = {(p["relation"], p["partition"]): (p["next_offset"], p["lag"]) for p in parts}
        with self._lock:
            self._progress = got

    def stop(self) -> None:
        self.membership.stop()

    # ------------------------------------------------------------ the record

    def local(self) -> Member:
        """This worker's record as of now (called from the membership thread)."""
        self._refresh_counts()
        with self._lock:
            assigned, standby = self._assigned, self._standby
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
                topic=s.topic, partitions=self._counts.get(s.topic),
                assigned=() if is_replicated(s) else tuple(mine), standby=tuple(warm),
                offsets=offsets, lag=lags, partitioner=s.partitioner,
                key_format=s.key_format, exact_keys=self._partitioning[s.name],
                replicated=is_replicated(s))
        return Member(id=self.id, url=self.url, generation=generation, assigned_at=assigned_at,
                      heartbeat_at=now_ms(), started_at=self.started_at, pid=os.getpid(),
                      relations=relations)

    def _refresh_counts(self) -> None:
        if time.monotonic() - self._counted_at < PARTITION_REFRESH_S:
            return
        from connectors.kafka import partition_count  # noqa: PLC0415

        self._counted_at = time.monotonic()
        for topic in {s.topic for s in self.specs}:
            try:
                self._counts[topic] = partition_count(self.worker.catalog.kafka_config, topic) \
                    or None
            except InfrastructureError as e:
                log.debug("cluster: partition count of %s unknown: %s", topic, e)

    def _mark_unassigned(self, assigned: frozenset[tuple[str, int]]) -> None:
        """Mark revoked what the store holds of the group's topics and this worker was not
        assigned (see the module doc)."""
        for topic, rels in self.worker.grouped.by_topic.items():
            mine = {p for t, p in assigned if t == topic}
            for rel in rels:
                stale = set(rel.next_offsets) - mine
                if stale and rel.writer.set_revoked(sorted(stale), True):
                    log.info("%s: partitions %s are not assigned to this worker: not served "
                             "as current", rel.spec.name, sorted(stale))

"""Standby replicas: other workers keep each partition warm, so failover does not re-read.

`standby_replicas: N` (per relation, or top level) asks for N standby copies of each
partition of the relation's topic. Which workers keep them is decided by rendezvous
hashing over the live members of the routing table (each worker ranks the members by a
hash of (member, topic, partition) and the N best other than the owner keep the copy), so
every worker reaches the same answer from the same table and a member joining or leaving
moves few copies.

A worker reads its standby partitions with a consumer outside the group
(`connectors.kafka.StandbySource`) into its own store, like `replicated: true` does for
whole tables, but only for those partitions. Guarantees:
- A standby partition is marked revoked in the store before anything is applied to it,
  so it is never answered as current; only `?stale=ok` reads it, saying its lag.
- Records are applied in offset order with the applied offset in the same transaction
  (`Relation.apply`); rejected records are counted, never sent: a relation with a
  `dead_letter` policy has no standby copies (`catalog.validate`: only the owner sends
  dead letters, and a copy taking over would pass those it had not sent yet). A record
  the owner's policy would stop on stops only this standby copy (logged), never the
  worker; a failed batch is read again from the stored offset.
- When the group assigns a standby partition to this worker it leaves the standby
  consumer at once, and the group consumer starts it from the standby's applied offset
  (the store's next offset): failover reads only what the standby had not applied yet.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import TYPE_CHECKING, Any

from materializer.cluster.routing import Routing
from materializer.errors import MaterializerError
from materializer.ingest.batching import split_by_partition, split_ends
from materializer.ingest.relation import CountOnly, Relation
from materializer.status import lag

if TYPE_CHECKING:
    from materializer.ingest.worker import Worker

log = logging.getLogger("materializer.cluster")

SYNC_INTERVAL = 0.5
BATCH = 5000


def rendezvous(member: str, topic: str, partition: int) -> int:
    """The rank of `member` for a copy of (topic, partition): higher keeps it."""
    digest = hashlib.blake2b(f"{member}\x00{topic}\x00{partition}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big")


def standby_partitions(routing: Routing, self_id: str,
                       wanted: dict[str, tuple[str, int]]) -> set[tuple[str, int]]:
    """The (topic, partition) copies `self_id` keeps: `wanted` maps each topic to (a relation
    read from it, standby replicas). Partitions this worker owns are not among them."""
    out: set[tuple[str, int]] = set()
    for topic, (relation, replicas) in wanted.items():
        st = routing.state(relation)
        if st is None or not st.partitions or replicas < 1:
            continue
        owners = routing.owners(relation)
        if not owners:  # the group has not assigned the topic yet: nothing to stand by for
            continue
        candidates = [m.id for m in routing.members.values() if relation in m.relations]
        for p in range(st.partitions):
            owner = owners.get(p)
            others = [c for c in candidates if owner is None or c != owner.id]
            ranked = sorted(others, key=lambda c: rendezvous(c, topic, p),  # noqa: B023
                            reverse=True)
            if self_id in ranked[:replicas] and (owner is None or owner.id != self_id):
                out.add((topic, p))
    return out


class Standby:
    """This worker's standby copies (see the module doc); used from the worker's thread."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.by_topic: dict[str, list[Relation]] = {}
        self.wanted: dict[str, tuple[str, int]] = {}
        for topic, rels in worker.grouped.by_topic.items():
            keep = [r for r in rels if r.spec.standby_replicas > 0]
            if keep:
                self.by_topic[topic] = keep
                self.wanted[topic] = (keep[0].spec.name,
                                      max(r.spec.standby_replicas for r in keep))
        self.source: Any = None
        self.failed: set[tuple[str, int]] = set()
        self._synced = -1e9

    @property
    def partitions(self) -> set[tuple[str, int]]:
        return set(self.source.assigned) if self.source is not None else set()

    def start_offset(self, topic: str, partition: int) -> int | None:
        offs = [r.next_offsets.get(partition) for r in self.by_topic.get(topic, [])]
        return None if not offs or any(o is None for o in offs) else \
            min(o for o in offs if o is not None)

    def sync(self, routing: Routing, self_id: str, owned: set[tuple[str, int]]) -> bool:
        """Follow the routing table (at most every SYNC_INTERVAL): True if the set changed."""
        now = time.monotonic()
        if now - self._synced < SYNC_INTERVAL:
            return False
        self._synced = now
        want = standby_partitions(routing, self_id, self.wanted) - owned - self.failed
        if want == self.partitions:
            return False
        if self.source is None:
            from connectors.kafka import StandbySource  # noqa: PLC0415

            self.source = StandbySource(self.worker.catalog.kafka_config, self.start_offset)
        for topic in {t for t, _ in want - self.partitions}:
            for rel in self.by_topic[topic]:  # never answered as current
                rel.writer.set_revoked(sorted(p for t, p in want if t == topic), True)
        log.info("cluster: standby partitions now %s", sorted(want))
        self.source.set_partitions(want)
        return True

    def drop(self, pairs: list[tuple[str, int]]) -> None:
        """The group gave these to this worker: the group consumer reads them from now."""
        if self.source is not None and set(pairs) & self.partitions:
            self.source.set_partitions(self.partitions - set(pairs))

    def poll(self) -> int:
        """Apply what the standby consumer has (without waiting); records applied."""
        if self.source is None or not self.source.assigned:
            return 0

        msgs, ends = self.source.poll(BATCH, 0)
        applied = 0
        ends_of = split_ends(ends)
        for topic, parts in split_by_partition(msgs, ends_of).items():
            for rel in self.by_topic.get(topic, ()):
                try:
                    outcomes = rel.apply(parts, CountOnly(), ends_of.get(topic))
                except MaterializerError as e:  # read these again from the stored offsets
                    log.warning("cluster: standby copy of %s failed, reading it again: %s",
                                rel.spec.name, e)
                    self.source.set_partitions(self.partitions - {(topic, p) for p in parts})
                    self._synced = -1e9
                    continue
                for p, out in outcomes.items():
                    applied += out.applied
                    if out.fatal is not None:
                        self.failed.add((topic, p))
                        self.source.set_partitions(self.partitions - {(topic, p)})
                        log.warning("cluster: standby copy of %s partition %d stops at offset "
                                    "%d (%s); the owner's policy decides about that record",
                                    rel.spec.name, p, out.fatal.offset, out.fatal.message)
        return applied

    def progress(self) -> dict[tuple[str, int], tuple[int, int | None]]:
        """(relation, partition) -> (next offset, lag) of each standby partition."""
        out: dict[tuple[str, int], tuple[int, int | None]] = {}
        for topic, p in self.partitions:
            end = self.source.end_offset(topic, p)
            for rel in self.by_topic.get(topic, ()):
                nxt = rel.next_offsets.get(p, 0)
                out[(rel.spec.name, p)] = (nxt, lag(end, nxt))
        return out

    def close(self) -> None:
        if self.source is not None:
            self.source.close()
            self.source = None

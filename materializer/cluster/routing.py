"""The routing table: which live member owns (and keeps standby copies of) each partition.

Built from the members' records (`record.Member`) as a worker last read them from the
membership topic. Guarantees:
- A member last heard from longer ago than the timeout is not in the table (the worker
  building the table always counts itself as live). "Heard" is by the building worker's
  own clock where it heard the member itself (`Member.heard_at`, set by `membership`):
  a member whose clock runs behind is not dropped while it publishes, one whose clock runs
  ahead is dropped a timeout after it fell silent, not later. Only records never heard
  live (read back from the topic at start) are aged by the member's own clock.
- Each partition has at most one owner. When two live members claim one (a rebalance in
  flight, or a member that died holding it), the claim of the newer group generation
  wins, then the newer assignment; so a dead member's stale claim loses to the member the
  group gave the partition to.
- Nothing here trusts a claim for correctness: a worker answering a forwarded lookup says
  which partitions it read (see `materializer.cluster.router`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from materializer.cluster.record import Member, RelationState


class Routing:
    """Owners and standbys per relation and partition, from the live members' records."""

    def __init__(self, members: Iterable[Member], self_id: str | None, now_ms: int,
                 timeout_ms: int) -> None:
        self.self_id = self_id
        self.now_ms = now_ms
        self.timeout_ms = timeout_ms
        self.members: dict[str, Member] = {}
        self.expired: dict[str, Member] = {}
        for m in members:
            live = m.id == self_id or now_ms - m.last_heard <= timeout_ms
            (self.members if live else self.expired)[m.id] = m
        self._owners: dict[str, dict[int, Member]] = {}

    @property
    def me(self) -> Member | None:
        return None if self.self_id is None else self.members.get(self.self_id)

    def owners(self, relation: str) -> dict[int, Member]:
        """Partition -> its owner, for the partitions some live member owns."""
        got = self._owners.get(relation)
        if got is not None:
            return got
        out: dict[int, Member] = {}
        for m in sorted(self.members.values(), key=_claim_order):
            state = m.relations.get(relation)
            for p in state.assigned if state is not None else ():
                out[p] = m  # later (newer) claims replace earlier ones
        self._owners[relation] = out
        return out

    def owner(self, relation: str, partition: int) -> Member | None:
        return self.owners(relation).get(partition)

    def owned_by(self, relation: str) -> dict[str, set[int]]:
        """Member id -> the partitions of `relation` it owns."""
        out: dict[str, set[int]] = {}
        for p, m in self.owners(relation).items():
            out.setdefault(m.id, set()).add(p)
        return out

    def standbys(self, relation: str, partition: int) -> list[Member]:
        """Live members keeping a standby copy of the partition, freshest first."""
        found = [m for m in self.members.values()
                 if partition in getattr(m.relations.get(relation), "standby", ())]
        return sorted(found, key=lambda m: _lag(m, relation, partition))

    def state(self, relation: str) -> RelationState | None:
        """How producers partition `relation` and its partition count, as the members say
        (the largest count any live member reported)."""
        states = [m.relations[relation] for m in self.members.values()
                  if relation in m.relations]
        if not states:
            return None
        counts = [s.partitions for s in states if s.partitions]
        best = states[0]
        return RelationState(best.topic, max(counts) if counts else None,
                             partitioner=best.partitioner, key_format=best.key_format,
                             exact_keys=best.exact_keys, replicated=best.replicated)

    def relations(self) -> list[str]:
        return sorted({n for m in self.members.values() for n in m.relations})

    def describe(self) -> dict[str, Any]:
        """What `GET /cluster` answers: members (live and expired) and, per relation,
        partition count, owners and standbys."""
        rels: dict[str, Any] = {}
        for name in self.relations():
            st = self.state(name)
            assert st is not None
            owners = self.owners(name)
            n = st.partitions or (max(owners) + 1 if owners else 0)
            rels[name] = {
                "topic": st.topic, "partitions": st.partitions, "partitioner": st.partitioner,
                "key_format": st.key_format, "exact_keys": st.exact_keys,
                "replicated": st.replicated,
                "owners": {str(p): owners[p].id if p in owners else None for p in range(n)},
                "standbys": {str(p): [m.id for m in self.standbys(name, p)] for p in range(n)},
            }
        return {"self": self.self_id, "timeout_ms": self.timeout_ms,
                "members": [self._member_json(m, True) for m in
                            sorted(self.members.values(), key=lambda m: m.id)]
                + [self._member_json(m, False) for m in
                   sorted(self.expired.values(), key=lambda m: m.id)],
                "relations": rels}

    def _member_json(self, m: Member, live: bool) -> dict[str, Any]:
        return {**m.to_json(), "live": live,
                "heartbeat_age_s": round(max(0, self.now_ms - m.last_heard) / 1000, 3)}


def _claim_order(m: Member) -> tuple[int, int, str]:
    """Older claims first: by group generation, then by when the assignment changed, read
    on this worker's clock (the member's `assigned_at` moved by how far its clock was from
    this one's when its last record was heard), so a claim from a machine whose clock runs
    ahead does not beat a newer assignment of the same generation."""
    return (m.generation if m.generation is not None else -1,
            m.assigned_at + (m.last_heard - m.heartbeat_at), m.id)


def _lag(m: Member, relation: str, partition: int) -> float:
    lag = m.relations[relation].lag.get(partition)
    return float("inf") if lag is None else lag

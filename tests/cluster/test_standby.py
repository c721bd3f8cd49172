"""Standby placement (rendezvous hashing over the routing table) and partition copies,
without a broker. (Failover on a real cluster: tests/cluster/test_cluster.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_standby_partitions_follow_rendezvous_hashing() -> None:
    from materializer.cluster.record import Member, RelationState
    from materializer.cluster.routing import Routing
    from materializer.cluster.standby import standby_partitions

    def m(i: str, owned: tuple[int, ...]) -> Member:
        return Member(i, None, 1, 0, 0, relations={"s.t": RelationState("t", 6, owned)})
    members = [m("a", (0, 1)), m("b", (2, 3)), m("c", (4, 5))]
    r = Routing(members, "a", 0, 1000)
    want = {"t": ("s.t", 1)}
    got = {x.id: standby_partitions(Routing(members, x.id, 0, 1000), x.id, want)
           for x in members}
    # each partition has exactly one standby, never its owner
    for p in range(6):
        keepers = [i for i, parts in got.items() if ("t", p) in parts]
        assert len(keepers) == 1 and r.owner("s.t", p).id not in keepers  # type: ignore[union-attr]
    # two copies: both other members keep every partition
    assert all(len(parts) == 4 for parts in (
        standby_partitions(Routing(members, x.id, 0, 1000), x.id, {"t": ("s.t", 2)})
        for x in members))
    # a member leaving moves only the copies it kept
    two = standby_partitions(Routing(members[:2], "a", 0, 1000), "a", want)
    assert got["a"] - {("t", 4), ("t", 5)} <= two
    assert json.dumps(sorted(got["a"]))  # stable, serializable


def test_a_partition_copy_replaces_the_partition_whole(tmp_path: Path) -> None:
    from materializer.cluster.handover import copy_body, parse_copy
    from materializer.store import Store
    from tests.support.api import USERS, SpecWriter, user_row

    standby, taker = SpecWriter(str(tmp_path / "s"), USERS), SpecWriter(str(tmp_path / "t"),
                                                                         USERS)
    standby.write([(i, user_row(i, 1)) for i in range(40)], partition=2)
    standby.write([(i, None) for i in range(0, 40, 4)], partition=2)  # deletes
    standby.write([(99, user_row(99))], partition=3)
    taker.write([(i, user_row(i, 0)) for i in range(100, 105)], partition=2)  # older state
    taker.writer.set_revoked([2], True)
    with Store.open(tmp_path / "s") as s:
        body = copy_body(s.table("users"), "public.users", 2)
    head, pairs = parse_copy(body)
    assert head["next_offset"] == 50 and head["rows"] == 30
    assert head["counters"] == {"applied": 50}
    taker.writer.replace_partition(2, list(pairs), head["next_offset"], head["counters"])
    taker.writer.set_revoked([2], False)
    with Store.open(tmp_path / "t") as t:
        users = t.table("users")
        got = {r["id"]: r["version"] for r in users.scan()}
        assert got == {i: 1 for i in range(40) if i % 4}  # the copy only; 100..104 are gone
        stats = {x["partition"]: x for x in users.partition_stats()}
        assert stats[2]["next_offset"] == 50 and stats[2]["counters"] == {"applied": 50}
    for bad in (b"", b"{}\n", body[:-3]):
        with pytest.raises(ValueError):
            h, ps = parse_copy(bad)
            list(ps)


def test_a_partition_marked_revoked_before_it_is_held_counts_as_revoked(tmp_path: Path
                                                                         ) -> None:
    """A new owner marks a partition revoked before its store holds any of it (a copy is on
    its way): its answers must not count that partition as covered (an empty "absent")."""
    from materializer.store import Store
    from tests.support.api import USERS, SpecWriter, user_row

    w = SpecWriter(str(tmp_path), USERS)
    w.write([(1, user_row(1))], partition=0)
    w.writer.set_revoked([4], True)  # partition 4: nothing of it here yet
    with Store.open(tmp_path) as s:
        assert s.table("users").revoked_partitions() == frozenset({4})

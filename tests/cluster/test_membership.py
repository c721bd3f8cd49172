"""Membership records and the routing table built from them, without a broker: records
round-trip and bad ones are refused, silent members expire, newer claims win. (Members
publishing and reading each other, expiring and leaving on a real cluster:
tests/cluster/test_cluster.py.)"""

from __future__ import annotations

import pytest

from materializer.cluster.membership import members_topic
from materializer.cluster.record import Member, RelationState, decode, encode
from materializer.cluster.routing import Routing


def member(id_: str, assigned: tuple[int, ...], *, gen: int | None = 1, at: int = 1000,
           beat: int = 10_000, standby: tuple[int, ...] = (),
           lag: dict[int, int | None] | None = None) -> Member:
    return Member(id_, f"http://{id_}:80", gen, at, beat, relations={
        "s.t": RelationState("t", 6, assigned, standby, lag=lag or {})})


def test_records_round_trip_and_bad_ones_are_refused() -> None:
    m = member("a", (2, 0, 2), standby=(5,), lag={5: 3, 0: None})
    back = decode(encode(m))
    assert back.relations["s.t"].assigned == (0, 2) and back.relations["s.t"].lag == \
        {0: None, 5: 3}
    assert back == decode(encode(back))
    for bad, why in ((b"{", "not JSON"), (b"[]", "not a JSON object"),
                     (b'{"v": 2, "id": "a"}', "version 2"),
                     (b'{"v": 1, "id": "a", "assigned_at": "x", "heartbeat_at": 1}',
                      "assigned_at is not a whole number"),
                     (b'{"v": 1, "id": "a", "assigned_at": 1, "heartbeat_at": 1, '
                      b'"relations": {"r": {"topic": "t", "assigned": [true]}}}',
                      "partition is not a whole number")):
        with pytest.raises(ValueError, match=why):
            decode(bad)


def test_routing_expires_silent_members_and_newer_claims_win() -> None:
    a = member("a", (0, 1, 2), gen=1, at=1000, beat=9_000)
    b = member("b", (2, 3), gen=2, at=2000, beat=9_500, standby=(0,), lag={0: 7})
    c = member("c", (4, 5), gen=2, at=2000, beat=1_000, standby=(0,), lag={0: 2})  # silent
    r = Routing([a, b, c], "a", now_ms=10_000, timeout_ms=4000)
    assert set(r.members) == {"a", "b"} and set(r.expired) == {"c"}
    owners = {p: m.id for p, m in r.owners("s.t").items()}
    assert owners == {0: "a", 1: "a", 2: "b", 3: "b"}  # b's newer generation wins 2
    assert r.owned_by("s.t") == {"a": {0, 1}, "b": {2, 3}}
    assert [m.id for m in r.standbys("s.t", 0)] == ["b"]  # c expired
    # the worker itself is always live, however old its record
    assert set(Routing([a, b], "a", 100_000, 4000).members) == {"a"}
    d = r.describe()
    assert d["relations"]["s.t"]["owners"] == {"0": "a", "1": "a", "2": "b", "3": "b",
                                               "4": None, "5": None}
    assert [(x["id"], x["live"]) for x in d["members"]] == \
        [("a", True), ("b", True), ("c", False)]
    # a dead member's claim loses to the same generation's newer assignment
    late = member("d", (0,), gen=1, at=5000, beat=9_900)
    assert Routing([a, late], None, 10_000, 4000).owner("s.t", 0).id == "d"  # type: ignore[union-attr]


def test_members_topic_is_named_after_the_group() -> None:
    assert members_topic("shop-materializer") == "shop-materializer.members"
    odd = members_topic("shop/materializer ü")
    assert odd.startswith("shop_materializer__-") and odd.endswith(".members")
    assert odd != members_topic("shop_materializer ü")

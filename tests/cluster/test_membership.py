"""Membership through Kafka: each worker publishes its record (id, API URL, partitions,
generation) to `<group>.members`, every worker reads them into a routing table, silent
members expire, a clean stop leaves at once; `GET /cluster` and `materializer status`
show it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from materializer.cluster.membership import members_topic
from materializer.cluster.record import Member, RelationState, decode, encode
from materializer.cluster.routing import Routing
from materializer.devbroker import DevBroker
from tests.cluster.helpers import cluster_yaml, get, start_node, wait_serving
from tests.support.workers import USERS_TABLE, run_cli, unique, wait_until


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


def _live(node_url: str) -> dict[str, list[int]]:
    c = get(f"{node_url}/cluster").json()
    return {m["id"]: m["relations"]["shop.users"]["assigned"] for m in c["members"]
            if m["live"]}


@pytest.mark.integration
def test_members_publish_read_expire_and_leave(session_broker: DevBroker,
                                               tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("users"), partitions=4)
    group = unique("g")
    cfg = tmp_path / "cluster.yaml"
    cfg.write_text(cluster_yaml(session_broker, group, USERS_TABLE.format(topic=topic)))
    nodes = [start_node(cfg, name) for name in ("a", "b", "c")]
    for n in nodes:
        wait_serving(n)

    def split() -> bool:
        views = [_live(n.url) for n in nodes]
        parts = sorted(p for ps in views[0].values() for p in ps)
        return all(v == views[0] for v in views) and len(views[0]) == 3 \
            and parts == [0, 1, 2, 3]
    wait_until(split, 60, "every worker to see the same three members splitting 4 partitions")
    view = get(f"{nodes[0].url}/cluster").json()
    assert view["self"] == "a" and view["standalone"] is False
    by_id = {m["id"]: m for m in view["members"]}
    assert by_id["b"]["url"] == nodes[1].url and by_id["c"]["generation"] is not None
    assert view["relations"]["shop.users"]["partitions"] == 4
    assert view["relations"]["shop.users"]["exact_keys"] is True

    # materializer status: members from the topic itself, and owners per partition
    status = run_cli("status", str(cfg), env={"STORE": str(nodes[0].store)})
    assert status.returncode == 0, status.stderr
    assert f"cluster: group {group}, topic {group}.members, 3 live member(s)" in status.stdout
    for n in nodes:
        assert f"{n.name}       {n.url}" in status.stdout
    rows = [json.loads(line) for line in run_cli(
        "status", str(cfg), "--json", env={"STORE": str(nodes[0].store)}).stdout.splitlines()]
    assert {r["owner"] for r in rows} == {"a", "b", "c"}

    # a clean stop leaves at once (a tombstone), well before the member timeout
    assert nodes[2].stop() == 0, nodes[2].tail()
    wait_until(lambda: set(_live(nodes[0].url)) == {"a", "b"}, 2,
               "a to drop c right after it stopped")
    # a killed worker is dropped once silent for cluster.member_timeout_ms (4 s here)
    nodes[1].kill()
    wait_until(lambda: set(_live(nodes[0].url)) == {"a"}, 10, "a to expire b")
    expired = [m for m in get(f"{nodes[0].url}/cluster").json()["members"] if not m["live"]]
    assert [m["id"] for m in expired] == ["b"] and expired[0]["heartbeat_age_s"] >= 4
    assert nodes[0].stop() == 0, nodes[0].tail()

"""Any worker answers any key: three workers in one group, a 6-partition topic produced
with murmur2 and another with librdkafka's consistent_random, and a stream. Every key
asked of every worker equals the fold of its topic (point, batch), paging from any worker
returns every row once in key order, stream events come from the key's owner, and a
forwarded request is never forwarded again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.kafka import produce_records
from materializer.devbroker import DevBroker
from tests.cluster.helpers import (
    TABLES,
    Node,
    carts_changelog,
    clicks_log,
    cluster_yaml,
    start_node,
    users_changelog,
    users_table_fold,
    wait_serving,
)
from tests.support.workers import unique, wait_until

pytestmark = pytest.mark.integration

N_USERS, N_CARTS = 240, 120


class Cluster:
    def __init__(self, nodes: list[Node], users: dict[int, str | None],
                 carts: dict[str, int | None], cfg: Path) -> None:
        self.nodes, self.users, self.carts, self.cfg = nodes, users, carts, cfg
        self.http = httpx.Client(timeout=10)

    def get(self, node: Node, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(node.url + path, **kw)


@pytest.fixture(scope="module")
def cluster(session_broker: DevBroker, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("routing")
    conf = session_broker.kafka_config()
    users, carts, clicks = (session_broker.create_topic(unique(t), partitions=6)
                            for t in ("users", "carts", "clicks"))
    u_records, u_fold = users_changelog(N_USERS)
    c_records, c_fold = carts_changelog(N_CARTS)
    produce_records(conf, users, u_records)
    produce_records(conf, carts, c_records, partitioner="consistent_random")
    produce_records(conf, clicks, clicks_log(12, 3))
    cfg = tmp / "cluster.yaml"
    cfg.write_text(cluster_yaml(session_broker, unique("g"),
                                TABLES.format(users=users, carts=carts, clicks=clicks)))
    nodes = [start_node(cfg, "a", flags=False, register=False),
             start_node(cfg, "b", register=False), start_node(cfg, "c", register=False)]
    c = Cluster(nodes, u_fold, c_fold, cfg)
    try:
        for n in nodes:
            wait_serving(n)

        def settled() -> bool:  # three members own two partitions each, everywhere
            for n in nodes:
                view = c.get(n, "/cluster").json()
                owners = view["relations"].get("shop.users", {}).get("owners", {})
                if len(owners) != 6 or sorted(set(owners.values()), key=str) != ["a", "b", "c"]:
                    return False
            return True
        wait_until(settled, 90, "three workers to split every topic")
        wait_until(lambda: users_table_fold(c, nodes[0]) == u_fold, 60,
                   "the users table to equal the fold")
        yield c
    finally:
        c.http.close()
        for n in nodes:
            if n.proc.poll() is None:
                n.proc.kill()
                n.proc.wait(10)


def test_every_key_from_every_worker_equals_the_fold(cluster: Cluster) -> None:
    # point lookups of a quarter of the keys (every worker answers every key in the batch
    # test below): local hits, forwarded hits, and misses confirmed with every owner
    for node in cluster.nodes:
        for i, name in list(cluster.users.items())[::4]:
            r = cluster.get(node, f"/tables/shop.users/rows/{i}")
            if name is None:
                assert r.status_code == 404, (node.name, i, r.text)
            else:
                assert (r.status_code, r.json()) == (200, {"id": i, "name": name}), node.name
        for cart, items in list(cluster.carts.items())[::4]:
            r = cluster.get(node, f"/tables/shop.carts/rows/{cart}")
            if items is None:
                assert r.status_code == 404, (node.name, cart, r.text)
            else:
                assert r.json() == {"cart": cart, "items": items}, node.name
        assert cluster.get(node, "/tables/shop.users/rows/999999").status_code == 404


def test_batch_lookups_are_split_by_owner_and_merged_in_order(cluster: Cluster) -> None:
    keys = [[i] for i in reversed(range(-3, N_USERS + 3))]
    want = [None if cluster.users.get(k[0]) is None else
            {"id": k[0], "name": cluster.users[k[0]]} for k in keys]
    carts = sorted(cluster.carts, reverse=True) + ["nope"]
    want_carts = [None if cluster.carts.get(c) is None else
                  {"cart": c, "items": cluster.carts[c]} for c in carts]
    for node in cluster.nodes:
        r = cluster.http.post(f"{node.url}/tables/shop.users/lookup", json={"keys": keys})
        assert r.status_code == 200 and r.json()["rows"] == want, node.name
        r = cluster.http.post(f"{node.url}/tables/shop.carts/lookup", json={"keys": carts})
        assert r.json()["rows"] == want_carts, node.name
    bad = cluster.http.post(f"{cluster.nodes[0].url}/tables/shop.users/lookup",
                            json={"keys": [[1], ["x"]]})
    assert bad.status_code == 400


def test_paging_from_any_worker_returns_every_row_once_in_key_order(cluster: Cluster) -> None:
    want = sorted(i for i, v in cluster.users.items() if v is not None)
    for node in cluster.nodes:
        seen: list[int] = []
        after: str | None = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 17}
            if after is not None:
                params["after"] = after
            page = cluster.get(node, "/tables/shop.users/rows", params=params).json()
            seen += [r["id"] for r in page["rows"]]
            pages += 1
            after = page["next"]
            if after is None:
                break
        assert seen == want and pages == -(-len(want) // 17), node.name
    # a cursor from one worker is good at another
    first = cluster.get(cluster.nodes[0], "/tables/shop.carts/rows",
                        params={"limit": 5}).json()
    rest = cluster.get(cluster.nodes[2], "/tables/shop.carts/rows",
                       params={"limit": 1000, "after": first["next"]}).json()
    names = [r["cart"] for r in first["rows"] + rest["rows"]]
    assert names == sorted(c for c, v in cluster.carts.items() if v is not None)
    assert rest["next"] is None


def test_stream_events_from_any_worker(cluster: Cluster) -> None:
    for node in cluster.nodes:
        for u in (0, 5, 11):
            r = cluster.get(node, f"/streams/shop.clicks/keys/p{u}/events", params={"limit": 2})
            assert r.json() == {"events": [{"user": f"p{u}", "url": f"/{u}/2"},
                                           {"user": f"p{u}", "url": f"/{u}/1"}]}, node.name
        assert cluster.get(node, "/streams/shop.clicks/keys/nobody/events").json() == \
            {"events": []}


def test_a_forwarded_request_is_answered_locally_and_never_forwarded(cluster: Cluster) -> None:
    a = cluster.nodes[0]
    view = cluster.get(a, "/cluster").json()
    mine = {int(p) for p, o in view["relations"]["shop.users"]["owners"].items() if o == "a"}
    keys = [[i] for i in cluster.users if cluster.users[i] is not None]
    r = cluster.http.post(f"{a.url}/tables/shop.users/lookup", json={"keys": keys},
                          headers={"x-materializer-forwarded": "test"})
    assert r.status_code == 200
    assert set(map(int, r.headers["x-materializer-partitions"].split(","))) == mine
    rows = r.json()["rows"]
    assert 0 < sum(row is not None for row in rows) < len(keys)  # only a's partitions
    plain = cluster.http.post(f"{a.url}/tables/shop.users/lookup", json={"keys": keys})
    assert all(row is not None for row in plain.json()["rows"])
    page = cluster.get(a, "/tables/shop.users/rows", params={"limit": 1000},
                       headers={"x-materializer-forwarded": "test"}).json()
    assert len(page["keys"]) == len(page["rows"]) < len(keys)
    # the loop guard holds at the receiving end, too: json mentions who answered
    assert r.headers["x-materializer-member"] == "a"
    assert json.loads(r.text)["rows"] == rows


def _forwarded(cluster: Cluster) -> int:
    total = 0
    for node in cluster.nodes:
        for line in cluster.get(node, "/metrics").text.splitlines():
            if line.startswith("materializer_forwarded_total{"):
                total += int(float(line.rsplit(" ", 1)[1]))
    return total


def test_the_client_routes_by_the_membership_table(cluster: Cluster) -> None:
    from materializer import Client

    present = [k for k, v in cluster.users.items() if v is not None]
    for node in cluster.nodes:
        with Client(node.url) as client:
            users = client.table("shop.users")
            keys = list(cluster.users)
            got = users.get_many(keys)
            assert {k: r and r["name"] for k, r in zip(keys, got, strict=True)} == cluster.users
            assert users.get(present[3]) == {"id": present[3],
                                             "name": cluster.users[present[3]]}
            assert users.get(0) is None  # deleted
            assert [r["id"] for r in users.scan()] == present
            assert [r["id"] for r in users.scan(limit=5)] == present[:5]
            carts = client.table("carts")  # unqualified, as Store takes it
            names = sorted(cluster.carts)
            assert [r and r["items"] for r in carts.get_many(names)] == \
                [cluster.carts[n] for n in names]
            assert client.stream("shop.clicks").events("p3", limit=1) == \
                [{"user": "p3", "url": "/3/2"}]
    # one hop: the client sends each key to its owner, so hits are never forwarded
    before = _forwarded(cluster)
    assert before > 0  # the tests before forwarded plenty
    with Client(cluster.nodes[1].url) as client:
        users = client.table("shop.users")
        for k in present[::3]:
            assert users.get(k) == {"id": k, "name": cluster.users[k]}
        assert all(r is not None for r in users.get_many(present))
    assert _forwarded(cluster) == before


def test_cli_get_and_scan_through_the_cluster(cluster: Cluster) -> None:
    from tests.support.workers import run_cli

    present = [k for k, v in cluster.users.items() if v is not None]
    url = cluster.nodes[2].url
    out = run_cli("get", str(cluster.cfg), "shop.users", str(present[-1]), "--url", url)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"id": present[-1], "name": cluster.users[present[-1]]}
    missing = run_cli("get", str(cluster.cfg), "shop.users", "0", "--url", url)
    assert missing.returncode == 1 and "no row for key [0]" in missing.stderr
    scan = run_cli("scan", str(cluster.cfg), "shop.users", "--url", url)
    assert [json.loads(line)["id"] for line in scan.stdout.splitlines()] == present


def test_metrics_count_members_and_forwarded_lookups(cluster: Cluster) -> None:
    text = cluster.get(cluster.nodes[0], "/metrics").text
    assert 'materializer_cluster_members{state="live"} 3' in text
    assert 'materializer_cluster_partitions{relation="shop.users",role="owned"} 2' in text
    assert "materializer_cluster_generation " in text
    assert 'materializer_forwarded_total{member="b",request="lookup",outcome="ok"}' in text
    assert 'materializer_forward_seconds_count{member="c"}' in text
    assert "materializer_rebalances_total" in text

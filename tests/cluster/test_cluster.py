"""A real cluster: three workers (`materializer run`, each with its API process) in one
group on the embedded broker, from one declaration file (worker a configured through the
environment, b and c through flags), `standby_replicas: 1`; a 6-partition topic produced with
murmur2, another with librdkafka's consistent_random, and a stream.

One test runs the phases below in order on the one cluster (starting one costs seconds):
settings and membership, then routing (point, batch, paging, streams, loop guard, client,
CLI, metrics), then failover (`kill -9` of c under 8 clients, stale reads, expiry, takeover
from the standby copies, c restarted), then scaling down to one worker and back up while
records are produced."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connectors.producer import produce_records
from materializer import Client
from materializer.cluster.partitioning import murmur2_partition
from materializer.devbroker import DevBroker
from materializer.store import Store
from tests.cluster.helpers import (
    Node,
    start_node,
    users_table_fold,
    wait_serving,
)
from tests.cluster.running import MEMBER_TIMEOUT, N_USERS, Cluster, running_cluster
from tests.support.workers import run_cli, wait_until

# ----------------------------------------------------------------- settings, membership


def each_worker_runs_the_shared_file_with_its_own_settings(cluster: Cluster) -> None:
    for node in cluster.nodes:  # a through STORE/LISTEN, b and c through --store/--listen
        status = json.loads((node.store / "worker.json").read_text())
        assert status["pid"] == node.proc.pid
    assert not (cluster.cfg.parent / "data").exists()  # nobody used the file's default
    out = run_cli("check", str(cluster.cfg), env={"STORE": "/srv/x", "LISTEN": "127.0.0.1:9",
                                                  "WORKER_ID": "w9"})
    assert out.returncode == 0, out.stderr
    assert "store: /srv/x" in out.stdout and "cluster: worker_id w9" in out.stdout
    assert "partitioner: consistent_random, standby_replicas: 1" in out.stdout
    bad = run_cli("run", str(cluster.cfg), "--listen", "nowhere")
    assert bad.returncode == 2 and "--listen 'nowhere' is not host:port" in bad.stderr


def members_publish_and_read_each_other(cluster: Cluster) -> None:
    a, b, c = cluster.nodes
    views = [cluster.view(n) for n in (a, b, c)]
    assert [v["self"] for v in views] == ["a", "b", "c"]
    assert all(v["relations"]["shop.users"]["owners"] == views[0]["relations"]["shop.users"]
               ["owners"] for v in views)
    by_id = {m["id"]: m for m in views[0]["members"]}
    assert by_id["b"]["url"] == b.url and by_id["c"]["generation"] is not None
    assert views[0]["relations"]["shop.users"]["partitions"] == 6
    assert views[0]["relations"]["shop.carts"]["partitioner"] == "consistent_random"
    # materializer status: the members from the membership topic itself, owners per row
    env = {"STORE": str(a.store)}
    status = run_cli("status", str(cluster.cfg), env=env)
    assert status.returncode == 0, status.stderr
    assert "topic " + status.stdout.split("topic ", 1)[1].split(",")[0] in status.stdout
    assert "3 live member(s)" in status.stdout
    for n in (a, b, c):
        assert f"{n.name}       {n.url}" in status.stdout

    def users_rows_owned_by_all() -> list[dict[str, Any]] | None:
        rows = [json.loads(line) for line in run_cli("status", str(cluster.cfg), "--json",
                                                     env=env).stdout.splitlines()]
        users = [r for r in rows if r["relation"] == "shop.users"]
        return users if {r["owner"] for r in users} == {"a", "b", "c"} else None

    # the members' claims as the membership topic has them (a claim of a rebalance under
    # way may still be the newest: asked again until every member's claims arrived)
    rows = wait_until(users_rows_owned_by_all, 30, "status showing every member's partitions")
    assert all(len(r["standbys"]) == 1 and r["standbys"][0] != r["owner"] for r in rows)


# --------------------------------------------------------------------------- routing


def every_key_from_every_worker_equals_the_fold(cluster: Cluster) -> None:
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


def batch_lookups_are_split_by_owner_and_merged_in_order(cluster: Cluster) -> None:
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


def paging_from_any_worker_returns_every_row_once_in_key_order(cluster: Cluster) -> None:
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


def stream_events_from_any_worker(cluster: Cluster) -> None:
    for node in cluster.nodes:
        for u in (0, 5, 11):
            r = cluster.get(node, f"/streams/shop.clicks/keys/p{u}/events", params={"limit": 2})
            assert r.json() == {"events": [{"user": f"p{u}", "url": f"/{u}/2"},
                                           {"user": f"p{u}", "url": f"/{u}/1"}]}, node.name
        assert cluster.get(node, "/streams/shop.clicks/keys/nobody/events").json() == \
            {"events": []}


def a_forwarded_request_is_answered_locally_and_never_forwarded(cluster: Cluster) -> None:
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
    assert r.headers["x-materializer-member"] == "a"
    assert json.loads(r.text)["rows"] == rows
    # a point lookup forwarded to a: its own partitions only, a miss saying what it covered
    theirs = next(k[0] for k in keys if _partition(k[0]) not in mine)
    g = cluster.get(a, f"/tables/shop.users/rows/{theirs}",
                    headers={"x-materializer-forwarded": "test"})
    assert g.status_code == 404
    assert set(map(int, g.headers["x-materializer-partitions"].split(","))) == mine
    assert cluster.get(a, f"/tables/shop.users/rows/{theirs}").status_code == 200


def _forwarded(cluster: Cluster) -> int:
    total = 0
    for node in cluster.nodes:
        for line in cluster.get(node, "/metrics").text.splitlines():
            if line.startswith("materializer_forwarded_total{"):
                total += int(float(line.rsplit(" ", 1)[1]))
    return total


def the_client_routes_by_the_membership_table(cluster: Cluster) -> None:
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


def cli_get_and_scan_through_the_cluster(cluster: Cluster) -> None:
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


def metrics_count_members_and_forwarded_lookups(cluster: Cluster) -> None:
    text = cluster.get(cluster.nodes[0], "/metrics").text
    owned = sum(o == "a" for o in cluster.owners(cluster.nodes[0]).values())
    assert 'materializer_cluster_members{state="live"} 3' in text
    assert f'materializer_cluster_partitions{{relation="shop.users",role="owned"}} {owned}' \
        in text
    assert 'materializer_cluster_partitions{relation="shop.users",role="standby"}' in text
    assert "materializer_cluster_generation " in text
    assert 'materializer_forwarded_total{member="b",request="lookup",outcome="ok"}' in text
    assert 'materializer_forward_seconds_count{member="c"}' in text
    assert "materializer_rebalances_total" in text


# -------------------------------------------------------------------------- failover


def _partition(key: int) -> int:
    return murmur2_partition(key.to_bytes(8, "big", signed=True), 6)


def kill_9_fails_over_to_standbys_without_a_wrong_answer(cluster: Cluster) -> None:
    a, b, c = cluster.nodes
    wait_until(lambda: cluster.warm(a, {"a", "b", "c"}), 60, "every partition warm")
    view = cluster.view(a)
    lost = sorted(p for p, o in cluster.owners(a).items() if o == "c")
    copies = {p: view["relations"]["shop.users"]["standbys"][str(p)][0] for p in lost}
    fold = cluster.users
    present = [k for k, v in fold.items() if v is not None]
    absent = [k for k, v in fold.items() if v is None]

    # 8 clients look up keys until told to stop; every answer is checked against the fold
    stop = threading.Event()
    wrong: list[str] = []
    gaps: list[float] = []
    counts = [0] * 8

    def client(i: int) -> None:
        rng = random.Random(i)
        with Client((a, b)[i % 2].url, retry_for=60) as cl:
            users = cl.table("shop.users")
            last = time.monotonic()
            while not stop.is_set():
                k = rng.choice(present if rng.random() < 0.9 else absent)
                try:
                    row = users.get(k)
                except Exception as e:  # noqa: BLE001 - reported below
                    wrong.append(f"client {i}: {type(e).__name__}: {e}")
                    continue
                now = time.monotonic()
                gaps.append(now - last)
                last = now
                counts[i] += 1
                if (row and row["name"]) != fold[k]:
                    wrong.append(f"client {i}: key {k}: {row} != {fold[k]}")
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    wait_until(lambda: min(counts) > 3, 30, "every client answering")

    c.kill()
    killed = time.monotonic()
    # meanwhile no owner answers for c's partitions: 503 + Retry-After, or with ?stale=ok a
    # standby's copy and its lag (unless the group moved them already)
    key = next(k for k in present if _partition(k) in lost)
    r = cluster.get(a, f"/tables/shop.users/rows/{key}")
    if r.status_code == 503:
        assert r.headers["retry-after"] == "1" and "stale=ok" in r.json()["detail"]
        s = cluster.get(a, f"/tables/shop.users/rows/{key}?stale=ok")
        assert s.status_code == 200 and s.json() == {"id": key, "name": fold[key]}
        assert s.headers["x-materializer-standby-lag"] == "0"
    else:
        assert r.json() == {"id": key, "name": fold[key]}
    wait_until(lambda: set(cluster.owners(a).values()) == {"a", "b"}
               and set(cluster.owners(b).values()) == {"a", "b"}, 60, "c's partitions to move")
    moved = time.monotonic() - killed
    before = list(counts)
    wait_until(lambda: all(x > y for x, y in zip(counts, before, strict=True)), 20,
               "every client answering after the move")
    stop.set()
    for t in threads:
        t.join(70)
    longest = max(gaps)
    print(f"\nfailover: c's partitions {lost} moved after {moved:.1f} s; longest wait of "
          f"8 clients {longest:.1f} s over {sum(counts)} lookups")
    # how long the move took is measured by bench/cluster.py, not asserted here (a timed
    # assertion fails on a loaded machine): what must hold is that no answer was wrong and
    # every client answered again after the move (waited for above)
    assert not wrong, wrong[:5]

    # taken over from the standby copies at the offset they had applied (by the standby
    # itself, or by copying the standby's partition: its applied counter and next offset
    # come with it), or re-read when the taker's assignment came before the standby's
    # member record listed the copy (the members re-plan standbys as c leaves: timing):
    # either way each record is applied once in the taker's store
    owners = cluster.owners(a)
    for p in lost:
        taker = {"a": a, "b": b}[owners[p]]  # type: ignore[index]
        by = "this worker's" if owners[p] == copies[p] else f"{copies[p]}'s"
        copied = (f"shop.users partition {p} taken over from {by} standby copy at offset "
                  f"{cluster.ends[p]}") in taker.log.read_text()
        print(f"partition {p}: {'taken over from ' + by + ' copy' if copied else 're-read'}")
        with Store.open(taker.store) as store:
            stats = {s["partition"]: s for s in store.table("shop.users").partition_stats()}
        assert stats[p]["next_offset"] == cluster.ends[p]
        assert stats[p]["counters"]["applied"] == cluster.ends[p]

    # c, silent, expires from the routing table; restarted, it rejoins cleanly
    wait_until(lambda: "c" not in cluster.live(a), 2 * MEMBER_TIMEOUT, "c to expire")
    assert [m["live"] for m in cluster.view(a)["members"] if m["id"] == "c"] == [False]
    c2 = start_node(cluster.cfg, "c", register=False)
    cluster.nodes[2] = c2
    wait_serving(c2)
    wait_until(lambda: cluster.warm(c2, {"a", "b", "c"}) and cluster.settled(c2, {"a", "b", "c"}),
               90, "c to rejoin and own partitions again")
    assert users_table_fold(cluster, c2) == fold


def _answers(cluster: Cluster, node: Node, fold: dict[int, str | None]) -> dict[int, Any]:
    keys = [[k] for k in sorted(fold)]
    r = cluster.http.post(f"{node.url}/tables/shop.users/lookup", json={"keys": keys})
    if r.status_code != 200:
        return {}
    return {k[0]: row and row["name"] for k, row in zip(keys, r.json()["rows"], strict=True)}


def scaling_down_to_one_and_back_up_during_ingestion(cluster: Cluster) -> None:
    a, b, c = cluster.nodes
    fold: dict[int, str | None] = dict(cluster.users)
    done = threading.Event()
    failures: list[str] = []

    def produce() -> None:  # updates and new keys, a steady trickle until told to stop
        i = 0
        while not done.is_set():
            records = []
            for j in range(20):
                key = 1000 + (i * 20 + j) % 300
                fold[key] = f"s{key}-{i}"
                records.append((key.to_bytes(8, "big", signed=True),
                                json.dumps({"name": fold[key]}).encode()))
            try:
                produce_records(cluster.conf, cluster.users_topic, records)
            except Exception as e:  # noqa: BLE001 - reported below
                failures.append(str(e))
            i += 1
            done.wait(0.05)
    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    try:
        # down to one, a worker at a time (two members leaving the embedded broker's group
        # together were seen, about one run in three, to leave the survivor without their
        # partitions for over a minute; see the README's known limits): a clean stop leaves
        # the membership at once
        left = {"a", "b", "c"}
        for n in (b, c):
            wait_until(lambda: cluster.quiet(a, left), 60,  # noqa: B023 - called at once
                       "the group to be quiet")
            assert n.stop() == 0, n.tail()
            left = left - {n.name}
            wait_until(lambda: cluster.live(a) == left, 3,  # noqa: B023 - called at once
                       f"a to drop {n.name} at once")
        wait_until(lambda: set(cluster.owners(a).values()) == {"a"}, 60, "a to own all")
        cluster.nodes[1:] = [start_node(cluster.cfg, "b", register=False),
                             start_node(cluster.cfg, "c", register=False)]
        for n in cluster.nodes[1:]:
            wait_serving(n)
        wait_until(lambda: cluster.warm(a, {"a", "b", "c"})
                   and cluster.settled(a, {"a", "b", "c"}), 90, "three workers again")
    finally:
        done.set()
        producer.join(30)
    assert not failures, failures[:3]
    want = dict(sorted(fold.items()))
    for n in cluster.nodes:
        wait_until(lambda n=n: _answers(cluster, n, want) == want, 60,  # type: ignore[misc]
                   f"{n.name} to answer every key as the fold")
    for n in cluster.nodes:
        assert n.stop() == 0, n.tail()


PHASES: list[Callable[[Cluster], None]] = [
    each_worker_runs_the_shared_file_with_its_own_settings,
    members_publish_and_read_each_other,
    every_key_from_every_worker_equals_the_fold,
    batch_lookups_are_split_by_owner_and_merged_in_order,
    paging_from_any_worker_returns_every_row_once_in_key_order,
    stream_events_from_any_worker,
    a_forwarded_request_is_answered_locally_and_never_forwarded,
    the_client_routes_by_the_membership_table,
    cli_get_and_scan_through_the_cluster,
    metrics_count_members_and_forwarded_lookups,
    kill_9_fails_over_to_standbys_without_a_wrong_answer,
    scaling_down_to_one_and_back_up_during_ingestion,
]


@pytest.mark.integration
def test_a_cluster_of_three_workers(session_broker: DevBroker, tmp_path: Path) -> None:
    """The phases above, in order, on one cluster (one test, so that parallel test
    processes never split it)."""
    with running_cluster(session_broker, tmp_path) as cluster:
        for phase in PHASES:
            t0 = time.monotonic()
            phase(cluster)
            print(f"{phase.__name__}: {time.monotonic() - t0:.1f} s")

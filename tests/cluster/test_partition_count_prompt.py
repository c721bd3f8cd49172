"""A topic that appears after a worker started is routed within seconds, not at the next
30 s refresh of the partition counts (materializer.cluster.agent): a count the worker does
not know yet (the topic did not exist when it asked) is asked again soon.

- One worker creating the topic of a relation that declares `partitions` (its first count
  is asked before `run` creates the topic): a miss answers 404 and a scan 200 soon after
  the worker owns the partitions.
- Two workers, the topic created (and filled) by someone else after both started: misses
  and scans answer correctly at both soon after every row is served.

Until then (and always) every answer is the right one or 503: never a guess's 404."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from tests.cluster.helpers import Node, cluster_yaml, start_node, wait_serving
from tests.cluster.ownership import kb, row
from tests.support.workers import unique, wait_until

DEADLINE = 10.0  # well below the 30 s refresh of known counts
BODY = """\
tables:
  - name: late.users
    topic: {topic}
    columns: {{id: long, name: string}}
    primary_key: [id]
    key_format: long
{extra}"""
MISSING = 123_456  # a key no record has


def _owners(http: httpx.Client, node: Node) -> dict[int, str | None]:
    rel = http.get(f"{node.url}/cluster").json()["relations"].get("late.users", {})
    return {int(p): o for p, o in rel.get("owners", {}).items()}


def _until_right(http: httpx.Client, nodes: list[Node], rows: dict[int, str]
                 ) -> tuple[float | None, list[tuple[float, str, str, int, Any]]]:
    """Seconds until every node answers a miss 404 and a scan with exactly `rows` (None:
    not within 40 s), and every answer that was neither right nor 503 meanwhile."""
    t0 = time.monotonic()
    wrong: list[tuple[float, str, str, int, Any]] = []
    while (now := time.monotonic() - t0) < 40:
        right = True
        for n in nodes:
            miss = http.get(f"{n.url}/tables/late.users/rows/{MISSING}")
            scan = http.get(f"{n.url}/tables/late.users/rows", params={"limit": 1000})
            got = {r["id"]: r["name"] for r in scan.json()["rows"]} \
                if scan.status_code == 200 else None
            for what, status, ok in (("miss", miss.status_code, miss.status_code == 404),
                                     ("scan", scan.status_code, got == rows)):
                if not ok and status != 503:
                    wrong.append((round(now, 2), n.name, what, status,
                                  miss.text if what == "miss" else got))
                right = right and ok
            for key, name in list(rows.items())[:3]:  # hits stay right meanwhile
                hit = http.get(f"{n.url}/tables/late.users/rows/{key}")
                if hit.status_code != 503 and (hit.status_code != 200
                                               or hit.json()["name"] != name):
                    wrong.append((round(now, 2), n.name, f"hit {key}", hit.status_code,
                                  hit.text))
        if right:
            return now, wrong
        time.sleep(0.1)
    return None, wrong


def test_a_topic_the_worker_creates_is_routed_within_seconds(session_broker: DevBroker,
                                                             tmp_path: Path) -> None:
    """The worker's cluster agent asks the count when it starts, before `run` creates the
    declared topic: without asking again soon, a miss answered 503 ("the partition count
    of the topic is unknown") for ~25 s after the worker owned every partition."""
    topic = unique("late")
    cfg = tmp_path / "cluster.yaml"
    cfg.write_text(cluster_yaml(session_broker, unique("g"),
                                BODY.format(topic=topic, extra="    partitions: 2\n")))
    http = httpx.Client(timeout=10)
    a = start_node(cfg, "a")
    started = time.monotonic()
    wait_serving(a)
    wait_until(lambda: _owners(http, a) == {0: "a", 1: "a"}, 60,
               "the worker to create its topic and own both partitions")
    took, wrong = _until_right(http, [a], {})
    http.close()
    print(f"\nworker-created topic: misses and scans right {took} s after owning it, "
          f"{time.monotonic() - started:.1f} s after the start")
    assert not wrong, wrong[:10]
    assert took is not None and took < DEADLINE, (took, a.tail())


def test_a_topic_created_after_the_workers_started_is_routed_within_seconds(
        session_broker: DevBroker, tmp_path: Path) -> None:
    """Two workers started before their topic exists: once it is created, filled, and
    every row served (a hit is found by asking every owner), misses and scans answer
    right within seconds, not when the 30 s refresh comes round."""
    topic = unique("late")
    cfg = tmp_path / "cluster.yaml"
    cfg.write_text(cluster_yaml(session_broker, unique("g"), BODY.format(topic=topic, extra="")))
    http = httpx.Client(timeout=10)
    nodes = [start_node(cfg, name) for name in "ab"]
    for n in nodes:
        wait_serving(n)
    wait_until(lambda: all({m["id"] for m in http.get(f"{n.url}/cluster").json()["members"]
                            if m["live"]} == {"a", "b"} for n in nodes), 60,
               "both workers to see each other")
    session_broker.create_topic(topic, partitions=2)
    created = time.monotonic()
    rows = {i: f"v1-{i}" for i in range(20)}
    produce_records(session_broker.kafka_config(), topic, [(kb(i), row(v))
                                                           for i, v in rows.items()])

    def served() -> bool:
        for n in nodes:
            r = http.post(f"{n.url}/tables/late.users/lookup",
                          json={"keys": [[i] for i in rows]})
            if r.status_code != 200 or [x and x["name"] for x in r.json()["rows"]] \
                    != list(rows.values()):
                return False
        return set(_owners(http, nodes[0]).values()) == {"a", "b"}
    wait_until(served, 90, "both workers to serve every row, each owning a partition")
    took, wrong = _until_right(http, nodes, rows)
    http.close()
    print(f"\ntopic created later: misses and scans right {took} s after every row served, "
          f"{time.monotonic() - created:.1f} s after it was created")
    assert not wrong, wrong[:10]
    assert took is not None and took < DEADLINE, (took, [n.tail() for n in nodes])

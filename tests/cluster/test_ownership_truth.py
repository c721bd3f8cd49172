"""A worker given a partition another worker served answers it only once it has caught up:
never the older rows its store held of it, never "absent" for rows it has not read yet.

Each test kills (or stops) the worker owning a partition after it applied a newer value of
a key behind many other records, and asks a survivor for that key every few milliseconds
until it answers the newer value: every answer meanwhile must be that value or 503.
- Two workers: the survivor is left alone (the dead one expired from its routing table
  before the group moved the partition), and it held the partition before (an older value).
- Three workers, one partition: the new owner owns every partition of the table, and
  must not answer from its store alone while that partition is still being read.
- A worker killed, whose partitions the other took and updated, started again while the
  broker is away: its API routes by this run's membership (it owns nothing yet: 503),
  never by the earlier run's file, nor from its store alone (its older copy as current)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.producer import produce_records
from materializer.cluster.partitioning import murmur2_partition
from materializer.devbroker import DevBroker
from tests.cluster.helpers import Node, cluster_yaml, start_node, wait_serving
from tests.support.workers import unique, wait_until

BODY = """\
tables:
  - name: own.users
    topic: {users}
    columns: {{id: long, name: string}}
    primary_key: [id]
    key_format: long
"""
FILL = 60_000  # records before the newer value: the survivor reads them for a while


def _kb(i: int) -> bytes:
    return i.to_bytes(8, "big", signed=True)


def _row(name: str) -> bytes:
    return json.dumps({"name": name}).encode()


def _owners(http: httpx.Client, node: Node) -> dict[int, str | None]:
    rel = http.get(f"{node.url}/cluster").json()["relations"].get("own.users", {})
    return {int(p): o for p, o in rel.get("owners", {}).items()}


def _answer(http: httpx.Client, node: Node, key: int) -> tuple[int, Any]:
    r = http.get(f"{node.url}/tables/own.users/rows/{key}")
    return r.status_code, r.json().get("name") if r.status_code == 200 else None


def _two_partitions_of_v1_rows(broker: DevBroker, tmp_path: Path
                               ) -> tuple[dict[str, str], str, Path]:
    """A 2-partition topic holding keys 0-19 (name "v1-<key>") and a cluster file for it:
    (client settings, topic, file)."""
    conf = broker.kafka_config()
    topic = broker.create_topic(unique("users"), partitions=2)
    produce_records(conf, topic, [(_kb(i), _row(f"v1-{i}")) for i in range(20)])
    cfg = tmp_path / "cluster.yaml"
    cfg.write_text(cluster_yaml(broker, unique("g"), BODY.format(users=topic)))
    return conf, topic, cfg


def _watch(http: httpx.Client, nodes: list[Node], key: int, newer: str, timeout: float = 120
           ) -> list[tuple[float, str, int, Any]]:
    """What each of `nodes` answers for `key` (each change), until one of them answers
    `newer` as the partition's owner."""
    t0 = time.monotonic()
    seen: dict[str, tuple[int, Any]] = {}
    out: list[tuple[float, str, int, Any]] = []
    while time.monotonic() - t0 < timeout:
        for node in nodes:
            got = _answer(http, node, key)
            if seen.get(node.name) != got:
                seen[node.name] = got
                out.append((round(time.monotonic() - t0, 2), node.name, *got))
            if got == (200, newer) and node.name in _owners(http, node).values():
                return out
        time.sleep(0.02)
    raise AssertionError(f"no survivor answered {newer!r} as an owner: {out}")


@pytest.mark.parametrize("stop", ["kill", "term"])
def test_a_survivor_left_alone_never_answers_its_older_copy(
        session_broker: DevBroker, tmp_path: Path, stop: str) -> None:
    conf, topic, cfg = _two_partitions_of_v1_rows(session_broker, tmp_path)
    http = httpx.Client(timeout=10)
    a = start_node(cfg, "a")
    wait_serving(a)
    wait_until(lambda: all(_answer(http, a, i) == (200, f"v1-{i}") for i in (0, 1)), 60,
               "a to hold every row")
    b = start_node(cfg, "b")  # takes one of the partitions a held
    wait_serving(b)
    wait_until(lambda: all(set(_owners(http, n).values()) == {"a", "b"} for n in (a, b)), 90,
               "the two workers to split the partitions")
    q = next(p for p, o in _owners(http, a).items() if o == "b")
    key = next(i for i in range(20) if murmur2_partition(_kb(i), 2) == q)
    fill = [i for i in range(1000, 1000 + FILL * 4) if murmur2_partition(_kb(i), 2) == q][:FILL]
    produce_records(conf, topic, [(_kb(i), _row("filler")) for i in fill]
                    + [(_kb(key), _row(f"v2-{key}"))])
    wait_until(lambda: _answer(http, b, key) == (200, f"v2-{key}")
               and _answer(http, a, key) == (200, f"v2-{key}"), 120,
               "b to apply the newer value, a to forward to it")
    if stop == "kill":
        b.kill()
    else:
        assert b.stop() == 0
    seen = _watch(http, [a], key, f"v2-{key}")
    http.close()
    assert all(status == 503 or name == f"v2-{key}" for *_, status, name in seen), seen


def test_a_new_owner_of_every_partition_says_503_not_absent_while_it_reads(
        session_broker: DevBroker, tmp_path: Path) -> None:
    conf = session_broker.kafka_config()
    topic = session_broker.create_topic(unique("users"), partitions=1)
    produce_records(conf, topic, [(_kb(i), _row("filler")) for i in range(1000, 1000 + FILL)]
                    + [(_kb(1), _row("v1"))])
    cfg = tmp_path / "cluster.yaml"
    cfg.write_text(cluster_yaml(session_broker, unique("g"), BODY.format(users=topic)))
    http = httpx.Client(timeout=10)
    nodes = [start_node(cfg, name) for name in "abc"]
    for n in nodes:
        wait_serving(n)
    wait_until(lambda: all(_answer(http, n, 1) == (200, "v1") for n in nodes), 120,
               "every worker to answer the row (one owns the partition)")
    victim = next(n for n in nodes if n.name == _owners(http, nodes[0])[0])
    survivors = [n for n in nodes if n is not victim]
    wait_until(lambda: all("assigned [" in n.log.read_text() for n in survivors), 60,
               "the others to have joined the group")
    victim.kill()
    seen = _watch(http, survivors, 1, "v1")
    http.close()
    assert all(status in (503, 200) for *_, status, _ in seen), seen



def test_a_broker_gone_makes_lookups_503_never_absent(own_broker: DevBroker,
                                                      tmp_path: Path) -> None:
    """With the broker gone the members' heartbeats stop, the group session expires (the
    assignment is lost) and the partition counts cannot be asked: each worker's API must
    keep routing (503 for what no live owner answers), never answer from its store alone
    ("absent" for the other's keys, then for every key)."""
    conf, topic, cfg = _two_partitions_of_v1_rows(own_broker, tmp_path)
    http = httpx.Client(timeout=10)
    nodes = [start_node(cfg, name) for name in "ab"]
    for n in nodes:
        wait_serving(n)
    wait_until(lambda: all(set(_owners(http, n).values()) == {"a", "b"} for n in nodes), 90,
               "the two workers to split the partitions")
    wait_until(lambda: all(_answer(http, n, i) == (200, f"v1-{i}") for n in nodes
                           for i in range(20)), 60, "both to answer every row")
    own_broker.stop()
    wrong: list[tuple[float, str, int, int, Any]] = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 40:  # past the session timeout and a count refresh (30 s)
        for n in nodes:
            for i in range(20):
                status, name = _answer(http, n, i)
                if status != 503 and (status, name) != (200, f"v1-{i}"):
                    wrong.append((round(time.monotonic() - t0, 1), n.name, i, status, name))
        time.sleep(0.5)
    http.close()
    assert not wrong, wrong[:10]


def test_a_worker_restarted_with_the_broker_gone_never_answers_its_older_copy(
        own_broker: DevBroker, tmp_path: Path) -> None:
    conf, topic, cfg = _two_partitions_of_v1_rows(own_broker, tmp_path)
    http = httpx.Client(timeout=10)
    a, b = (start_node(cfg, name) for name in "ab")
    for n in (a, b):
        wait_serving(n)
    wait_until(lambda: all(set(_owners(http, n).values()) == {"a", "b"} for n in (a, b)), 90,
               "the two workers to split the partitions")
    wait_until(lambda: all(_answer(http, a, i) == (200, f"v1-{i}") for i in range(20)), 60,
               "a to answer every row")
    q = next(p for p, o in _owners(http, b).items() if o == "a")
    keys = [i for i in range(20) if murmur2_partition(_kb(i), 2) == q]  # a's partition
    a.kill()
    wait_until(lambda: set(_owners(http, b).values()) == {"b"}, 60, "b to own a's partition")
    produce_records(conf, topic, [(_kb(i), _row(f"v2-{i}")) for i in keys])
    wait_until(lambda: all(_answer(http, b, i) == (200, f"v2-{i}") for i in keys), 60,
               "b to apply the newer values")
    own_broker.stop()
    a = start_node(cfg, "a")
    wait_serving(a)
    wait_until(lambda: "cannot reach the Kafka broker" in a.log.read_text(), 30,
               "the restarted a to find the broker gone")
    answers: list[tuple[int, int, Any]] = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 6:  # past the member timeout (4 s): the file stays fresh
        answers += [(i, *_answer(http, a, i)) for i in range(20)]
    http.close()
    assert answers and all(status == 503 for _, status, _ in answers), \
        [x for x in answers if x[1] != 503][:10]

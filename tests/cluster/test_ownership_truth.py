"""A worker given a partition another worker served answers it only once it has caught up:
never the older rows its store held of it, never "absent" for rows it has not read yet.

Each test kills (or stops) the worker owning a partition after it applied a newer value of
a key behind many other records, and asks a survivor for that key every few milliseconds
until it answers the newer value: every answer meanwhile must be that value or 503.
- Two workers: the survivor is left alone (the dead one expired from its routing table
  before the group moved the partition), and it held the partition before (an older value).
- Three workers, one partition: the new owner owns every partition of the table, and
  must not answer from its store alone while that partition is still being read.

With the broker gone (a broker the test stops, a worker restarted while it is away):
tests/cluster/test_ownership_broker_gone.py, a file of its own so that parallel test
processes (`--dist loadfile`) run those two beside these."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.producer import produce_records
from materializer.cluster.partitioning import murmur2_partition
from materializer.devbroker import DevBroker
from tests.cluster.helpers import Node, cluster_yaml, start_node, wait_serving
from tests.cluster.ownership import BODY, answer, kb, owners, row, two_partitions_of_v1_rows
from tests.support.workers import unique, wait_until

FILL = 60_000  # records before the newer value: the survivor reads them for a while


def _watch(http: httpx.Client, nodes: list[Node], key: int, newer: str, timeout: float = 120
           ) -> list[tuple[float, str, int, Any]]:
    """What each of `nodes` answers for `key` (each change), until one of them answers
    `newer` as the partition's owner."""
    t0 = time.monotonic()
    seen: dict[str, tuple[int, Any]] = {}
    out: list[tuple[float, str, int, Any]] = []
    while time.monotonic() - t0 < timeout:
        for node in nodes:
            got = answer(http, node, key)
            if seen.get(node.name) != got:
                seen[node.name] = got
                out.append((round(time.monotonic() - t0, 2), node.name, *got))
            if got == (200, newer) and node.name in owners(http, node).values():
                return out
        time.sleep(0.02)
    raise AssertionError(f"no survivor answered {newer!r} as an owner: {out}")


@pytest.mark.parametrize("stop", ["kill", "term"])
def test_a_survivor_left_alone_never_answers_its_older_copy(
        session_broker: DevBroker, tmp_path: Path, stop: str) -> None:
    conf, topic, cfg = two_partitions_of_v1_rows(session_broker, tmp_path)
    http = httpx.Client(timeout=10)
    a = start_node(cfg, "a")
    wait_serving(a)
    wait_until(lambda: all(answer(http, a, i) == (200, f"v1-{i}") for i in (0, 1)), 60,
               "a to hold every row")
    b = start_node(cfg, "b")  # takes one of the partitions a held
    wait_serving(b)
    wait_until(lambda: all(set(owners(http, n).values()) == {"a", "b"} for n in (a, b)), 90,
               "the two workers to split the partitions")
    q = next(p for p, o in owners(http, a).items() if o == "b")
    key = next(i for i in range(20) if murmur2_partition(kb(i), 2) == q)
    fill = [i for i in range(1000, 1000 + FILL * 4) if murmur2_partition(kb(i), 2) == q][:FILL]
    produce_records(conf, topic, [(kb(i), row("filler")) for i in fill]
                    + [(kb(key), row(f"v2-{key}"))])
    wait_until(lambda: answer(http, b, key) == (200, f"v2-{key}")
               and answer(http, a, key) == (200, f"v2-{key}"), 120,
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
    produce_records(conf, topic, [(kb(i), row("filler")) for i in range(1000, 1000 + FILL)]
                    + [(kb(1), row("v1"))])
    cfg = tmp_path / "cluster.yaml"
    cfg.write_text(cluster_yaml(session_broker, unique("g"), BODY.format(users=topic)))
    http = httpx.Client(timeout=10)
    nodes = [start_node(cfg, name) for name in "abc"]
    for n in nodes:
        wait_serving(n)
    wait_until(lambda: all(answer(http, n, 1) == (200, "v1") for n in nodes), 120,
               "every worker to answer the row (one owns the partition)")
    victim = next(n for n in nodes if n.name == owners(http, nodes[0])[0])
    survivors = [n for n in nodes if n is not victim]
    wait_until(lambda: all("assigned [" in n.log.read_text() for n in survivors), 60,
               "the others to have joined the group")
    victim.kill()
    seen = _watch(http, survivors, 1, "v1")
    http.close()
    assert all(status in (503, 200) for *_, status, _ in seen), seen

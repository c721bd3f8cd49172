"""A worker's API with the broker gone never answers from its store alone: never "absent"
for keys it does not own, nor its older copy of a partition another worker took and
updated (the rest of tests/cluster/test_ownership_truth.py; each test here has a broker of
its own, which it stops).

- With the broker gone the group session expires and the partition counts cannot be
  asked: lookups are 503 or the row, never "absent".
- A worker killed, whose partitions the other took and updated, started again while the
  broker is away: its API routes by this run's membership (it owns nothing yet: 503),
  never by the earlier run's file, nor from its store alone (its older copy as current)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from connectors.producer import produce_records
from materializer.cluster.partitioning import murmur2_partition
from materializer.devbroker import DevBroker
from tests.cluster.helpers import start_node, wait_serving
from tests.cluster.ownership import answer, kb, owners, row, two_partitions_of_v1_rows
from tests.support.workers import wait_until


def test_a_broker_gone_makes_lookups_503_never_absent(own_broker: DevBroker,
                                                      tmp_path: Path) -> None:
    """With the broker gone the members' heartbeats stop, the group session expires (the
    assignment is lost) and the partition counts cannot be asked: each worker's API must
    keep routing (503 for what no live owner answers), never answer from its store alone
    ("absent" for the other's keys, then for every key)."""
    conf, topic, cfg = two_partitions_of_v1_rows(own_broker, tmp_path)
    http = httpx.Client(timeout=10)
    nodes = [start_node(cfg, name) for name in "ab"]
    for n in nodes:
        wait_serving(n)
    wait_until(lambda: all(set(owners(http, n).values()) == {"a", "b"} for n in nodes), 90,
               "the two workers to split the partitions")
    wait_until(lambda: all(answer(http, n, i) == (200, f"v1-{i}") for n in nodes
                           for i in range(20)), 60, "both to answer every row")
    own_broker.stop()
    wrong: list[tuple[float, str, int, int, Any]] = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 40:  # past the session timeout and a count refresh (30 s)
        for n in nodes:
            for i in range(20):
                status, name = answer(http, n, i)
                if status != 503 and (status, name) != (200, f"v1-{i}"):
                    wrong.append((round(time.monotonic() - t0, 1), n.name, i, status, name))
        time.sleep(0.5)
    http.close()
    assert not wrong, wrong[:10]


def test_a_worker_restarted_with_the_broker_gone_never_answers_its_older_copy(
        own_broker: DevBroker, tmp_path: Path) -> None:
    conf, topic, cfg = two_partitions_of_v1_rows(own_broker, tmp_path)
    http = httpx.Client(timeout=10)
    a, b = (start_node(cfg, name) for name in "ab")
    for n in (a, b):
        wait_serving(n)
    wait_until(lambda: all(set(owners(http, n).values()) == {"a", "b"} for n in (a, b)), 90,
               "the two workers to split the partitions")
    wait_until(lambda: all(answer(http, a, i) == (200, f"v1-{i}") for i in range(20)), 60,
               "a to answer every row")
    q = next(p for p, o in owners(http, b).items() if o == "a")
    keys = [i for i in range(20) if murmur2_partition(kb(i), 2) == q]  # a's partition
    a.kill()
    wait_until(lambda: set(owners(http, b).values()) == {"b"}, 60, "b to own a's partition")
    produce_records(conf, topic, [(kb(i), row(f"v2-{i}")) for i in keys])
    wait_until(lambda: all(answer(http, b, i) == (200, f"v2-{i}") for i in keys), 60,
               "b to apply the newer values")
    own_broker.stop()
    a = start_node(cfg, "a")
    wait_serving(a)
    wait_until(lambda: "cannot reach the Kafka broker" in a.log.read_text(), 30,
               "the restarted a to find the broker gone")
    answers: list[tuple[int, int, Any]] = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 6:  # past the member timeout (4 s): the file stays fresh
        answers += [(i, *answer(http, a, i)) for i in range(20)]
    http.close()
    assert answers and all(status == 503 for _, status, _ in answers), \
        [x for x in answers if x[1] != 503][:10]

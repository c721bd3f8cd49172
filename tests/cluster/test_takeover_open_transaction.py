"""A worker given a partition in which a transaction is left open (a producer gone
mid-transaction) answers it once it holds every committed record, not when the broker
aborts the transaction (`transaction.timeout.ms`, up to 15 min).

The end a take-over waits for is the one first seen after the assignment; that is the high
watermark of the first fetch response, the open transaction's records counted, until
librdkafka's statistics (every second) show the last stable offset. The worker can read no
further than the last stable offset while the transaction is open: before, it stayed one
behind that first end, and the partition answered 503, until the transaction ended. Never
earlier than that, though: a committed row of the partition is never answered "absent" nor
older, and the open transaction's rows are not answered."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from confluent_kafka import Producer

from materializer.cluster.agent import end_to_reach
from materializer.cluster.partitioning import murmur2_partition
from materializer.devbroker import DevBroker
from tests.cluster.helpers import cluster_yaml, start_node, wait_serving
from tests.cluster.ownership import BODY, answer, kb, owners, row
from tests.support.workers import applied_offsets, unique, wait_until


def _keys_of(partition: int, n: int) -> list[int]:
    return [i for i in range(100) if murmur2_partition(kb(i), 2) == partition][:n]


def test_a_partition_taken_over_with_a_transaction_left_open_is_answered(
        session_broker: DevBroker, tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("users"), partitions=2)
    producer = Producer({"bootstrap.servers": session_broker.bootstrap,
                         "transactional.id": unique("tx"), "transaction.timeout.ms": 900_000})
    producer.init_transactions(30)
    # per partition: two keys committed (v1), then a transaction left open in both
    # partitions that updates the first and adds a third (v2)
    keys = {p: _keys_of(p, 3) for p in (0, 1)}
    producer.begin_transaction()
    for p, (first, second, _) in keys.items():
        for i in (first, second):
            producer.produce(topic, row(f"v1-{i}"), kb(i), partition=p)
    producer.commit_transaction(30)
    producer.begin_transaction()
    for p, (first, _, third) in keys.items():
        for i in (first, third):
            producer.produce(topic, row(f"v2-{i}"), kb(i), partition=p)
    producer.flush(30)
    cfg = tmp_path / "cluster.yaml"
    cfg.write_text(cluster_yaml(session_broker, unique("g"), BODY.format(users=topic)))
    http = httpx.Client(timeout=10)
    try:
        a = start_node(cfg, "a")
        wait_serving(a)
        wait_until(lambda: all(answer(http, a, keys[p][1]) == (200, f"v1-{keys[p][1]}")
                               for p in (0, 1)), 60, "a to answer both partitions")
        b = start_node(cfg, "b")  # takes one of the partitions a held
        wait_serving(b)
        wait_until(lambda: all(set(owners(http, n).values()) == {"a", "b"} for n in (a, b)),
                   90, "the two workers to split the partitions")
        q = next(p for p, o in owners(http, b).items() if o == "b")
        first, second, third = keys[q]
        want = {first: (200, f"v1-{first}"), second: (200, f"v1-{second}"), third: (404, None)}
        seen: list[tuple[float, int, tuple[int, object]]] = []  # each change of an answer
        last: dict[int, tuple[int, object]] = {}
        t0 = time.monotonic()

        def answered() -> bool:
            got = {i: answer(http, b, i) for i in want}
            for i, g in got.items():
                if last.get(i) != g:
                    last[i] = g
                    seen.append((round(time.monotonic() - t0, 2), i, g))
            return got == want
        deadline = time.monotonic() + 40
        while not answered():  # before, 503 until the transaction was aborted (15 min here)
            assert time.monotonic() < deadline, (
                f"b never answered partition {q}: {seen}; its next offset "
                f"{applied_offsets(b.store, 'own.users')}")
            assert b.proc.poll() is None, b.tail()
            time.sleep(0.05)
        assert all(g == want[i] or g[0] == 503 for _, i, g in seen), seen
        assert f"{topic} partition {q} caught up at offset 3: answered here" in b.log.read_text()
    finally:
        http.close()
        producer.abort_transaction(30)


def test_the_end_to_reach_comes_down_only_to_a_transaction_s_last_stable_offset() -> None:
    """`end_to_reach(seen, end now, (log start, high watermark now))`."""
    assert end_to_reach(4, None, None) == 4  # end not known now: the end first seen
    assert end_to_reach(4, 3, (0, 4)) == 3  # the last stable offset, shown since
    assert end_to_reach(4, 3, (0, 9)) == 3  # records written since, the transaction open
    assert end_to_reach(3, 5, (0, 5)) == 3  # the end moved on: the end first seen
    # a high watermark below the end first seen (a topic truncated, a leader behind, a
    # watermark not known): never lowered, the end first seen is waited for
    assert end_to_reach(4, 2, (0, 2)) == 4
    assert end_to_reach(4, 2, (0, 3)) == 4
    assert end_to_reach(4, 3, None) == 4

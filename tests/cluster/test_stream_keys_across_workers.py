"""A stream key whose events are in partitions of two workers (producers that partitioned
differently, explicit partitions): every worker and the Client answer all its events, newest
first, as one worker holding every partition does. Before, the owner of the key's murmur2
partition answered its own events alone, leaving out newer ones the other worker held."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Producer

from materializer import Client
from materializer.cluster.partitioning import murmur2_partition
from materializer.devbroker import DevBroker
from materializer.store import Store
from tests.cluster.helpers import cluster_yaml, start_node, wait_serving
from tests.support.workers import unique, wait_until

STREAM = """\
streams:
  - name: says
    topic: {topic}
    columns: {{who: string, n: long}}
    key: [who]
    key_format: string
"""


@pytest.mark.integration
def test_a_stream_key_in_two_workers_partitions_answers_every_event(
        session_broker: DevBroker, tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("says"), partitions=2)
    keys = [f"k{i}" for i in range(6)]
    producer = Producer({"bootstrap.servers": session_broker.bootstrap})
    want: dict[str, list[int]] = {}
    n = 0
    for key in keys:  # its own partition first, then newer events in the other one
        home = murmur2_partition(key.encode(), 2)
        for p in (home, home, 1 - home, 1 - home):
            n += 1
            producer.produce(topic, key=key.encode(), value=json.dumps({"n": n}).encode(),
                             partition=p, timestamp=1_700_000_000_000 + n)
            want.setdefault(key, []).insert(0, n)
    assert producer.flush(30) == 0
    cfg = tmp_path / "cluster.yaml"
    cfg.write_text(cluster_yaml(session_broker, unique("g"), STREAM.format(topic=topic)))
    nodes = [start_node(cfg, "a"), start_node(cfg, "b")]
    for node in nodes:
        wait_serving(node)
    http = httpx.Client(timeout=10)

    def split_and_caught_up() -> bool:
        view = http.get(f"{nodes[0].url}/cluster").json()
        rel = view["relations"].get("public.says") or view["relations"].get("says") or {}
        owners = rel.get("owners", {})
        if sorted(map(str, owners.values())) != ["a", "b"]:
            return False
        held: dict[int, int] = {}
        for node in nodes:
            with Store.open(node.store) as store:
                view = store.stream("says")
                revoked = view.revoked_partitions()
                held.update((p, o) for p, o in view.next_offsets().items() if p not in revoked)
        return sum(held.values()) == n and len(held) == 2 and \
            all(http.get(f"{node.url}/readyz").status_code == 200 for node in nodes)
    wait_until(split_and_caught_up, 90, "the two workers to own one partition each")
    try:
        for node in nodes:
            for key in keys:
                r = http.get(f"{node.url}/streams/says/keys/{key}/events",
                             params={"limit": 10})
                assert r.status_code == 200, r.text
                assert [e["n"] for e in r.json()["events"]] == want[key], (node.name, key)
                r = http.get(f"{node.url}/streams/says/keys/{key}/events",
                             params={"limit": 1})
                assert [e["n"] for e in r.json()["events"]] == want[key][:1], (node.name, key)
            with Client(node.url) as client:
                for key in keys:
                    assert [e["n"] for e in client.stream("says").events(key, 3)] == \
                        want[key][:3], (node.name, key)
        for node in nodes:
            assert node.stop() == 0, node.tail()
    finally:
        http.close()

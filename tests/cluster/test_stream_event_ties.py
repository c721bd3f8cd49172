"""Events of one stream key with the same event time and the same offset in different
partitions (producers writing partitions in step, millisecond timestamps) come in one
order everywhere: newest first by event time, then offset, then the lower partition. Before,
`StreamView.events` left ties in the order it read the partitions, an owner's forwarded
answer (`stamped_events`) in the order its scan first met them, and the cluster's merge in
the order the owners answered: two workers answered one request in two orders, and a
`limit` cutting through a tie kept different events."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Producer

from materializer.api.keys import RelationIndex
from materializer.cluster.pages import stamped_events
from materializer.devbroker import DevBroker
from materializer.ingest.relation import open_relation
from materializer.specs import StreamSpec
from materializer.store import Store
from materializer.testing import FakeRecord
from tests.cluster.helpers import cluster_yaml, start_node, wait_serving
from tests.support.api import columns
from tests.support.workers import unique, wait_until

SPEC = StreamSpec(name="public.says", topic="says",
                  columns=columns({"who": "string", "n": "long"}), key_columns=("who",),
                  key_format="string")


def test_ties_are_broken_by_the_lower_partition_in_the_store_and_in_owner_answers(
        tmp_path: Path) -> None:
    rel = open_relation(SPEC, tmp_path / "data")
    # partition 1 holds an older event (offset 0) than partition 0 does: a scan of the key
    # meets partition 1 first; both hold offsets 1 and 2, each pair at one time
    rel.apply({0: [FakeRecord(b"a", json.dumps({"n": n}).encode(), n + 1, 1000 + n)
                   for n in (0, 1)],
               1: [FakeRecord(b"a", json.dumps({"n": 10 + n}).encode(), n, 999 + n)
                   for n in (0, 1, 2)]})
    want = [(0, 1), (1, 12), (0, 0), (1, 11), (1, 10)]
    with Store.open(tmp_path / "data") as store:
        view = store.stream("says")
        assert [e["value"]["n"] for e in view.scan()] == [10, 0, 11, 1, 12]
        assert [e["n"] for e in view.events("a", 10)] == [n for _, n in want]
        assert [e["n"] for e in view.events("a", 1)] == [1]
        api = RelationIndex(store).stream("says")
        for limit in (1, 2, 3, 10):
            got = stamped_events(api, ("a",), limit)
            assert [(p, v["n"]) for _, _, p, v in got] == want[:limit], limit


STREAM = """\
streams:
  - name: says
    topic: {topic}
    columns: {{who: string, n: long}}
    key: [who]
    key_format: string
"""


@pytest.mark.integration
def test_every_worker_answers_tied_events_in_one_order(session_broker: DevBroker,
                                                        tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("ties"), partitions=2)
    producer = Producer({"bootstrap.servers": session_broker.bootstrap})
    for i in range(3):  # offset i in both partitions, one time per step
        for p in (1, 0):
            producer.produce(topic, key=b"k", value=json.dumps({"n": 10 * p + i}).encode(),
                             partition=p, timestamp=1_700_000_000_000 + i)
    assert producer.flush(30) == 0
    want = [0 + 2, 10 + 2, 0 + 1, 10 + 1, 0, 10]  # newest first; partition 0 before 1
    cfg = tmp_path / "cluster.yaml"
    cfg.write_text(cluster_yaml(session_broker, unique("g"), STREAM.format(topic=topic)))
    nodes = [start_node(cfg, "a"), start_node(cfg, "b")]
    for node in nodes:
        wait_serving(node)
    http = httpx.Client(timeout=10)

    def split_and_caught_up() -> bool:
        view = http.get(f"{nodes[0].url}/cluster").json()
        rel = view["relations"].get("public.says") or {}
        if sorted(map(str, rel.get("owners", {}).values())) != ["a", "b"]:
            return False
        held: dict[int, int] = {}
        for node in nodes:
            with Store.open(node.store) as store:
                view = store.stream("says")
                revoked = view.revoked_partitions()
                held.update((p, o) for p, o in view.next_offsets().items() if p not in revoked)
        return held == {0: 3, 1: 3} and \
            all(http.get(f"{node.url}/readyz").status_code == 200 for node in nodes)
    try:
        wait_until(split_and_caught_up, 90, "the two workers to own one partition each")
        for node in nodes:
            for limit in (1, 2, 3, 6):
                r = http.get(f"{node.url}/streams/says/keys/k/events", params={"limit": limit})
                assert r.status_code == 200, r.text
                assert [e["n"] for e in r.json()["events"]] == want[:limit], (node.name, limit)
        for node in nodes:
            assert node.stop() == 0, node.tail()
    finally:
        http.close()

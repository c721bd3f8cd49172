"""A cluster worker's snapshot holds its own partitions only: a `?as_of=` read there of a
key in a partition this worker's store never held is 503 (PartitionsNotHeld), never a 404
that says the topic does not hold the key."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from materializer.errors import PartitionsNotHeld
from materializer.store import Store
from tests.cluster.helpers import cluster_yaml, start_node, wait_serving
from tests.support.workers import unique, wait_until

pytestmark = pytest.mark.integration

N = 40


def test_as_of_on_a_cluster_worker_never_says_absent_for_partitions_it_never_held(
        session_broker: DevBroker, tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("users"), partitions=4)
    produce_records(session_broker.kafka_config(), topic, [
        (i.to_bytes(8, "big", signed=True), json.dumps({"name": f"u{i}"}).encode())
        for i in range(N)])
    cfg = tmp_path / "cluster.yaml"
    cfg.write_text(cluster_yaml(session_broker, unique("g"), f"""tables:
  - name: shop.users
    topic: {topic}
    columns: {{id: long, name: string}}
    primary_key: [id]
    key_format: long
"""))
    a, b = start_node(cfg, "a"), start_node(cfg, "b")
    try:
        for n in (a, b):
            wait_serving(n)

        def split() -> bool:
            owners = httpx.get(f"{a.url}/cluster", timeout=10).json()["relations"] \
                .get("shop.users", {}).get("owners", {})
            return len(owners) == 4 and set(owners.values()) == {"a", "b"}
        wait_until(split, 90, "the two workers to split the partitions")
        wait_until(lambda: all(httpx.get(f"{a.url}/tables/shop.users/rows/{i}",
                                         timeout=10).status_code == 200 for i in range(N)),
                   60, "every key to be served (routed) through worker a")
        r = httpx.post(f"{a.url}/snapshots", json={"name": "c"}, timeout=60)
        assert r.status_code == 201, r.text
        statuses: dict[int, list[int]] = {}
        for i in range(N):
            r = httpx.get(f"{a.url}/tables/shop.users/rows/{i}", params={"as_of": "c"},
                          timeout=10)
            statuses.setdefault(r.status_code, []).append(i)
            if r.status_code == 200:
                assert r.json() == {"id": i, "name": f"u{i}"}
            else:
                assert r.status_code == 503 and "in snapshot 'c'" in r.json()["detail"], r.text
        assert 404 not in statuses and statuses.get(200) and statuses.get(503), statuses
        with Store.open(a.store) as s, pytest.raises(PartitionsNotHeld):
            s.table("shop.users", as_of="c").get(statuses[503][0])
    finally:
        for n in (a, b):
            n.stop()

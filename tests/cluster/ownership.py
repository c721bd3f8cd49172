"""What tests/cluster/test_ownership_truth.py and test_ownership_broker_gone.py share: a
two-partition table of keys 0-19 and the workers' answers and owners for it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from tests.cluster.helpers import Node, cluster_yaml
from tests.support.workers import unique

BODY = """\
tables:
  - name: own.users
    topic: {users}
    columns: {{id: long, name: string}}
    primary_key: [id]
    key_format: long
"""

def kb(i: int) -> bytes:
    return i.to_bytes(8, "big", signed=True)


def row(name: str) -> bytes:
    return json.dumps({"name": name}).encode()


def owners(http: httpx.Client, node: Node) -> dict[int, str | None]:
    rel = http.get(f"{node.url}/cluster").json()["relations"].get("own.users", {})
    return {int(p): o for p, o in rel.get("owners", {}).items()}


def answer(http: httpx.Client, node: Node, key: int) -> tuple[int, Any]:
    r = http.get(f"{node.url}/tables/own.users/rows/{key}")
    return r.status_code, r.json().get("name") if r.status_code == 200 else None


def two_partitions_of_v1_rows(broker: DevBroker, tmp_path: Path
                              ) -> tuple[dict[str, str], str, Path]:
    """A 2-partition topic holding keys 0-19 (name "v1-<key>") and a cluster file for it:
    (client settings, topic, file)."""
    conf = broker.kafka_config()
    topic = broker.create_topic(unique("users"), partitions=2)
    produce_records(conf, topic, [(kb(i), row(f"v1-{i}")) for i in range(20)])
    cfg = tmp_path / "cluster.yaml"
    cfg.write_text(cluster_yaml(broker, unique("g"), BODY.format(users=topic)))
    return conf, topic, cfg

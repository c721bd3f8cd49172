"""Readers after the worker stopped on a recreated topic (`on_reset: fail`; probe h83).

The worker refused to apply the new topic to the old topic's state and stopped, "rather
than serve it as current", but readers kept serving it: `materializer get` answered the
deleted topic's row with exit 0 (a `serve` beside it: 200), while the topic held another
value for the key. The worker now marks the relation's partitions revoked before it stops,
so reads answer "not held" (exit 3, HTTP 503) until a `rebuild`, or a worker given the
partitions again, makes them current.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from materializer.errors import PartitionsNotHeld
from materializer.store import Store
from tests.support.workers import materialize, run_cli, unique, wait_until, write_config

BODY = """\
tables:
  - name: shop.users
    topic: {topic}
    columns: {{id: int, name: string}}
    primary_key: [id]
    key_format: int
    value_format: json
"""


def _records(n: int, tag: str) -> list[tuple[bytes | None, bytes | None]]:
    return [(i.to_bytes(4, "big"), json.dumps({"name": f"{tag}{i}"}).encode())
            for i in range(n)]


@pytest.mark.integration
def test_rows_of_a_deleted_topic_are_not_served_after_the_refusal(
        session_broker: DevBroker, tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("users"), partitions=2)
    cfg = write_config(tmp_path / "t.yaml", session_broker, BODY.format(topic=topic))
    ends = produce_records(session_broker.kafka_config(), topic, _records(30, "old"))
    materialize(cfg, {"shop.users": ends})
    admin = AdminClient({"bootstrap.servers": session_broker.bootstrap})
    admin.delete_topics([topic])[topic].result(15)
    wait_until(lambda: topic not in admin.list_topics(timeout=5).topics, 15, "the deletion")
    session_broker.create_topic(topic, partitions=2)
    produce_records(session_broker.kafka_config(), topic, _records(30, "new"))
    done = subprocess.run([sys.executable, "-m", "materializer", "run", str(cfg), "--no-api"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "was deleted and created again" in done.stderr, done.stderr

    got = run_cli("get", str(cfg), "shop.users", "3")
    assert got.returncode == 3, (got.stdout, got.stderr)  # not {"id": 3, "name": "old3"}
    assert "not held" in got.stderr
    with Store.open(tmp_path / "data") as store:
        users = store.table("shop.users")
        with pytest.raises(PartitionsNotHeld):
            users.get(3)
        stats = store.relation("shop.users").partition_stats()
    assert sum(s["rows"] for s in stats) == 30  # kept as it was: nothing new applied

    rebuilt = run_cli("rebuild", str(cfg), "shop.users", timeout=120)
    assert rebuilt.returncode == 0, rebuilt.stderr
    with Store.open(tmp_path / "data") as store:
        assert store.table("shop.users").get(3) == {"id": 3, "name": "new3"}

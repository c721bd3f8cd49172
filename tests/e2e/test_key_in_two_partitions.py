"""A key whose records went to two partitions of the topic (a producer with another
partitioner, or a partition count that grew): the worker applies both, and reading the
key refuses instead of answering with one of the rows (real broker, worker and CLI)."""

from __future__ import annotations

import json
from pathlib import Path

from confluent_kafka import Producer

from materializer.devbroker import DevBroker
from tests.support.workers import materialize, run_cli, unique, write_config


def test_the_cli_refuses_a_key_held_by_two_partitions(session_broker: DevBroker,
                                                      tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("moved"), partitions=2)
    producer = Producer(session_broker.kafka_config())
    sent = [(0, 1, "old"), (0, 2, "two"), (1, 1, "new")]  # key 1 in partitions 0 and 1
    for p, k, name in sent:
        producer.produce(topic, json.dumps({"name": name}).encode(), json.dumps(k).encode(),
                         partition=p)
    assert producer.flush(30) == 0
    cfg = write_config(tmp_path / "t.yaml", session_broker, f"""\
tables:
  - name: users
    topic: {topic}
    columns: {{id: long, name: string}}
    primary_key: [id]
    key_format: json
    value_format: json
""")
    materialize(cfg, {"users": {0: 2, 1: 1}})
    ambiguous = run_cli("get", str(cfg), "users", "1")
    assert ambiguous.returncode == 4 and ambiguous.stdout == ""  # not 1, "no row"
    assert "users: key 1 is held by partitions 0 and 1" in ambiguous.stderr
    scan = run_cli("scan", str(cfg), "users")
    assert scan.returncode == 4 and "held by partitions 0 and 1" in scan.stderr
    other = run_cli("get", str(cfg), "users", "2")
    assert other.returncode == 0 and json.loads(other.stdout) == {"id": 2, "name": "two"}

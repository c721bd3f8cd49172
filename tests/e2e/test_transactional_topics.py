"""A topic written by a transactional producer ends in a commit marker, an offset no record
stands for: the worker still reads it to its end (lag 0, caught up, `/readyz` ready) and
`rebuild` still finishes (real broker, worker and CLI)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from confluent_kafka import Producer

from connectors.kafka_admin import ungrouped_conf
from materializer.devbroker import DevBroker
from materializer.status import read_status
from tests.support.workers import (
    applied_offsets,
    run_cli,
    start_worker,
    unique,
    wait_until,
    write_config,
)


def produce_in_a_transaction(broker: DevBroker, topic: str, records: list[tuple[int, str]]
                             ) -> None:
    producer = Producer({"bootstrap.servers": broker.kafka_config()["bootstrap.servers"],
                         "transactional.id": unique("tx")})
    producer.init_transactions(30)
    producer.begin_transaction()
    for key, name in records:
        producer.produce(topic, json.dumps({"name": name}).encode(), json.dumps(key).encode(),
                         partition=0)
    producer.commit_transaction(30)


def test_a_partition_ending_in_a_commit_marker_is_read_to_its_end(session_broker: DevBroker,
                                                                  tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("txn"), partitions=1)
    produce_in_a_transaction(session_broker, topic, [(1, "a"), (2, "b"), (3, "c")])
    cfg = write_config(tmp_path / "t.yaml", session_broker, f"""\
tables:
  - name: users
    topic: {topic}
    columns: {{id: long, name: string}}
    primary_key: [id]
    key_format: json
    value_format: json
""")
    data = tmp_path / "data"
    worker = start_worker(cfg)
    try:  # three records at offsets 0-2, the commit marker at 3: the end is 4
        wait_until(lambda: applied_offsets(data, "users") == {0: 4}, 60,
                   "the next offset past the commit marker", worker)
        wait_until(lambda: (read_status(data) or {}).get("caught_up"), 30,
                   "the worker to say it is caught up", worker)
        (part,) = (read_status(data) or {})["partitions"]
        assert (part["next_offset"], part["end_offset"], part["lag"]) == (4, 4, 0)
    finally:
        worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    status = run_cli("status", str(cfg)).stdout.splitlines()
    assert status[0].split()[5] == "LAG"
    (line,) = [x.split() for x in status if x.startswith("public.users")]
    assert line[5] == "0"
    rebuilt = run_cli("rebuild", str(cfg), "users", timeout=90)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "3 records replayed" in rebuilt.stdout
    assert applied_offsets(data, "users") == {0: 4}
    rows = run_cli("scan", str(cfg), "users")
    assert [json.loads(line)["id"] for line in rows.stdout.splitlines()] == [1, 2, 3]


def test_consumers_outside_the_group_read_as_the_group_does() -> None:
    conf = {"bootstrap.servers": "b:9092", "group.id": "g", "isolation.level": "read_uncommitted",
            "session.timeout.ms": "6000"}
    assert ungrouped_conf(conf) == {"bootstrap.servers": "b:9092",
                                     "isolation.level": "read_uncommitted"}

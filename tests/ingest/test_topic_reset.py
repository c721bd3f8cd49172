"""A topic deleted and created again under a worker's state (on_reset): the worker never
serves the old rows as current. `fail` stops with a message naming `rebuild`;
`rebuild` drops the state and ends equal to the new topic's fold."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from connectors.kafka_admin import end_offsets
from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from materializer.errors import PartitionsNotHeld
from materializer.store import Store
from tests.support.workers import (
    materialize,
    read_topic,
    start_worker,
    unique,
    wait_until,
    write_config,
)


def _body(topic: str, on_reset: str) -> str:
    return f"""\
tables:
  - name: shop.users
    topic: {topic}
    columns: {{id: int, name: string}}
    primary_key: [id]
    key_format: int
    value_format: json
    on_reset: {on_reset}
"""


def _records(n: int, tag: str) -> list[tuple[bytes | None, bytes | None]]:
    return [(i.to_bytes(4, "big"), json.dumps({"name": f"{tag}{i}"}).encode())
            for i in range(n)]


def _recreate(broker: DevBroker, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.delete_topics([topic])[topic].result(15)
    wait_until(lambda: topic not in admin.list_topics(timeout=5).topics, 15, "the deletion")
    broker.create_topic(topic, partitions=2)


def rows_by_id(data: Path, running: bool = False) -> dict[int, str]:
    """shop.users' rows as {id: name}; `running`: {} while a partition is marked revoked (a running
    worker between assignments), for `wait_until` to ask again."""
    with Store.open(data) as store:
        try:
            return {r["id"]: r["name"] for r in store.table("shop.users").scan()}
        except PartitionsNotHeld:
            if not running:
                raise
            return {}


def test_a_stopped_worker_refuses_a_recreated_topic(session_broker: DevBroker,
                                                     tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("users"), partitions=2)
    cfg = write_config(tmp_path / "t.yaml", session_broker, _body(topic, "fail"))
    ends = produce_records(session_broker.kafka_config(), topic, _records(300, "old"))
    materialize(cfg, {"shop.users": ends})
    _recreate(session_broker, topic)
    produce_records(session_broker.kafka_config(), topic, _records(20, "new"))
    done = subprocess.run([sys.executable, "-m", "materializer", "run", str(cfg), "--no-api"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "was deleted and created again" in done.stderr
    assert "materializer rebuild" in done.stderr and "Traceback" not in done.stderr


def test_a_topic_recreated_after_a_rebuild_is_refused_too(session_broker: DevBroker,
                                                          tmp_path: Path) -> None:
    """`rebuild` ties the new state to the topic it replayed: a recreation afterwards is
    noticed (it used to record no topic id, so the next start took the new topic for the
    old one and served old rows beside new ones, records skipped)."""
    topic = session_broker.create_topic(unique("users"), partitions=2)
    cfg = write_config(tmp_path / "t.yaml", session_broker, _body(topic, "fail"))
    ends = produce_records(session_broker.kafka_config(), topic, _records(30, "old"))
    materialize(cfg, {"shop.users": ends})
    rebuilt = subprocess.run([sys.executable, "-m", "materializer", "rebuild", str(cfg),
                              "shop.users"], capture_output=True, text=True, timeout=120)
    assert rebuilt.returncode == 0, rebuilt.stderr
    _recreate(session_broker, topic)
    # more records than before: no stored offset is past the end, only the id tells
    produce_records(session_broker.kafka_config(), topic, _records(40, "new"))
    done = subprocess.run([sys.executable, "-m", "materializer", "run", str(cfg), "--no-api"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "was deleted and created again" in done.stderr
    with Store.open(tmp_path / "data") as store:  # kept as it was, not served as current
        kept = store.relation("shop.users")
        assert kept.next_offsets() == ends and kept.revoked_partitions() == set(ends)
        assert sum(s["rows"] for s in kept.partition_stats()) == 30


def test_on_reset_rebuild_replays_the_new_topic(session_broker: DevBroker, tmp_path: Path
                                                ) -> None:
    """The topic is recreated while the worker is stopped (on the embedded broker, deleting
    a topic under a running consumer crashes librdkafka itself: see the README's limits)."""
    topic = session_broker.create_topic(unique("users"), partitions=2)
    cfg = write_config(tmp_path / "t.yaml", session_broker, _body(topic, "rebuild"))
    data = tmp_path / "data"
    ends = produce_records(session_broker.kafka_config(), topic, _records(300, "old"))
    materialize(cfg, {"shop.users": ends})
    assert len(rows_by_id(data)) == 300
    _recreate(session_broker, topic)
    produce_records(session_broker.kafka_config(), topic, _records(20, "new"))
    worker = start_worker(cfg)
    try:
        want = {i: f"new{i}" for i in range(20)}
        wait_until(lambda: rows_by_id(data, running=True) == want, 90,
                   "the table to equal the new topic", worker)
    finally:
        worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0


def test_on_reset_rebuild_announces_the_new_state_as_a_snapshot(session_broker: DevBroker,
                                                                 tmp_path: Path) -> None:
    """With `changes:`, the replay of the new topic stages no c/u/d events; once caught
    up, an op r event for every row of the new state."""
    topic = session_broker.create_topic(unique("users"), partitions=2)
    changes = unique("users.changes")
    body = _body(topic, "rebuild") + f"    changes: {{topic: {changes}}}\n"
    cfg = write_config(tmp_path / "t.yaml", session_broker, body)
    ends = produce_records(session_broker.kafka_config(), topic, _records(30, "old"))
    materialize(cfg, {"shop.users": ends})
    _recreate(session_broker, topic)
    produce_records(session_broker.kafka_config(), topic,
                    _records(10, "first") + _records(10, "new"))
    worker = start_worker(cfg)

    def events() -> list[dict[str, Any]]:
        got = read_topic(session_broker, changes, end_offsets(session_broker.kafka_config(),
                                                              changes))
        return [json.loads(v) for _, _, _, v in got if v is not None]

    try:
        wait_until(lambda: sum(e["op"] == "r" for e in events()) == 10, 90,
                   "a snapshot of the new state on the change topic", worker)
    finally:
        worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    got = events()
    old = [e for e in got if e["after"] is not None and e["after"]["name"].startswith("old")]
    assert len(old) == 30 and {e["op"] for e in old} == {"c"}  # before the recreation
    rest = [e for e in got if e not in old]
    assert sorted((e["op"], e["after"]["id"], e["after"]["name"])
                  for e in rest if e["op"] != "d") == [("r", i, f"new{i}") for i in range(10)]
    # the keys the new state lacks are deleted: a d event with the row the change topic
    # held (for consumers that skip tombstones), then a tombstone
    assert sorted((e["op"], e["before"]["id"], e["before"]["name"], e["source"]["snapshot"])
                  for e in rest if e["op"] == "d") == [("d", i, f"old{i}", "true")
                                                       for i in range(10, 30)]
    assert rows_by_id(tmp_path / "data") == {i: f"new{i}" for i in range(10)}

"""A stored next offset the broker does not hold (past the topic's end, before its log
start): the worker applies `on_reset` instead of serving the old rows as current, and
`status` shows the broker's END as it is and flags the partition.

The embedded broker reports neither topic ids for a store that never recorded one nor
OFFSET_OUT_OF_RANGE, so the integration tests forget the recorded topic id (a store
written by a broker without topic ids) and rely on the watermarks of fetch responses;
the broker-said path is covered by the unit tests of `OffsetWatch`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from confluent_kafka.admin import AdminClient

from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from materializer.ingest.topics import OffsetWatch
from materializer.store import Store
from tests.ingest.test_topic_reset import rows_by_id as _rows
from tests.support.workers import (
    materialize,
    run_cli,
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


def _truncated_topic(broker: DevBroker, tmp_path: Path, on_reset: str) -> tuple[Path, str]:
    """A store caught up with 300 records of a topic that now holds 20 others, and no
    recorded topic id to tell the two apart."""
    topic = broker.create_topic(unique("users"), partitions=2)
    cfg = write_config(tmp_path / "t.yaml", broker, _body(topic, on_reset))
    materialize(cfg, {"shop.users": produce_records(broker.kafka_config(), topic,
                                                    _records(300, "old"))})
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.delete_topics([topic])[topic].result(15)
    wait_until(lambda: topic not in admin.list_topics(timeout=5).topics, 15, "the deletion")
    broker.create_topic(topic, partitions=2)
    produce_records(broker.kafka_config(), topic, _records(20, "new"))
    forget = subprocess.run([sys.executable, "-c", _FORGET_TOPIC_ID, str(cfg)],
                            capture_output=True, text=True, timeout=60)
    assert forget.returncode == 0, forget.stderr
    return cfg, topic


_FORGET_TOPIC_ID = """
import sys
from materializer.catalog import load_catalog
from materializer.ingest.relation import open_relation
catalog = load_catalog(sys.argv[1])
rel = open_relation(catalog.relation("shop.users"), catalog.store_path)
with rel.writer.env.begin(write=True, db=rel.writer._meta_db) as txn:
    assert txn.delete(b"topic_id")
"""  # in a child: LMDB allows one open of an environment per process


def test_a_stored_offset_past_the_end_stops_the_worker_and_is_flagged(
        session_broker: DevBroker, tmp_path: Path) -> None:
    cfg, topic = _truncated_topic(session_broker, tmp_path, "fail")
    status = run_cli("status", str(cfg), "--json")
    assert status.returncode == 1, status.stderr
    rows = [json.loads(line) for line in status.stdout.splitlines()]
    assert sum(r["end_offset"] for r in rows) == 20  # the broker's END, never clamped
    assert {r["flag"] for r in rows} == {"past_end"}
    assert "materializer rebuild CONFIG shop.users" in status.stderr
    done = subprocess.run([sys.executable, "-m", "materializer", "run", str(cfg), "--no-api"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "is past the topic's end offset" in done.stderr
    assert f"topic {topic} partition" in done.stderr and "Traceback" not in done.stderr
    with Store.open(tmp_path / "data") as store:  # stopped, nothing dropped on its own,
        kept = store.relation("shop.users")     # and no longer served as current
        assert sum(s["rows"] for s in kept.partition_stats()) == 300
        assert kept.revoked_partitions() == set(kept.next_offsets())


def test_on_reset_rebuild_replays_a_topic_whose_end_is_before_the_stored_offset(
        session_broker: DevBroker, tmp_path: Path) -> None:
    cfg, _ = _truncated_topic(session_broker, tmp_path, "rebuild")
    worker = start_worker(cfg)
    try:
        want = {i: f"new{i}" for i in range(20)}
        wait_until(lambda: _rows(tmp_path / "data", running=True) == want, 90,
                   "the table to equal the new topic", worker)
    finally:
        worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    status = run_cli("status", str(cfg), "--json")
    assert status.returncode == 0, status.stderr
    assert all(json.loads(line)["flag"] is None for line in status.stdout.splitlines())


# ------------------------------------------------------------------ OffsetWatch, no broker


class _Source:
    """What OffsetWatch reads of a consumer: assignment, generation, cached watermarks and
    the partitions the broker refused."""

    def __init__(self, marks: dict[tuple[str, int], tuple[int, int]]) -> None:
        self.assigned = set(marks)
        self.marks = marks
        self.generation = 1
        self.out_of_range: dict[tuple[str, int], str] = {}

    def watermarks(self, topic: str, partition: int) -> tuple[int, int] | None:
        return self.marks.get((topic, partition))


def _relation(next_offsets: dict[int, int]) -> Any:
    spec = SimpleNamespace(kind="table", name="shop.users", topic="t")
    return SimpleNamespace(spec=spec, next_offsets=next_offsets)


def test_the_broker_saying_out_of_range_is_reported_at_once() -> None:
    rel = _relation({0: 50})
    source = _Source({("t", 0): (70, 90)})
    source.out_of_range[("t", 0)] = "Broker: Offset out of range"
    found = OffsetWatch(confirm_after=60).check({"t": [rel]}, source)
    assert [(f.partition, f.stored, f.low) for f in found] == [(0, 50, 70)]
    assert "before the log start offset 70" in found[0].message()
    assert "records 50..69" in found[0].message()


def test_watermarks_past_the_stored_offset_must_hold_within_one_assignment() -> None:
    rel = _relation({0: 500, 1: 5})
    source = _Source({("t", 0): (0, 20), ("t", 1): (0, 10)})
    watch = OffsetWatch(confirm_after=2.0, every=0.0)
    watch_check = watch.check
    assert watch_check({"t": [rel]}, source) == []      # a suspect, not yet a finding
    source.generation = 2                                # a new assignment starts over
    assert watch_check({"t": [rel]}, source) == []
    wait_until(lambda: watch_check({"t": [rel]}, source), 10, "the suspicion to hold")
    found = watch_check({"t": [rel]}, source)
    assert [(f.partition, f.stored, f.high) for f in found] == [(0, 500, 20)]
    assert "is past the topic's end offset 20" in found[0].message()
    rel.next_offsets[0] = 20                             # in range again: nothing found
    assert watch_check({"t": [rel]}, source) == []

"""`on_reset: rebuild` of a table with `changes:` whose topic came back with another
partition count: the change topic's placement moves from source partition to key hash, and
the snapshot's deletes still reach the partitions the old events are in, so a compacted
read of the change topic ends as a copy of the table (it kept old rows live and tombstoned
current ones: the tombstones went where the key's events go now)."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from connectors.kafka_admin import end_offsets
from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from materializer.store import Store
from tests.ingest.test_topic_reset import _body as reset_body
from tests.support.workers import (
    materialize,
    read_topic,
    start_worker,
    unique,
    wait_until,
    write_config,
)


def _records(n: int, tag: str) -> list[tuple[bytes | None, bytes | None]]:
    return [(i.to_bytes(4, "big"), json.dumps({"name": f"{tag}{i}"}).encode())
            for i in range(n)]


def test_snapshot_deletes_reach_the_old_placement(session_broker: DevBroker, tmp_path: Path
                                                  ) -> None:
    topic = session_broker.create_topic(unique("users"), partitions=2)
    changes = unique("users.changes")
    cfg = write_config(tmp_path / "t.yaml", session_broker, reset_body(topic, "rebuild")
                       + f"    changes: {{topic: {changes}}}\n")
    conf = session_broker.kafka_config()
    materialize(cfg, {"shop.users": produce_records(conf, topic, _records(40, "old"))})
    admin = AdminClient({"bootstrap.servers": session_broker.bootstrap})
    admin.delete_topics([topic])[topic].result(15)
    wait_until(lambda: topic not in admin.list_topics(timeout=5).topics, 15, "the deletion")
    session_broker.create_topic(topic, partitions=3)  # the change topic keeps 2
    produce_records(conf, topic, _records(10, "new"))

    def compacted() -> dict[bytes, list[Any]]:
        live: dict[tuple[int, bytes], Any] = {}
        for p, _, k, v in sorted(read_topic(session_broker, changes,
                                            end_offsets(conf, changes))):
            assert k is not None
            live[(p, k)] = None if v is None else json.loads(v)["after"]
        out: dict[bytes, list[Any]] = {}
        for (_, k), row in live.items():
            if row is not None:
                out.setdefault(k, []).append(row)
        return out

    want = {json.dumps({"id": i}, separators=(",", ":")).encode(): [{"id": i, "name": f"new{i}"}]
            for i in range(10)}
    worker = start_worker(cfg)
    try:
        wait_until(lambda: compacted() == want, 90, "the compacted change topic to equal "
                   "the new state", worker)
    finally:
        worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    with Store.open(tmp_path / "data") as store:
        assert {r["id"]: r["name"] for r in store.table("shop.users").scan()} == {
            i: f"new{i}" for i in range(10)}

"""A registry away for longer than `max.poll.interval.ms` keeps the worker in its consumer
group: the batch is retried with its partitions paused and the consumer polled
(`Source.hold`), so the group never takes its partitions, and every record is applied once
the registry answers.

Failed before: the retry waited without polling, librdkafka left the group ("Application
maximum poll interval (6000ms) exceeded ... leaving group") and the partitions were revoked
mid-outage (their lag unknown, another member free to take them)."""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Any

from connectors.producer import produce_records
from connectors.registry import RestRegistry
from materializer.devbroker import DevBroker
from materializer.formats.wire import avro_encoder
from materializer.status import read_status
from tests.support.registry_server import RegistryServer, avro_users
from tests.support.workers import start_worker, unique, wait_until, write_config

USER = {"type": "record", "name": "U",
        "fields": [{"name": "id", "type": "int"}, {"name": "name", "type": "string"}]}
MAX_POLL_MS = 6000  # librdkafka's least: max.poll.interval.ms >= session.timeout.ms


def test_a_registry_outage_past_max_poll_interval_keeps_the_group(
        tmp_path: Path, session_broker: DevBroker) -> None:
    with RegistryServer() as srv:
        topic = unique("t")
        session_broker.create_topic(topic, 2)
        enc = avro_encoder(RestRegistry(srv.url), f"{topic}-value", USER)
        produce_records(session_broker.kafka_config(), topic,
                        [(struct.pack(">i", i), enc({"id": i, "name": f"n{i}"}))
                         for i in range(6)])
        srv.fail_next = 10**9  # HTTP 503 from now on
        kafka = {**session_broker.kafka_config(), "session.timeout.ms": "6000",
                 "max.poll.interval.ms": str(MAX_POLL_MS)}
        store = tmp_path / "data"
        cfg = write_config(tmp_path / "tables.yaml", session_broker,
                           avro_users(srv.url, topic), kafka=kafka)
        worker = start_worker(cfg)

        def held() -> Any:
            s = read_status(store) or {}
            return s.get("retrying") and [p["lag"] for p in s.get("partitions") or ()] == [3, 3]

        wait_until(held, 60, "the batch to be retried with both partitions", worker)
        since = time.monotonic()

        def still_held_past_max_poll() -> bool:
            s = read_status(store) or {}
            parts = s.get("partitions") or []
            # every status of the outage: both partitions assigned; their lag unknown while
            # held (nothing is fetched: tests/ingest/test_held_lag.py), never below the truth
            assert s.get("retrying"), s
            assert sorted(p["partition"] for p in parts) == [0, 1], s
            assert all(p["lag"] in (None, 3) for p in parts), s
            return time.monotonic() - since > MAX_POLL_MS / 1000 * 1.6

        wait_until(still_held_past_max_poll, 60, "the outage to outlast max.poll.interval.ms",
                   worker)
        srv.fail_next = 0  # the registry answers again: every record is applied
        wait_until(lambda: (s := read_status(store) or {}).get("caught_up") is True
                   and s["metrics"]["records_applied_total"] == 6, 60,
                   "the worker to catch up", worker)
        s = read_status(store) or {}
        assert not s["metrics"]["records_rejected_total"]
        log = next(tmp_path.glob("worker-*.log")).read_text(errors="replace")
        assert "maximum poll interval" not in log and "revoked" not in log, log[-3000:]
        worker.terminate()
        assert worker.wait(30) == 0


def test_a_registry_lookup_that_may_outlast_max_poll_interval_is_warned_about(
        tmp_path: Path) -> None:
    """What `hold` cannot cover: one lookup (every attempt's timeout, every URL, the waits)
    runs without polling. The worker warns at start when it may outlast the interval."""
    from connectors.registry import FileRegistry
    from materializer.ingest.opening import registry_within_poll_interval

    reg = RestRegistry("http://127.0.0.1:1,http://127.0.0.1:2", {"timeout": "5"})
    assert reg.longest_lookup == 4 * 2 * 5 + 3 * 2.0
    said = registry_within_poll_interval(reg, {"max.poll.interval.ms": "10000"})
    assert said is not None and "46 s" in said and "max.poll.interval.ms (10 s)" in said
    assert registry_within_poll_interval(reg, {}) is None  # librdkafka's 300 s
    assert registry_within_poll_interval(FileRegistry(tmp_path), {"max.poll.interval.ms": "1"}) \
        is None

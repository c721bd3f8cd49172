"""A registry that is away holds the worker's batch (retried with backoff) and never makes
its valid records bad, and the worker's status says so while it waits: fresh, its partitions
lagging, the registry retries counted, what the batch waits on (/readyz's reason).

Failed before: while a batch was retried the status file was not written at all (its last
copy, from before the partitions were assigned, said no partitions and 0 registry retries
for the whole outage; /readyz said only 'the worker status is N s old', /metrics nothing)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from connectors.producer import produce_records
from connectors.registry import RestRegistry
from materializer.devbroker import DevBroker
from materializer.formats.wire import avro_encoder
from materializer.status import read_status, readiness
from tests.support.registry_server import RegistryServer, avro_users
from tests.support.workers import start_worker, unique, wait_until, write_config

USER = {"type": "record", "name": "U",
        "fields": [{"name": "id", "type": "int"}, {"name": "name", "type": "string"}]}


def test_registry_away_holds_the_batch_and_the_status_says_so(
        tmp_path: Path, session_broker: DevBroker) -> None:
    with RegistryServer() as srv:
        topic = unique("t")
        session_broker.create_topic(topic, 1)
        enc = avro_encoder(RestRegistry(srv.url), f"{topic}-value", USER)
        produce_records(session_broker.kafka_config(), topic,
                        [(struct.pack(">i", i), enc({"id": i, "name": f"n{i}"}))
                         for i in range(3)])
        srv.fail_next = 10**9  # HTTP 503 from now on
        cfg = write_config(tmp_path / "tables.yaml", session_broker,
                           avro_users(srv.url, topic))
        store = tmp_path / "data"
        worker = start_worker(cfg)

        def held() -> Any:
            s = read_status(store) or {}
            return (s.get("retrying") and s.get("partitions")
                    and s["metrics"]["registry_retries_total"] > 0 and s)

        s = wait_until(held, 60, "the status to say the batch is retried", worker)
        assert worker.poll() is None
        assert s["caught_up"] is False and not s["metrics"]["records_rejected_total"]
        assert s["partitions"][0]["lag"] == 3
        ready, reason = readiness(s)
        assert not ready and "a batch is retried" in reason and "schema registry" in reason

        srv.fail_next = 0  # the registry answers again: every record is applied
        wait_until(lambda: (read_status(store) or {}).get("caught_up") is True, 60,
                   "the worker to catch up", worker)
        s = read_status(store) or {}
        assert s["metrics"]["records_applied_total"] == 3
        assert not s["metrics"]["records_rejected_total"] and s["retrying"] is None
        worker.terminate()
        assert worker.wait(30) == 0

"""A partition held while a batch is retried (`Source.hold`: paused, nothing fetched) reads
its end offset, lag and "caught up" as unknown, during the hold and after it until a fetch
response comes: the end librdkafka cached is the one from before the pause, and records
written meanwhile are not in it.

Failed before: while the registry was away, a partition with 100 records waiting read lag 0
(the end cached before the pause); once the retried batch was applied, the worker wrote
`caught_up: true` with every lag 0 while those records were still to be read (the
partitions resumed, their end not fetched yet)."""

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
from tests.support.workers import applied_offsets, start_worker, unique, wait_until, write_config


def _user(extra: int) -> dict[str, Any]:
    fields: list[dict[str, Any]] = [{"name": "id", "type": "int"},
                                    {"name": "name", "type": "string"}]
    fields += [{"name": f"x{i}", "type": "int", "default": 0} for i in range(extra)]
    return {"type": "record", "name": "U", "fields": fields}


def _understated(status: dict[str, Any], truth: dict[int, int]) -> list[Any]:
    """Partitions whose lag the status says is lower than the records still to be read."""
    return [(p["partition"], p["next_offset"], p["lag"], truth[p["partition"]])
            for p in status.get("partitions") or ()
            if p["lag"] is not None and p["lag"] < truth[p["partition"]] - p["next_offset"]]


def test_a_held_partition_never_reads_caught_up_on_the_end_before_its_pause(
        tmp_path: Path, session_broker: DevBroker) -> None:
    with RegistryServer() as srv:
        topic = unique("t")
        session_broker.create_topic(topic, 2)
        conf = session_broker.kafka_config()
        reg = RestRegistry(srv.url)
        old = avro_encoder(reg, f"{topic}-value", _user(0))
        new = avro_encoder(reg, f"{topic}-value", _user(1))  # not seen by the worker yet
        truth = {0: 0, 1: 0}
        truth.update(produce_records(conf, topic, [
            (struct.pack(">i", i), old({"id": i, "name": "a"})) for i in range(20)]))
        store = tmp_path / "data"
        kafka = {**conf, "session.timeout.ms": "6000", "max.poll.interval.ms": "6000"}
        cfg = write_config(tmp_path / "tables.yaml", session_broker,
                           avro_users(srv.url, topic, on_error=None), kafka=kafka)
        worker = start_worker(cfg)
        wait_until(lambda: (read_status(store) or {}).get("caught_up") is True, 60,
                   "the worker to catch up", worker)
        srv.fail_next = 10**9  # the registry is away: the new schema's record is retried
        truth.update(produce_records(conf, topic, [
            (struct.pack(">i", 0), new({"id": 0, "name": "b", "x0": 1}))]))
        wait_until(lambda: (read_status(store) or {}).get("retrying"), 60,
                   "the batch to be retried", worker)
        truth.update(produce_records(conf, topic, [  # written while the partitions are held
            (struct.pack(">i", i), old({"id": i, "name": "c"})) for i in range(1, 201)]))
        assert all(truth[p] > 12 for p in truth), truth  # both partitions have records waiting
        written = time.time()
        since = time.monotonic()
        while time.monotonic() - since < 4:  # several statuses of the hold
            s = read_status(store) or {}
            if s.get("updated_at", 0) > written:  # written after those records
                assert not _understated(s, truth), s
            time.sleep(0.02)
        srv.fail_next = 0
        deadline = time.monotonic() + 60
        while True:  # until every record is applied, no status says caught up or lag 0
            done = applied_offsets(store, "users") == truth
            s = read_status(store) or {}
            if done:
                break
            assert s.get("caught_up") is not True and not _understated(s, truth), s
            assert time.monotonic() < deadline, f"not applied: {applied_offsets(store, 'users')}"
            time.sleep(0.01)
        wait_until(lambda: (read_status(store) or {}).get("caught_up") is True, 60,
                   "the worker to catch up after the outage", worker)
        worker.terminate()
        assert worker.wait(30) == 0

"""While a relation's change-event outbox is full (its change topic does not take the
events), ingestion waits and the status file keeps being written, saying what it waits on
and not caught up: before, that branch of the worker's loop skipped the status write, so
`worker.json` aged until readers took the worker for stopped (h107)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from materializer.devbroker import DevBroker
from materializer.status import read_status
from tests.support.workers import kafka_yaml, unique


def test_a_full_outbox_keeps_the_status_written_and_says_so(session_broker: DevBroker,
                                                            tmp_path: Path) -> None:
    from materializer.catalog import load_catalog
    from materializer.ingest.worker import Worker

    broker = session_broker
    src = broker.create_topic(unique("full-src"), 1)
    store = tmp_path / "data"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        kafka_yaml(broker) + f"group: {unique('g')}\nstore:\n  path: {store}\n"
        f"tables:\n  - name: t\n    topic: {src}\n    columns: {{id: string, n: int}}\n"
        f"    primary_key: [id]\n    key_format: string\n    value_format: json\n"
        f"    changes: {{topic: {unique('full-changes')}}}\n")
    worker = Worker(load_catalog(str(cfg)))
    rel = worker.relations[0]
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while rel.outbox is None:  # attached by `run`
            assert time.monotonic() < deadline, "no outbox attached"
            time.sleep(0.01)
        rel.outbox.max_backlog = -1  # full whatever it holds: the change topic takes nothing
        seen: list[float] = []
        deadline = time.monotonic() + 30
        while len(seen) < 3:
            assert time.monotonic() < deadline, f"the status file was not rewritten: {seen}"
            status = read_status(store)
            if status is not None and status.get("updated_at") not in seen and \
                    isinstance(status.get("retrying"), str):
                seen.append(status["updated_at"])
                assert "outbox is full" in status["retrying"]
                assert status["caught_up"] is False
            time.sleep(0.05)
        rel.outbox.max_backlog = 100_000  # the change topic takes events again
        assert status is not None
        deadline = time.monotonic() + 30
        while True:
            status = read_status(store)
            if status is not None and status.get("retrying") is None and \
                    status.get("updated_at", 0) > seen[-1]:
                break
            assert time.monotonic() < deadline, "the status kept saying the outbox is full"
            time.sleep(0.05)
    finally:
        worker.stop_event.set()
        thread.join(30)
    assert not thread.is_alive()

"""The ingest loop's collector settings (materializer.gc_tuning): set by `settle()`, and in
force in a real `materializer run` process (its status counts its collections)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from materializer.status import read_status
from tests.e2e.test_e2e import TABLE, changelog
from tests.support.workers import caught_up, start_worker, unique, wait_until, write_config


def test_settle_raises_the_young_threshold_and_freezes_nothing() -> None:
    code = ("import gc; from materializer import gc_tuning as t; "
            "assert gc.get_threshold()[0] < t.YOUNG_THRESHOLD; "  # 700, 2000 from 3.13
            "before = gc.get_threshold(); t.settle(); "
            "assert gc.get_threshold() == (t.YOUNG_THRESHOLD, *before[1:]), gc.get_threshold(); "
            "assert gc.get_freeze_count() == 0, gc.get_freeze_count(); "
            "n = t.collections(); gc.collect(); assert t.collections() == n + 1")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


def _collections(store: Path) -> int:
    status = read_status(store) or {}
    return int(status["metrics"]["process"]["gc_collections_total"])


@pytest.mark.integration
def test_the_worker_collects_rarely_while_it_ingests(session_broker: DevBroker,
                                                     tmp_path: Path) -> None:
    """30,000 records allocate some 100,000 containers: CPython's default threshold (700;
    2000 from 3.13) collected 53 times here; the worker's, a few times at most."""
    topic = session_broker.create_topic(unique("users"), partitions=2)
    cfg = write_config(tmp_path / "t.yaml", session_broker, TABLE.format(topic=topic))
    store = tmp_path / "data"
    run = start_worker(cfg, "--no-api")
    try:  # started and idle: the collections of the start-up are behind it
        wait_until(lambda: (read_status(store) or {}).get("assigned"), 60,
                   "the worker to hold its partitions", run)
        before = _collections(store)
        records, _, _ = changelog(30_000, 3_000, seed=31)
        ends = produce_records(session_broker.kafka_config(), topic, records)
        wait_until(caught_up(store, "shop.users", ends), 120, "the catch-up", run)
        status_after = (read_status(store) or {}).get("updated_at", 0)
        wait_until(lambda: (read_status(store) or {}).get("updated_at", 0) > status_after, 10,
                   "a status written after the catch-up", run)
        assert _collections(store) - before < 20
    finally:
        run.send_signal(signal.SIGTERM)
        assert run.wait(60) == 0

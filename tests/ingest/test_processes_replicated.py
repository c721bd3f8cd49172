"""A `replicated: true` table under `run --processes 2`: worker 0 alone reads it, and a
worker without it (started again after a kill -9) must not record the store's declared
relations without it (readers then refused the table as no longer declared: HTTP 404 for
every key)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from materializer.store import Store
from tests.support.workers import (
    child_status,
    past_crash_loop,
    start_worker,
    unique,
    wait_until,
    write_config,
)


def _table(name: str, topic: str, replicated: bool) -> str:
    return (f"  - name: {name}\n    topic: {topic}\n    columns: {{id: int, v: string}}\n"
            "    primary_key: [id]\n    key_format: int\n    value_format: json\n"
            + ("    replicated: true\n" if replicated else ""))


def _v(store: Path, name: str, key: int) -> object:
    with Store.open(store) as s:
        row = s.table(name).get(key)
    return None if row is None else row["v"]


@pytest.mark.integration
def test_a_restarted_worker_keeps_the_replicated_table_declared(
        session_broker: DevBroker, tmp_path: Path) -> None:
    rep = session_broker.create_topic(unique("rep"), partitions=2)
    grp = session_broker.create_topic(unique("grp"), partitions=2)
    conf = session_broker.kafka_config()
    for topic in (rep, grp):
        produce_records(conf, topic, [(i.to_bytes(4, "big"), json.dumps({"v": "a"}).encode())
                                      for i in range(20)])
    cfg = write_config(tmp_path / "t.yaml", session_broker,
                       "tables:\n" + _table("r", rep, True) + _table("g", grp, False))
    store = tmp_path / "data"
    run = start_worker(cfg, "--processes", "2")
    try:
        wait_until(lambda: all(child_status(store, i).get("caught_up") for i in (0, 1)), 90,
                   "both workers to catch up", run)
        victim = child_status(store, 1)["pid"]
        wait_until(lambda: past_crash_loop(victim), 30, "worker 1 to be 5 s old", run)
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: child_status(store, 1).get("pid") not in (None, victim), 90,
                   "worker 1 to be started again", run)
        produce_records(conf, rep, [(i.to_bytes(4, "big"), json.dumps({"v": "b"}).encode())
                                    for i in range(20)])
        wait_until(lambda: child_status(store, 1).get("caught_up"), 90,
                   "worker 1 to be running again", run)
        assert json.loads((store / "declared.json").read_text()) == ["public.g", "public.r"]
        wait_until(lambda: all(_v(store, "r", i) == "b" for i in range(20)), 60,
                   "the replicated table's latest rows", run)
    finally:
        run.send_signal(signal.SIGTERM)
    assert run.wait(60) == 0

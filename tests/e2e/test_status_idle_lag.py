"""`materializer status` when no worker applies the store: a line names how many records
wait and that no worker applies them (it said only "the worker stopped" beside a LAG
above 0). The exit code stays 0, as SPEC's "0 success" (status reported what is; exit 1
is for what it could not report: the broker, a topic, an END unknown, a flagged
partition); a running worker catching up exits 0 too."""

from __future__ import annotations

import json
from pathlib import Path

from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from tests.support.workers import (
    USERS_TABLE,
    materialize,
    run_cli,
    start_worker,
    unique,
    wait_until,
    worker_running,
    write_config,
)


def _records(keys: range) -> list[tuple[bytes | None, bytes | None]]:
    return [(k.to_bytes(8, "big", signed=True), json.dumps({"name": f"n{k}"}).encode())
            for k in keys]


def test_status_exits_1_for_lag_no_worker_applies(session_broker: DevBroker,
                                                  tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("idle"), partitions=2)
    conf = session_broker.kafka_config()
    ends = produce_records(conf, topic, _records(range(40)))
    cfg = write_config(tmp_path / "t.yaml", session_broker, USERS_TABLE.format(topic=topic))
    materialize(cfg, {"shop.users": ends})  # the worker stopped (SIGTERM, exit 0)

    caught_up = run_cli("status", str(cfg))
    assert caught_up.returncode == 0, caught_up.stdout + caught_up.stderr
    assert "the worker stopped" in caught_up.stderr  # the note, not an error

    produce_records(conf, topic, _records(range(40, 47)))  # 7 records nobody applies
    idle = run_cli("status", str(cfg))
    assert idle.returncode == 0, idle.stdout + idle.stderr
    assert "the worker stopped" in idle.stderr
    assert ("materializer: 7 record(s) in" in idle.stderr
            and "of shop.users are not applied and no worker is applying them: start "
                "`materializer run`" in idle.stderr), idle.stderr
    as_json = run_cli("status", str(cfg), "--json")
    assert as_json.returncode == 0
    assert sum(json.loads(line)["lag"] for line in as_json.stdout.splitlines()) == 7

    worker = start_worker(cfg)  # running again: caught up, exit 0
    try:
        wait_until(worker_running(tmp_path / "data", worker), 60, "the worker to start", worker)
        wait_until(lambda: run_cli("status", str(cfg)).returncode == 0, 60,
                   "status to exit 0 with the worker running")
    finally:
        worker.terminate()
        assert worker.wait(30) == 0


def test_unapplied_lag_counts_partitions_behind_only() -> None:
    from materializer.report import unapplied_lag

    rows = [{"relation": "a", "partition": 0, "lag": 0},
            {"relation": "a", "partition": 1, "lag": 3},
            {"relation": "b", "partition": 0, "lag": None},  # unknown: said apart, exit 1
            {"relation": "b", "partition": 1, "lag": 2}]
    assert unapplied_lag(rows[:1]) is None
    said = unapplied_lag(rows)
    assert said is not None and said.startswith("5 record(s) in 2 partition(s) of a, b ")


def test_worker_state_tells_known_idle_from_unknown(tmp_path: Path) -> None:
    from materializer.report import worker_state

    note, idle = worker_state(str(tmp_path))  # no status file
    assert idle and note is not None and "no worker status file" in note
    (tmp_path / "worker.json").write_text(json.dumps({"pid": 1, "updated_at": 0}))
    note, idle = worker_state(str(tmp_path))  # a process not reported yet: not known
    assert not idle and note is not None

"""`run --processes N`: the merged status says caught up only when every partition a worker
held is held again. A worker killed -9 is started again with no partitions; until the group
gives them back, their records go unapplied, yet the merge used to say caught up (`/readyz`
200) from the survivor's partitions alone, for seconds."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from materializer.catalog.load import load_catalog
from materializer.devbroker import DevBroker
from materializer.ingest.processes import Supervisor, _Child, child_status_path
from materializer.ingest.status_merge import merge_statuses
from materializer.status import read_status, readiness
from materializer.store import StoreLock
from tests.support.workers import (
    child_status,
    past_crash_loop,
    start_worker,
    string_key_table,
    wait_until,
    write_config,
)


def _worker(parts: list[int], now: float) -> dict[str, Any]:
    return {"pid": 1, "updated_at": now, "started_at": now - 10,
            "assigned": [["t", p] for p in parts],
            "partitions": [{"relation": "public.t", "topic": "t", "partition": p,
                            "next_offset": 5, "end_offset": 5, "lag": 0} for p in parts],
            "caught_up": bool(parts), "metrics": {}}


def test_merge_is_not_caught_up_while_a_known_partition_has_no_worker() -> None:
    now = 1_800_000_000.0
    both = merge_statuses([_worker([0, 2], now), _worker([1, 3], now)], 9, False, now=now)
    assert both["caught_up"] is True
    known = {("public.t", p) for p in range(4)}
    # worker 0 killed and started again: it holds nothing yet
    restarted = [_worker([], now), _worker([1, 3], now)]
    assert merge_statuses(restarted, 9, False, now=now, known=known)["caught_up"] is False
    # worker 0's status removed (it is being started again): said plainly, not "56 years old"
    assert readiness(merge_statuses([None, _worker([1, 3], now)], 9, False, now=now),
                     now=now) == (False, "a worker process has not reported its status yet")
    back = [_worker([0, 2], now), _worker([1, 3], now)]
    assert merge_statuses(back, 9, False, now=now, known=known)["caught_up"] is True


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    """A supervisor of two workers of table t (topic t) whose steps the test takes itself:
    no broker, no worker process; the test writes the workers' status files."""
    cfg = tmp_path / "t.yaml"
    cfg.write_text(f"kafka:\n  bootstrap.servers: x:1\nstore:\n  path: {tmp_path / 'data'}\n"
                   "tables:\n  - name: t\n    topic: t\n    columns: {id: string, v: long}\n"
                   "    primary_key: [id]\n    key_format: string\n    value_format: json\n")
    catalog = load_catalog(str(cfg))
    lock = StoreLock.acquire(catalog.store_path, "a test")
    try:
        yield Supervisor(catalog, 2, lock, ["run", str(cfg)], threading.Event())
    finally:
        lock.release()


def _children(n: int) -> list[_Child]:
    return [_Child(i, None, 0.0) for i in range(n)]  # type: ignore[arg-type]  # not started


def _report(sup: Supervisor, index: int, parts: list[int]) -> None:
    """Worker `index` writes its status file: it holds `parts`, each caught up."""
    status = _worker(parts, time.time())
    child_status_path(sup.catalog.store_path, index).write_text(json.dumps(status))


def _merged(sup: Supervisor) -> tuple[bool, list[int]]:
    sup._merge_status(_children(2))
    s = read_status(sup.catalog.store_path) or {}
    return readiness(s)[0], sorted(p["partition"] for p in s["partitions"])


def test_merge_knows_every_partition_of_the_topic_from_the_start(supervisor: Supervisor) -> None:
    # a worker records the topic's partition count in the store before it joins the group
    supervisor.relations[0].writer.set_source_partitions(4)
    # worker 1 was given 1 and 3 and caught up; worker 0 was given 0 and 2 in the same
    # rebalance but its status (written once a second) predates it: their records are not
    # applied yet. The merge said caught up (/readyz 200) from worker 1's partitions alone.
    _report(supervisor, 0, [])
    _report(supervisor, 1, [1, 3])
    assert _merged(supervisor) == (False, [1, 3])
    _report(supervisor, 0, [0, 2])
    assert _merged(supervisor) == (True, [0, 1, 2, 3])


def test_a_killed_workers_partitions_stay_known_though_no_merge_listed_them(
        supervisor: Supervisor) -> None:
    # no partition count recorded (the broker did not answer the worker's first describe)
    _report(supervisor, 0, [])
    _report(supervisor, 1, [1, 3])
    _merged(supervisor)
    # worker 0 lists 0 and 2, and is killed before the next merge (a second) read that
    _report(supervisor, 0, [0, 2])
    supervisor._worker_killed(_children(2)[0], _children(2))
    assert not child_status_path(supervisor.catalog.store_path, 0).exists()
    assert _merged(supervisor) == (False, [1, 3])
    # started again, it holds nothing until the group gives 0 and 2 back (CI once saw
    # caught up here: "ready while partitions had no worker (held: [[1, 3], ...])")
    _report(supervisor, 0, [])
    assert _merged(supervisor) == (False, [1, 3])
    _report(supervisor, 0, [0, 2])
    assert _merged(supervisor) == (True, [0, 1, 2, 3])


def test_killed_worker_partitions_keep_the_merge_not_ready(tmp_path: Path,
                                                           session_broker: DevBroker) -> None:
    topic = session_broker.create_topic(partitions=4)
    producer = Producer({"bootstrap.servers": session_broker.bootstrap})
    for i in range(200):
        producer.produce(topic, key=str(i).encode(), value=json.dumps({"id": str(i), "v": i}))
    assert producer.flush(10) == 0
    cfg = write_config(tmp_path / "cfg.yaml", session_broker, string_key_table(topic))
    store = tmp_path / "data"
    run = start_worker(cfg, "--processes", "2")
    wait_until(lambda: (read_status(store) or {}).get("caught_up") is True
               and all(child_status(store, i).get("assigned") for i in (0, 1)), 90,
               "both workers to hold partitions and catch up", run)
    victim = child_status(store, 0)["pid"]
    wait_until(lambda: past_crash_loop(victim), 30, "the victim to be 5 s old", run)
    os.kill(victim, signal.SIGKILL)

    # until worker 0 is back and holds partitions again, every merged status is read:
    # none may say caught up while a partition has no worker
    wrong: list[Any] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        s = read_status(store) or {}
        held = {p["partition"] for p in s.get("partitions", [])}
        if readiness(s)[0] and held != {0, 1, 2, 3}:
            wrong.append(sorted(held))
        again = child_status(store, 0)
        if again.get("pid") not in (None, victim) and again.get("partitions") \
                and s.get("caught_up") is True:
            break
        assert run.poll() is None
        time.sleep(0.02)  # a sampling rate, not a synchronisation: the loop has a deadline
    else:
        raise AssertionError("worker 0 was not started again with partitions within 90 s")
    assert wrong == [], f"ready while partitions had no worker (held: {wrong[:3]})"
    run.send_signal(signal.SIGTERM)
    assert run.wait(30) == 0

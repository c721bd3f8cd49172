"""`run --processes N`: the merged status says caught up only when every partition a worker
held is held again. A worker killed -9 is started again with no partitions; until the group
gives them back, their records go unapplied, yet the merge used to say caught up (`/readyz`
200) from the survivor's partitions alone, for seconds."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from materializer.devbroker import DevBroker
from materializer.ingest.status_merge import merge_statuses
from materializer.status import read_status, readiness
from tests.support.workers import (
    child_status,
    past_crash_loop,
    start_worker,
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


def test_killed_worker_partitions_keep_the_merge_not_ready(tmp_path: Path,
                                                           session_broker: DevBroker) -> None:
    topic = session_broker.create_topic(partitions=4)
    producer = Producer({"bootstrap.servers": session_broker.bootstrap})
    for i in range(200):
        producer.produce(topic, key=str(i).encode(), value=json.dumps({"id": str(i), "v": i}))
    assert producer.flush(10) == 0
    cfg = write_config(tmp_path / "cfg.yaml", session_broker, f"""
tables:
  - name: t
    topic: {topic}
    columns: {{id: string, v: long}}
    primary_key: [id]
    key_format: string
    value_format: json
""")
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

"""lmdb:// with two workers of one app: a worker killed with kill -9 cannot mark its
partitions revoked (a clean stop does: tests/faust/test_faust_two_workers.py), and its
directory answered its last values as current until it restarted (probe h90: 84 stale
answers, deleted keys among them). The recovery now records the process that applies the
partitions beside other workers; readers refuse its rows (MemberNotRunning, HTTP 503) once
that process is gone. A worker active for every partition records none."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from materializer.errors import MemberNotRunning
from materializer.store import Store

WORKER = """
import asyncio, sys, time
from pathlib import Path
from faust.types import TP
from tests.faust.support import cl_event, make_app, store_of

active = {int(p) for p in sys.argv[2].split(",")}
store = store_of(make_app(Path(sys.argv[1])).Table("counts", default=int, key_type=str,
                                                   partitions=2))
topic = store.changelog_topic
store.apply_changelog_batch([cl_event(topic, 0, 0, b'"a"', b"1"),
                             cl_event(topic, 1, 0, b'"b"', b"2")], None, None)
asyncio.run(store.on_recovery_completed({TP(topic, p) for p in active},
                                        {TP(topic, p) for p in {0, 1} - active}))
print("recovered", flush=True)
time.sleep(600)
"""


def _worker(tmp_path: Path, active: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path), active],
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "recovered"
    return proc


def _killed(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


def test_a_killed_worker_beside_another_is_not_read_as_current(tmp_path: Path) -> None:
    proc = _worker(tmp_path, "0")  # active for partition 0, another worker for 1
    try:
        counts = Store.open(tmp_path / "tables").table("counts")
        assert counts.get("a")["value"] == 1  # its own partition, while it runs
    finally:
        _killed(proc)
    deadline = time.monotonic() + 60  # readers decide again at most every 0.1 s
    while time.monotonic() < deadline:
        try:
            counts.get("a")
        except MemberNotRunning as e:
            assert f"pid {proc.pid}" in str(e) and "killed" in str(e)
            break
        time.sleep(0.05)
    else:
        pytest.fail("the killed worker's rows were still read as current")
    with pytest.raises(MemberNotRunning):
        Store.open(tmp_path / "tables").table("counts").get("a")  # a new reader too


def test_a_killed_worker_active_for_every_partition_still_serves(tmp_path: Path) -> None:
    _killed(_worker(tmp_path, "0,1"))
    counts = Store.open(tmp_path / "tables").table("counts")
    assert counts.get("a")["value"] == 1 and counts.get("b")["value"] == 2

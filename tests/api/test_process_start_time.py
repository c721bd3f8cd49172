"""`process_start_time_seconds` (the API's) and `materializer_worker_process_start_time_seconds`
are one process's start time: the same figure at every scrape. It was computed as now minus
/proc/uptime (two clocks, 10 ms steps) and moved by milliseconds from call to call, so a
Prometheus `changes(process_start_time_seconds[5m]) > 0` restart alert fired at every scrape."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from materializer.procstats import process_stats

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="Linux /proc")


def test_the_start_time_is_the_same_at_every_call() -> None:
    seen = set()
    for _ in range(20):
        seen.add(process_stats()["start_time_seconds"])
        time.sleep(0.013)
    assert len(seen) == 1, sorted(seen)


def test_the_start_time_is_when_the_process_started() -> None:
    before = time.time()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        started = process_stats(child.pid)["start_time_seconds"]
    finally:
        child.kill()
        child.wait()
    # the uptime and the start ticks are in 1/100 s (btime, whole seconds, was up to 1 s off)
    assert before - 0.05 <= started <= time.time() + 0.05

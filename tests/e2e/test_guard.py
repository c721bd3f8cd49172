"""The autouse guard kills processes a test started through the shared helpers, in every
test module (it was blind where the helpers were imported under a second module name)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.support.workers import start_process

_PIDS: list[int] = []


def test_a_started_process_is_registered() -> None:
    proc = start_process([sys.executable, "-c", "import time; time.sleep(600)"])
    _PIDS.append(proc.pid)


def test_the_guard_killed_it_after_the_previous_test() -> None:
    (pid,) = _PIDS
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        alive = state != "Z"
    except OSError:
        alive = False
    if alive:
        os.kill(pid, 9)
    assert not alive, "the guard did not kill a process started by the previous test"

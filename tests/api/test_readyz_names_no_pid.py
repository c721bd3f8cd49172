"""The open `/readyz` answer (no token asked, SPEC: "caught up with every assigned
partition") says why a worker is not ready without naming its process id; the operator's
surfaces (`status`, the status file) still do.

Before, a worker killed or stopped by a signal was answered `the worker (pid N) is not
running` / `is stopped`, and with `run --processes N` `worker process I (pid N) is stopped`,
to anyone who can reach the port."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson

from materializer.api.readiness import ready_answer
from materializer.ingest.status_merge import merge_statuses
from materializer.report import worker_state_note
from materializer.status import write_status, writer_identity, writer_stopped
from tests.support.workers import wait_until


def _reason(store: Path) -> str:
    status, body = ready_answer(str(store))
    assert status == 503
    return str(orjson.loads(body)["reason"])


def _other(pid: int) -> dict[str, Any]:
    """The status identity (`pid`, `process`) of process `pid` on this machine."""
    here = str(writer_identity()["process"]).rsplit(":", 2)[0]
    start = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    return {"pid": pid, "process": f"{here}:{pid}:{start}"}


def _live(identity: dict[str, Any]) -> dict[str, Any]:
    part = {"relation": "public.t", "topic": "t", "partition": 0, "next_offset": 5,
            "end_offset": 5, "lag": 0}
    return {**identity, "updated_at": time.time(), "started_at": time.time() - 5,
            "partitions": [part], "assigned": [["t", 0]], "caught_up": True,
            "retrying": None, "metrics": {}, "stopping": False}


def test_readyz_of_a_gone_or_stopped_worker_names_no_pid(tmp_path: Path) -> None:
    proc = subprocess.Popen(["sleep", "60"])
    try:
        other = _other(proc.pid)
        pid = str(proc.pid)
        write_status(tmp_path, _live(other))
        assert ready_answer(str(tmp_path))[0] == 200
        proc.send_signal(signal.SIGSTOP)
        wait_until(lambda: writer_stopped(other), 60, "the process to be stopped")
        reason = _reason(tmp_path)
        assert "is stopped" in reason and pid not in reason, reason
        assert pid in (worker_state_note(str(tmp_path)) or "")  # the operator's `status`

        merged = merge_statuses([_live(writer_identity()), _live(other)], 1, False)
        assert pid in merged["not_caught_up"]  # the status file keeps it
        write_status(tmp_path, {**merged, **writer_identity()})
        reason = _reason(tmp_path)
        assert "worker process 1 is stopped" in reason and pid not in reason, reason
    finally:
        proc.kill()
        proc.wait()
    write_status(tmp_path, _live(other))  # its writer gone
    reason = _reason(tmp_path)
    assert "is not running" in reason and pid not in reason, reason
    assert pid in (worker_state_note(str(tmp_path)) or "")
    assert str(os.getpid()) not in reason

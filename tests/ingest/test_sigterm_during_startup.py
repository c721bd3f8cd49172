"""SIGTERM while `run` is still starting up, its broker away: the start-up steps that wait
for the broker (the change topic's placement, the topic check, the consumers) are skipped
once the stop is asked, and an outbox holding nothing looks nothing up at the shutdown, so
the worker exits 0 within the README's "about 10 s" (before: 12-16 s, each step waited)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from materializer.devbroker import free_port
from tests.support.workers import wait_until


def _config(tmp_path: Path, port: int) -> Path:
    cfg = tmp_path / "t.yaml"
    cfg.write_text(f"""\
kafka:
  bootstrap.servers: 127.0.0.1:{port}
group: startup-stop
store:
  path: {tmp_path / 'data'}
tables:
  - name: shop.users
    topic: users
    columns: {{id: int, name: string}}
    primary_key: [id]
    key_format: int
    value_format: json
    changes: {{topic: users.changes}}
""")
    return cfg


def _stop_during_startup(tmp_path: Path, port: int) -> tuple[int, float, str]:
    """Start `run`, SIGTERM it once it has joined the cluster (its start-up steps that ask
    the broker come next); its exit code, the seconds the stop took, and its log."""
    log = tmp_path / "worker.log"
    with log.open("wb") as sink:
        worker = subprocess.Popen([sys.executable, "-m", "materializer", "run",
                                   str(_config(tmp_path, port)), "--no-api"],
                                  stdout=subprocess.DEVNULL, stderr=sink)
    try:
        wait_until(lambda: "cluster: this worker is" in log.read_text(errors="replace"), 60,
                   "the worker to join the cluster", worker)
        t0 = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(40)
        return code, time.monotonic() - t0, log.read_text(errors="replace")
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


@pytest.mark.parametrize("broker", ["refused", "silent"])
def test_sigterm_during_startup_is_bounded(tmp_path: Path, broker: str) -> None:
    if broker == "refused":
        code, took, log = _stop_during_startup(tmp_path, free_port())
    else:  # accepts connections, never answers
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen(64)
            code, took, log = _stop_during_startup(tmp_path, silent.getsockname()[1])
    assert code == 0, log
    # one start-up step in progress (at most 5 s) and nothing to deliver at the shutdown
    assert took < 9, f"SIGTERM took {took:.1f} s:\n{log}"
    assert "Traceback" not in log
    assert "did not finish within the shutdown grace" not in log, log

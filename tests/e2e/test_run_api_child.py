"""`materializer run` and its lookup API child: the child dies with its parent, and the
worker stops (exit 1, with a message) when the child cannot serve."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from materializer.devbroker import DevBroker, free_port
from tests.support.workers import unique, wait_until, write_config


def _config(broker: DevBroker, tmp_path: Path, port: int) -> Path:
    topic = broker.create_topic(unique("users"), partitions=1)
    body = f"""\
api:
  listen: 127.0.0.1:{port}
tables:
  - name: shop.users
    topic: {topic}
    columns: {{id: int, name: string}}
    primary_key: [id]
    key_format: int
    value_format: json
"""
    return write_config(tmp_path / "t.yaml", broker, body)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def _serving(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def test_api_child_dies_when_run_is_killed(session_broker: DevBroker, tmp_path: Path) -> None:
    port = free_port()
    cfg = _config(session_broker, tmp_path, port)
    run = subprocess.Popen([sys.executable, "-m", "materializer", "run", str(cfg)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _serving(port), 60, "the API child to serve", run)
        (child,) = wait_until(lambda: _children(run.pid), 10, "the API child pid")
        os.kill(run.pid, signal.SIGKILL)
        run.wait(10)
        wait_until(lambda: _gone(child), 15, "the orphaned API child to exit")
        wait_until(lambda: not _serving(port), 60, "the port to be free")
    finally:
        if run.poll() is None:
            run.kill()


def test_run_stops_when_the_api_cannot_listen(session_broker: DevBroker, tmp_path: Path
                                              ) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = _config(session_broker, tmp_path, port)
        done = subprocess.run([sys.executable, "-m", "materializer", "run", str(cfg)],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "lookup API process exited" in done.stderr and "--no-api" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_names_the_signal_that_killed_its_api(session_broker: DevBroker, tmp_path: Path
                                                  ) -> None:
    """A kill -9 of the API child stops run (exit 1) with a message naming the signal, not
    a guess that the port is taken (the killed child said nothing)."""
    port = free_port()
    cfg = _config(session_broker, tmp_path, port)
    run = subprocess.Popen([sys.executable, "-m", "materializer", "run", str(cfg)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: _serving(port), 60, "the API child to serve", run)
        (child,) = wait_until(lambda: _children(run.pid), 10, "the API child pid")
        os.kill(child, signal.SIGKILL)
        _, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 1, err
    assert "lookup API process was killed by signal 9 (SIGKILL)" in err, err[-2000:]
    assert "already in use" not in err and "Traceback" not in err, err[-2000:]

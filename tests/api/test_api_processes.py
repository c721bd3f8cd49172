"""`api.processes: N`: `materializer serve` answers from N worker processes on one port,
stops all of them together (and they die with it), refuses a port someone else listens
on, and stops loudly when one of its processes dies. Real processes, real sockets."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from materializer.catalog.load import load_catalog
from materializer.devbroker import free_port
from materializer.errors import ConfigError
from tests.support.api import USERS, SpecWriter, user_row, user_row_json, wait_serving
from tests.support.workers import wait_until

CONFIG = """\
kafka:
  bootstrap.servers: 127.0.0.1:1
store:
  path: {store}
api:
  listen: "127.0.0.1:{port}"
  processes: {processes}
tables:
  - name: public.users
    topic: users
    columns: {{id: int, name: string, score: double, born: date, seen: timestamp,
               tags: "array<string>", blob: bytes, version: long, check: string}}
    primary_key: [id]
    key_format: json
    value_format: json
"""


def _config(tmp_path: Path, port: int, processes: object) -> Path:
    store = tmp_path / "data"
    if not store.exists():
        SpecWriter(str(store), USERS).write([(i, user_row(i)) for i in range(10)])
    cfg = tmp_path / "tables.yaml"
    cfg.write_text(CONFIG.format(store=store, port=port, processes=processes))
    return cfg


def _listeners(port: int) -> set[int]:
    """Pids of the processes holding a socket that listens on 127.0.0.1:`port`."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if f[1] == f"0100007F:{port:04X}" and f[3] == "0A":  # LISTEN
            inodes.add(f"socket:[{f[9]}]")
    pids = set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (d / "fd").iterdir()):
                pids.add(int(d.name))
        except OSError:
            continue
    return pids


def test_workers_die_with_a_killed_serve_process(tmp_path: Path) -> None:
    port = free_port()
    proc = _serve(_config(tmp_path, port, 2))
    try:
        assert wait_serving(f"http://127.0.0.1:{port}", proc)
        wait_until(lambda: _when_two(_listeners(port)), 60, "two processes to listen")
        proc.kill()
        proc.wait()
        wait_until(lambda: not _listeners(port), 30, "the workers to stop with it")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _when_two(pids: set[int]) -> set[int] | None:
    return pids if len(pids) == 2 else None


def _serve(cfg: Path) -> subprocess.Popen[str]:
    """`materializer serve CFG`, its stderr in `err.log` beside CFG."""
    with open(cfg.parent / "err.log", "w") as err:
        return subprocess.Popen([sys.executable, "-m", "materializer", "serve", str(cfg)],
                                stderr=err, text=True)


def _err(tmp_path: Path) -> str:
    return (tmp_path / "err.log").read_text()


pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")


def test_two_processes_serve_one_port_and_stop_together(tmp_path: Path) -> None:
    port = free_port()
    proc = _serve(_config(tmp_path, port, 2))
    try:
        url = f"http://127.0.0.1:{port}"
        assert wait_serving(url, proc), _err(tmp_path)
        pids = wait_until(lambda: _when_two(_listeners(port)), 60, "two processes to listen")
        assert {_parent(pid) for pid in pids} == {proc.pid}  # its two workers
        for i in range(20):  # fresh connections: the kernel spreads them over both
            with httpx.Client() as c:
                r = c.get(f"{url}/tables/users/rows/{i % 10}")
                assert r.status_code == 200 and r.json() == user_row_json(i % 10)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, _err(tmp_path)
    assert _listeners(port) == set()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def test_a_crashed_api_process_stops_the_others_loudly(tmp_path: Path) -> None:
    port = free_port()
    proc = _serve(_config(tmp_path, port, 2))
    try:
        assert wait_serving(f"http://127.0.0.1:{port}", proc)
        pids = wait_until(lambda: _when_two(_listeners(port)), 60, "two processes to listen")
        os.kill(min(pids), signal.SIGKILL)
        assert proc.wait(30) == 1
        err = _err(tmp_path)
        assert "a lookup API process exited unexpectedly" in err, err
        wait_until(lambda: not _listeners(port), 30, "the other worker to stop")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_port_another_process_listens_on_is_refused_not_shared(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # even one that shares
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        p = subprocess.run([sys.executable, "-m", "materializer", "serve",
                            str(_config(tmp_path, port, 2))],
                           capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p.stderr
    assert f"cannot listen on 127.0.0.1:{port} (api.listen)" in p.stderr


def test_api_processes_is_read_from_yaml_and_checked(tmp_path: Path) -> None:
    assert load_catalog(str(_config(tmp_path, 8080, 3))).api.processes == 3
    cfg = _config(tmp_path, 8080, 0)
    with pytest.raises(ConfigError) as e:
        load_catalog(str(cfg))
    assert "`api.processes` must be at least 1, not 0" in str(e.value)
    assert "line 7" in str(e.value.diagnostics[0])
    with pytest.raises(ConfigError, match="`api.processes` must be a whole number"):
        load_catalog(str(_config(tmp_path, 8080, "two")))

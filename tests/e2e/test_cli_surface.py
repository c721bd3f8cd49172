"""The command line's edges (probe h88), each through a real `materializer` process: flag
values out of range are usage errors (exit 2), output that cannot be written is one line and
exit 1 (never a traceback, never a silent exit 0), a `--url` or store path that cannot work
is refused before anything is asked or written, `demo` stopped by SIGTERM takes its broker
and worker with it, and `rebuild` without a broker names the broker it asked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from materializer.devbroker import DevBroker, free_port
from tests.support.workers import run_cli, unique, wait_until

TABLE = """\
tables:
  - name: t
    topic: {topic}
    columns: {{id: int, v: string}}
    primary_key: [id]
    key_format: int
    value_format: json
"""
NOT_UTF8 = os.fsdecode(b"h88-\xff\xfe")  # a file name in another encoding, as Python holds it


def _config(path: Path, bootstrap: str = "127.0.0.1:9", store: str | None = None) -> Path:
    """A declaration file; its broker is never reached unless a test says so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    store_line = f"store:\n  path: {store}\n" if store is not None else ""
    path.write_text(f"kafka:\n  bootstrap.servers: '{bootstrap}'\ngroup: {unique('g')}\n"
                    + store_line + TABLE.format(topic=unique("t")))
    return path


def _cli(*args: str, stdout: object = subprocess.PIPE, preexec_fn: object = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "materializer", *args], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=30,
                          preexec_fn=preexec_fn)  # type: ignore[call-overload]


@pytest.mark.parametrize("value", ["0", "-1", "1000001"])
def test_batch_size_out_of_range_is_a_usage_error(tmp_path: Path, value: str) -> None:
    """0 polled nothing for ever; -1 and past librdkafka's 1,000,000 stopped the worker with
    a ValueError traceback (after creating the store)."""
    cfg = _config(tmp_path / "cfg.yaml", store=str(tmp_path / "data"))
    done = run_cli("run", str(cfg), "--no-api", "--batch-size", value, timeout=20)
    assert done.returncode == 2, done.stderr
    assert "argument --batch-size: must be a number from 1 to 1,000,000" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()


def test_demo_records_below_one_is_a_usage_error() -> None:
    done = run_cli("demo", "--records", "0", timeout=20)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "argument --records: must be a number of at least 1" in done.stderr


@pytest.mark.parametrize("args", [("check", "{cfg}"), ("--version",), ("--help",)])
def test_output_to_a_full_device_is_exit_1(tmp_path: Path, args: tuple[str, ...]) -> None:
    """`check > /dev/full` ended with an OSError traceback, `--version > /dev/full` exited 0
    with its line lost."""
    cfg = _config(tmp_path / "cfg.yaml")
    argv = [a.format(cfg=cfg) for a in args]
    with open("/dev/full", "w") as full:
        done = _cli(*argv, stdout=full)
    assert done.returncode == 1, done.stderr
    assert done.stderr == "materializer: cannot write to standard output: No space left on device\n"


def test_output_to_a_closed_stdout_is_exit_1(tmp_path: Path) -> None:
    """`check >&-` exited 0 having printed nothing (Python drops print() when descriptor 1
    is closed); `scan >&-` ended with an AttributeError traceback."""
    cfg = _config(tmp_path / "cfg.yaml")
    done = _cli("check", str(cfg), preexec_fn=lambda: os.close(1))
    assert done.returncode == 1, done.stderr
    assert done.stderr == "materializer: standard output is closed\n"


def test_a_pipe_closed_early_is_still_141(tmp_path: Path) -> None:
    cfg = _config(tmp_path / "cfg.yaml")
    proc = subprocess.Popen([sys.executable, "-m", "materializer", "check", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before anything is read: the first write finds no reader
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(30) == 141
    assert err == b""


@pytest.mark.parametrize("url", ["notaurl", "ftp://x", "http://", "http://h:99999",
                                 f"http://{NOT_UTF8}"])
def test_a_url_that_cannot_work_is_a_usage_error(tmp_path: Path, url: str) -> None:
    """`--url notaurl` answered 'no worker answered' (exit 3, as if a cluster were away); a
    host that is not UTF-8 text ended with httpx's InvalidURL traceback."""
    cfg = _config(tmp_path / "cfg.yaml")
    done = _cli("get", str(cfg), "t", "1", "--url", url)
    assert done.returncode == 2, done.stderr
    assert "is not a worker's API URL: write http://host:port" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_store_path_that_is_not_utf8_is_refused_by_check(tmp_path: Path) -> None:
    """A relative store.path under a folder named in another encoding passed `check`, and
    `run`/`rebuild` ended with a UnicodeEncodeError traceback from LMDB (after creating the
    directory)."""
    cfg = _config(tmp_path / NOT_UTF8 / "cfg.yaml", store="./data")
    done = run_cli("check", str(cfg))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "line 5, column 9: `store.path` " in done.stderr
    assert "is not UTF-8 text, which LMDB needs" in done.stderr


def test_run_with_a_store_that_is_not_utf8_stops_before_writing(
        tmp_path: Path, session_broker: DevBroker) -> None:
    cfg = _config(tmp_path / "cfg.yaml", bootstrap=session_broker.bootstrap,
                  store=str(tmp_path / "data"))
    store = str(tmp_path / NOT_UTF8)
    done = run_cli("run", str(cfg), "--no-api", "--store", store, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "--store " in done.stderr and "is not UTF-8 text" in done.stderr
    assert "Traceback" not in done.stderr
    assert not os.path.exists(store)


def test_rebuild_without_a_broker_names_it(tmp_path: Path) -> None:
    """'no answer describing topic t within 3.0 s' did not say which broker was asked."""
    bootstrap = f"127.0.0.1:{free_port()}"  # nothing listens there
    cfg = _config(tmp_path / "cfg.yaml", bootstrap=bootstrap, store=str(tmp_path / "data"))
    done = run_cli("rebuild", str(cfg), "t", timeout=60)
    assert done.returncode == 1, done.stderr
    assert f"the Kafka broker(s) at {bootstrap} (bootstrap.servers)" in done.stderr


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_demo_stopped_by_sigterm_stops_its_broker_and_worker() -> None:
    """SIGTERM ended the demo at once (Python's default), leaving the embedded broker (a
    session of its own) and the demo's worker with its API running for ever."""
    proc = subprocess.Popen([sys.executable, "-m", "materializer", "demo", "--records", "2000"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    children: list[int] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the worker starts after this line
            if line.startswith("$ materializer run"):
                break
        children = wait_until(lambda: [c for c in _children(proc.pid) if _alive(c)], 30,
                              "the demo's children")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(40) == 128 + signal.SIGTERM
        wait_until(lambda: not any(_alive(c) for c in children), 10,
                   f"the demo's children {children} to exit")
    finally:
        for pid in [proc.pid, *children]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.parametrize("json_flag", [(), ("--json",)])
def test_snapshots_of_a_store_path_that_is_a_file_says_so(tmp_path: Path,
                                                          json_flag: tuple[str, ...]) -> None:
    """`snapshots` answered 'no snapshots yet' (exit 0) where every other command says the
    store.path is not a directory (exit 1)."""
    (tmp_path / "afile").write_text("")
    cfg = _config(tmp_path / "cfg.yaml", store=str(tmp_path / "afile"))
    done = run_cli("snapshots", *json_flag, str(cfg))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == ""
    assert "is not a directory: point `store.path` at a directory" in done.stderr

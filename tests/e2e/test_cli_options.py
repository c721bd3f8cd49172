"""Global options: `--version`, `--log-level` (`-v` = debug), `--log-format text|json`,
accepted before or after the command, defaulting to $MATERIALIZER_LOG_LEVEL and
$MATERIALIZER_LOG_FORMAT (which is how `run`'s API process inherits them)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from materializer.devbroker import DevBroker
from tests.support.workers import (
    run_cli,
    start_worker,
    unique,
    wait_until,
    worker_running,
    write_config,
)

ROOT = Path(__file__).resolve().parents[2]

# `check` replaced by a command that logs one record at each level
_LOGGING_CHILD = """
import logging, sys
from materializer import cli

def noisy(args):
    log = logging.getLogger("materializer.test")
    log.debug("at debug")
    log.info("at info, %s", "with args")
    log.warning("at warning: é")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("at error")
    return 0

cli.cmd_check = noisy
sys.exit(cli.main(sys.argv[1:]))
"""


def _logging(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MATERIALIZER_LOG")}
    return subprocess.run([sys.executable, "-c", _LOGGING_CHILD, *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT, env={**clean, **(env or {})})


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    done = run_cli("--version")
    assert done.returncode == 0
    assert done.stdout == f"materializer {version}\n"


def test_text_logs_at_info_by_default() -> None:
    done = _logging("check", "x.yaml")
    assert done.returncode == 0, done.stderr
    assert "at debug" not in done.stderr
    assert "INFO materializer.test: at info, with args" in done.stderr
    assert "WARNING materializer.test: at warning: é" in done.stderr
    assert "ValueError: boom" in done.stderr


@pytest.mark.parametrize("args", [
    ("--log-format", "json", "--log-level", "debug", "check", "x.yaml"),
    ("check", "x.yaml", "--log-format", "json", "-v"),
    ("-v", "check", "x.yaml", "--log-format=json"),
])
def test_json_lines(args: tuple[str, ...]) -> None:
    done = _logging(*args)
    assert done.returncode == 0, done.stderr
    records = _json_lines(done.stderr)
    assert [(r["level"], r["logger"], r["message"]) for r in records] == [
        ("debug", "materializer.test", "at debug"),
        ("info", "materializer.test", "at info, with args"),
        ("warning", "materializer.test", "at warning: é"),
        ("error", "materializer.test", "at error")]
    assert "ValueError: boom" in records[-1]["exc"]
    for r in records:
        assert set(r) <= {"ts", "level", "logger", "message", "exc"}
        assert r["ts"].endswith("Z") and len(r["ts"]) == len("2025-01-01T00:00:00.000Z")


def test_level_filters_and_the_command_option_wins() -> None:
    done = _logging("--log-level", "debug", "check", "x.yaml", "--log-level", "warning")
    assert "at info" not in done.stderr and "at warning" in done.stderr
    done = _logging("--log-level", "error", "check", "x.yaml")
    assert "at warning" not in done.stderr and "at error" in done.stderr


def test_environment_defaults_and_bad_values() -> None:
    done = _logging("check", "x.yaml", env={"MATERIALIZER_LOG_FORMAT": "json",
                                            "MATERIALIZER_LOG_LEVEL": "WARNING"})
    assert [r["level"] for r in _json_lines(done.stderr)] == ["warning", "error"]
    done = _logging("--log-level", "info", "check", "x.yaml",
                    env={"MATERIALIZER_LOG_LEVEL": "error"})
    assert "at info" in done.stderr
    done = _logging("check", "x.yaml", env={"MATERIALIZER_LOG_LEVEL": "loud"})
    assert done.returncode == 2
    assert "MATERIALIZER_LOG_LEVEL='loud' is not one of debug, info, warning, error" in \
        done.stderr
    done = run_cli("--log-format", "xml", "check", "x.yaml")
    assert done.returncode == 2 and "invalid choice: 'xml'" in done.stderr


def test_errors_are_json_lines_in_json_format(tmp_path: Path) -> None:
    path = tmp_path / "tables.yaml"
    path.write_text("kafka:\n  bootstrap.server: x\ntables: 7\n")
    done = run_cli("--log-format", "json", "check", str(path))
    assert done.returncode == 2
    records = _json_lines(done.stderr)
    assert [r["level"] for r in records] == ["error", "error"]
    assert records[0]["message"].startswith(f"{path}: line 2, column 3: unknown librdkafka")
    done = run_cli("check", str(path))
    assert done.stderr.startswith(f"{path}: line 2, column 3: unknown librdkafka")


@pytest.mark.integration
def test_run_logs_json(tmp_path: Path, session_broker: DevBroker) -> None:
    topic = session_broker.create_topic(unique("logs"), partitions=1)
    config = write_config(tmp_path / "tables.yaml", session_broker, f"""\
tables:
  - name: t
    topic: {topic}
    columns: {{id: int}}
    primary_key: [id]
    key_format: int
""")
    worker = start_worker(config, "--log-format", "json")
    wait_until(worker_running(tmp_path / "data", worker), 60, "the worker to start", worker)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    log = next(tmp_path.glob("worker-*.log")).read_text()
    records = _json_lines(log)
    assert records, "the worker logged nothing"
    assert any(r["message"].startswith("stopped after applying") and r["level"] == "info"
               for r in records)


def test_output_cut_short_by_its_reader_ends_quietly(tmp_path: Path) -> None:
    """`materializer scan ... | head` ended with a BrokenPipeError traceback; now exit 141
    (as a shell reports SIGPIPE) and nothing on stderr."""
    from materializer.specs import TableSpec
    from tests.support.api import SpecWriter, columns

    spec = TableSpec(name="public.t", topic="t", columns=columns({"id": "long", "v": "string"},
                                                                  ["id"]),
                     key_columns=("id",), key_format="json", value_format="json")
    SpecWriter(str(tmp_path / "data"), spec).write([(i, {"v": "x" * 100})
                                                    for i in range(20_000)])
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"kafka: {{bootstrap.servers: '127.0.0.1:9'}}\n"
                   f"store: {{path: '{tmp_path / 'data'}'}}\n"
                   "tables:\n  - name: t\n    topic: t\n    columns: {id: long, v: string}\n"
                   "    primary_key: [id]\n    key_format: json\n    value_format: json\n")
    proc = subprocess.Popen([sys.executable, "-m", "materializer", "scan", str(cfg), "t"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert json.loads(proc.stdout.readline())["id"] == 0
    proc.stdout.close()  # the reader is done: the next writes meet a closed pipe
    with proc.stderr:
        stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, stderr
    assert stderr == ""

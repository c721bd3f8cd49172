"""Helpers for integration tests: configs, worker processes, waiting on data, reading topics.

Every process started here is registered in `STARTED`, the one registry the autouse guard
(`tests.support.fixtures`) empties after each test, whatever module imported the helper.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from materializer.devbroker import DevBroker


def j(obj: object) -> bytes:
    """A record key or value as JSON bytes."""
    return json.dumps(obj).encode()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def kafka_yaml(broker: DevBroker, kafka: dict[str, str] | None = None) -> str:
    """The `kafka:` section: the broker's settings, then `kafka` (which may override)."""
    conf = {**broker.kafka_config(), **(kafka or {})}
    return "kafka:\n" + "".join(f"  {k}: '{v}'\n" for k, v in conf.items())


def write_config(path: Path, broker: DevBroker, body: str, group: str | None = None,
                 kafka: dict[str, str] | None = None) -> Path:
    """A declaration file with the broker's settings (and `kafka`'s), a unique group and a
    store beside it (`path.parent / "data"`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(kafka_yaml(broker, kafka) + f"group: {group or unique('g')}\n"
                    f"store:\n  path: {path.parent / 'data'}\n" + body)
    return path


def string_key_table(topic: str) -> str:
    """A declaration body: table `t` of `topic`, string keys, JSON values {id, v}."""
    return (f"tables:\n  - name: t\n    topic: {topic}\n    columns: {{id: string, v: long}}\n"
            "    primary_key: [id]\n    key_format: string\n    value_format: json\n")


STARTED: list[subprocess.Popen[bytes]] = []
_LOGS: dict[int, Path] = {}


def start_process(args: list[str]) -> subprocess.Popen[bytes]:
    """Any child process, killed by the guard after the test if still running."""
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    STARTED.append(proc)
    return proc


def start_worker(config: Path, *extra: str) -> subprocess.Popen[bytes]:
    """`materializer run CONFIG --no-api` as a real child process (killed after the test)."""
    log = config.parent / f"worker-{len(STARTED)}-{uuid.uuid4().hex[:6]}.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "materializer", "run", str(config),
                                 "--no-api", *extra], stdout=subprocess.DEVNULL, stderr=sink)
    _LOGS[proc.pid] = log
    STARTED.append(proc)
    return proc


def worker_running(store_path: Path, proc: subprocess.Popen[bytes]) -> Callable[[], bool]:
    """True once this worker process has entered its loop (it wrote worker.json)."""
    def check() -> bool:
        try:
            status = json.loads((store_path / "worker.json").read_text())
        except (OSError, ValueError):
            return False
        return bool(status.get("pid") == proc.pid)
    return check


def child_status(store_path: Path, index: int) -> dict[str, Any]:
    """Worker `index`'s own status file of `run --processes N` ({} while absent)."""
    import json

    from materializer.ingest.processes import child_status_path

    try:
        obj = json.loads(child_status_path(store_path, index).read_text())
    except (OSError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


def past_crash_loop(pid: int) -> bool:
    """Whether process `pid` has run longer than the supervisor's crash-loop window (a worker
    killed after that is started again)."""
    from materializer.ingest.processes import CRASH_LOOP
    from materializer.procstats import process_stats

    start = process_stats(pid).get("start_time_seconds")
    return start is not None and time.time() - start > CRASH_LOOP + 0.5


def run_cli(*args: str, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "materializer", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def wait_until(cond: Callable[[], Any], timeout: float, what: str,
               proc: subprocess.Popen[bytes] | None = None) -> Any:
    """Poll `cond` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            log = _LOGS.get(proc.pid)
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            pytest.fail(f"worker exited with {proc.returncode} while waiting for {what}:\n{tail}")
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def applied_offsets(store_path: Path, relation: str) -> dict[int, int]:
    """Per partition, the next offset the store says it will apply ({} before it exists)."""
    from materializer.errors import NotFound
    from materializer.store import Store

    try:
        with Store.open(store_path) as store:
            return store.relation(relation).next_offsets()
    except NotFound:
        return {}


def caught_up(store_path: Path, relation: str, ends: dict[int, int]) -> Callable[[], bool]:
    def check() -> bool:
        got = applied_offsets(store_path, relation)
        return all(got.get(p, 0) >= e for p, e in ends.items())
    return check


def materialize(config: Path, ends: dict[str, dict[int, int]], timeout: float = 90) -> None:
    """Run a worker until every relation in `ends` has applied up to its end offsets,
    then stop it with SIGTERM and expect exit code 0."""
    import signal

    worker = start_worker(config)
    try:
        for relation, relation_ends in ends.items():
            wait_until(caught_up(config.parent / "data", relation, relation_ends), timeout,
                       f"{relation} to catch up", worker)
    finally:
        worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0


def read_topic(broker: DevBroker, topic: str, ends: dict[int, int], timeout: float = 60
               ) -> list[tuple[int, int, bytes | None, bytes | None]]:
    """Every record of a topic up to `ends`, as (partition, offset, key, value)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("reader"),
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in ends])
    out: list[tuple[int, int, bytes | None, bytes | None]] = []
    seen = {p: 0 for p in ends}
    deadline = time.monotonic() + timeout
    try:
        while any(seen[p] < e for p, e in ends.items()):
            if time.monotonic() > deadline:
                pytest.fail(f"could not read back {topic}: {seen} of {ends}")
            for m in c.consume(10_000, 0.5):
                if m.error() is None:
                    out.append((m.partition(), m.offset(), m.key(), m.value()))
                    seen[m.partition()] = m.offset() + 1
    finally:
        c.close()
    return out


USERS_TABLE = """\
tables:
  - name: shop.users
    topic: {topic}
    columns: {{id: long, name: string}}
    primary_key: [id]
    key_format: long
    value_format: json
"""
"""A users table on `{topic}` with 8-byte keys (format with topic=...)."""

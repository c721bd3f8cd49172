"""Shared fixtures: a real broker (see materializer.devbroker), configs, worker processes.

Integration tests get a fresh, uniquely named topic each and wait on the data itself
(applied offsets in LMDB), never on sleeps.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from materializer.devbroker import DevBroker

# Hypothesis profiles. The default, `derandomized`, draws the same examples on every run
# and machine, so the README's `python -m pytest` (and CI) never fails at random;
# HYPOTHESIS_PROFILE=random draws new examples each run, for hunting bugs locally. Tests'
# own @settings (max_examples, ...) still apply on top. `ci` is the same as the default.
_PROFILE = {"deadline": None, "print_blob": True,
            "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("derandomized", derandomize=True, **_PROFILE)
settings.register_profile("ci", derandomize=True, **_PROFILE)
settings.register_profile("random", derandomize=False, **_PROFILE)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or "derandomized")


@pytest.fixture(scope="session")
def session_broker() -> Iterator[DevBroker]:
    with DevBroker() as broker:
        yield broker


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def kafka_yaml(broker: DevBroker) -> str:
    return "kafka:\n" + "".join(f"  {k}: '{v}'\n" for k, v in broker.kafka_config().items())


def write_config(path: Path, broker: DevBroker, body: str, group: str | None = None) -> Path:
    """A declaration file with the broker's settings, a unique group and a store beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(kafka_yaml(broker) + f"group: {group or unique('g')}\n"
                    f"store:\n  path: {path.parent / 'data'}\n" + body)
    return path


_STARTED: list[subprocess.Popen[bytes]] = []
_LOGS: dict[int, Path] = {}


@pytest.fixture(autouse=True)
def _kill_leftover_workers() -> Iterator[None]:
    """A failing test must not leave a worker running."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def start_worker(config: Path, *extra: str) -> subprocess.Popen[bytes]:
    """`materializer run CONFIG --no-api` as a real child process (killed after the test)."""
    log = config.parent / f"worker-{len(_STARTED)}-{uuid.uuid4().hex[:6]}.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "materializer", "run", str(config),
                                 "--no-api", *extra], stdout=subprocess.DEVNULL, stderr=sink)
    _LOGS[proc.pid] = log
    _STARTED.append(proc)
    return proc


def worker_running(store_path: Path, proc: subprocess.Popen[bytes]) -> Callable[[], bool]:
    """True once this worker process has entered its loop (it wrote worker.json)."""
    import json

    def check() -> bool:
        try:
            status = json.loads((store_path / "worker.json").read_text())
        except (OSError, ValueError):
            return False
        return bool(status.get("pid") == proc.pid)
    return check


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

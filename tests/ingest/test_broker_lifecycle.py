"""The worker and an absent broker: a few clear log lines, no traceback, a bounded SIGTERM,
and catching up once the broker appears (change events included)."""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from connectors.kafka_log import RateLimit
from connectors.producer import produce_records
from materializer.devbroker import DevBroker, free_port
from tests.support.workers import applied_offsets, wait_until, worker_running


def test_rate_limit_passes_one_of_a_kind_per_minute() -> None:
    now = [0.0]
    f = RateLimit(every=60, clock=lambda: now[0])

    def rec(msg: str) -> logging.LogRecord:
        return logging.LogRecord("x", logging.WARNING, __file__, 1, msg, None, None)

    assert f.filter(rec("connect failed (after 3ms)"))
    assert not f.filter(rec("connect failed (after 7ms)"))  # same kind: digits ignored
    assert f.filter(rec("another thing"))
    now[0] = 61.0
    again = rec("connect failed (after 9ms)")
    assert f.filter(again) and "1 more like it" in again.getMessage()


def _config(tmp_path: Path, port: int, topic: str) -> Path:
    cfg = tmp_path / "t.yaml"
    cfg.write_text(f"""\
kafka:
  bootstrap.servers: 127.0.0.1:{port}
  session.timeout.ms: '6000'
  max.poll.interval.ms: '10000'
group: lifecycle
store:
  path: {tmp_path / 'data'}
tables:
  - name: shop.users
    topic: {topic}
    columns: {{id: int, name: string}}
    primary_key: [id]
    key_format: int
    value_format: json
    changes: {{topic: {topic}.changes}}
""")
    return cfg


def test_worker_waits_for_an_absent_broker_then_catches_up(tmp_path: Path) -> None:
    port = free_port()
    topic = "users-lifecycle"
    log = tmp_path / "worker.log"
    with log.open("wb") as sink:
        worker = subprocess.Popen([sys.executable, "-m", "materializer", "run",
                                   str(_config(tmp_path, port, topic)), "--no-api"],
                                  stdout=subprocess.DEVNULL, stderr=sink)
    try:
        wait_until(lambda: f"cannot reach the Kafka broker(s) at 127.0.0.1:{port}"
                   in log.read_text(errors="replace"), 30, "the unreachable-broker line",
                   worker)
        started = time.monotonic()
        wait_until(lambda: time.monotonic() - started > 8, 20, "8 s of an absent broker",
                   worker)
        lines = log.read_text(errors="replace").splitlines()
        assert len(lines) <= 12, "\n".join(lines)
        assert "Traceback" not in log.read_text(errors="replace")
        with DevBroker(prefer="tansu", port=port) as broker:
            broker.create_topic(topic, partitions=2)
            ends = produce_records(broker.kafka_config(), topic, [
                (i.to_bytes(4, "big"), f'{{"name": "u{i}"}}'.encode()) for i in range(200)])
            wait_until(lambda: all(applied_offsets(tmp_path / "data", "shop.users").get(p, 0)
                                   >= e for p, e in ends.items()), 60,
                       "the worker to catch up once the broker is there", worker)
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(15) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()  # reaped here: a failure must not warn in the next test
    assert "Traceback" not in log.read_text(errors="replace")


def test_status_exits_1_when_the_broker_is_away(tmp_path: Path) -> None:
    port = free_port()
    done = subprocess.run([sys.executable, "-m", "materializer", "status",
                           str(_config(tmp_path, port, "users"))],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"cannot reach the Kafka broker(s) at 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_sigterm_is_bounded_when_the_broker_hangs(tmp_path: Path) -> None:
    """A broker that accepts connections and never answers: SIGTERM still exits 0 within
    about 10 s (librdkafka's own request timeouts would take a minute)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        port = silent.getsockname()[1]
        cfg = _config(tmp_path, port, "users")
        with (tmp_path / "worker.log").open("wb") as sink:
            worker = subprocess.Popen([sys.executable, "-m", "materializer", "run", str(cfg),
                                       "--no-api"], stdout=subprocess.DEVNULL, stderr=sink)
        try:
            wait_until(worker_running(tmp_path / "data", worker), 60, "the worker's loop",
                       worker)
            t0 = time.monotonic()
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(30) == 0
            assert time.monotonic() - t0 < 12
        finally:
            if worker.poll() is None:
                worker.kill()

"""Lag, readiness and "caught up" say only what is known: unknown (503, no lag sample) rather
than a 0 that is not true.

- A worker that had caught up and then lost its broker used to keep saying lag 0 and
  caught up (`/readyz` 200) from librdkafka's last cached high watermark until its group
  session expired (45 s by default), although records could be arriving meanwhile.
- `run`'s progress line counted an unknown lag as 0 ("lag 0, caught up").
- `materializer status` left out a relation whose topic does not exist and exited 0.
- `/metrics` exported the per-partition lag of a status file the worker stopped writing
  (a worker killed -9): `materializer_partition_lag 0` for as long as the file stayed.
- After a kill -9 of the worker, `/readyz` of a `serve` beside it said 200 for up to
  `STALE_AFTER_S`.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from connectors.kafka import AssignedSource
from connectors.kafka_admin import partition_count
from connectors.kafka_reach import Reach
from materializer.api.metrics import Exposition, add_worker_metrics
from materializer.api.readiness import ready_answer
from materializer.devbroker import DevBroker
from materializer.ingest.progress import Progress
from materializer.status import (
    STALE_AFTER_S,
    read_status,
    readiness,
    writer_gone,
    writer_identity,
)
from tests.support.workers import (
    run_cli,
    start_worker,
    string_key_table,
    unique,
    wait_until,
    write_config,
)


def _config(tmp_path: Path, broker: DevBroker, topic: str) -> Path:
    # a group session long enough to outlast the checks below (librdkafka's default is
    # 45 s): without the fix the worker kept its assignment, and said lag 0, for all of it.
    # Not the default itself: the embedded broker takes about half the session to let a
    # consumer join (22 s at 45 s, 9 s at 20 s)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"""\
kafka:
  bootstrap.servers: '{broker.bootstrap}'
  session.timeout.ms: '20000'
  max.poll.interval.ms: '20000'
group: {unique('g')}
store:
  path: {tmp_path / 'data'}
""" + string_key_table(topic))
    return cfg


def _status(store: Path) -> dict[str, Any]:
    return read_status(store) or {}


def test_broker_gone_after_caught_up_makes_lag_unknown_and_not_ready(
        tmp_path: Path, own_broker: DevBroker) -> None:
    topic = own_broker.create_topic(partitions=2)
    producer = Producer({"bootstrap.servers": own_broker.bootstrap})
    for i in range(50):
        producer.produce(topic, key=str(i).encode(), value=json.dumps({"id": str(i), "v": i}))
    assert producer.flush(10) == 0
    del producer  # no client of ours left retrying the stopped broker
    store = tmp_path / "data"
    worker = start_worker(_config(tmp_path, own_broker, topic))
    wait_until(lambda: _status(store).get("caught_up") is True, 60, "the worker to catch up",
               worker)
    assert sum(p["next_offset"] for p in _status(store)["partitions"]) >= 50
    assert ready_answer(str(store))[0] == 200

    own_broker.stop()

    def lag_unknown() -> bool:
        s = _status(store)
        parts = s.get("partitions") or []
        return (readiness(s)[0] is False and len(parts) == 2
                and all(p["lag"] is None and p["end_offset"] is None for p in parts))

    # well within the 20 s session: the partitions are still assigned, their lag unknown
    wait_until(lag_unknown, 15, "the lag to read unknown with the broker gone", worker)
    s = _status(store)
    assert s["caught_up"] is False and len(s["assigned"]) == 2
    code, body = ready_answer(str(store))
    assert code == 503 and orjson.loads(body)["ready"] is False
    assert "0 partition(s) lagging, 2 with an unknown end offset" in orjson.loads(body)["reason"]
    exp = Exposition()
    add_worker_metrics(exp, s)
    text = exp.text()
    assert "materializer_partition_lag{" not in text
    assert "materializer_worker_ready 0" in text
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)


def _status_at(updated_at: float, stopping: bool = False) -> dict[str, Any]:
    return {"pid": 1, "updated_at": updated_at, "started_at": updated_at - 100,
            "stopping": stopping, "assigned": [["t", 0]], "caught_up": True,
            "partitions": [{"relation": "public.t", "topic": "t", "partition": 0,
                            "next_offset": 10, "end_offset": 10, "lag": 0}],
            "metrics": {"records_applied_total": 10}}


def test_metrics_export_no_lag_from_a_stale_status() -> None:
    now = 1_800_000_000.0
    fresh = Exposition()
    add_worker_metrics(fresh, _status_at(now - 1), now=now)
    assert 'materializer_partition_lag{relation="public.t",topic="t",partition="0"} 0' \
        in fresh.text()
    assert "materializer_worker_ready 1" in fresh.text()

    stale = Exposition()  # the worker was killed -9: its last file stays behind
    add_worker_metrics(stale, _status_at(now - STALE_AFTER_S - 1), now=now)
    text = stale.text()
    assert "materializer_worker_ready 0" in text
    assert "materializer_partition_lag" not in text
    assert "materializer_partition_end_offset" not in text
    assert "materializer_worker_status_age_seconds 11" in text

    stopped = Exposition()  # a clean stop: the last status says stopping
    add_worker_metrics(stopped, _status_at(now - 1, stopping=True), now=now)
    assert "materializer_partition_lag" not in stopped.text()


def test_status_names_a_relation_whose_topic_does_not_exist(tmp_path: Path,
                                                             session_broker: DevBroker) -> None:
    topic = session_broker.create_topic(partitions=1)
    gone = unique("never-created")
    cfg = write_config(tmp_path / "cfg.yaml", session_broker, f"""
tables:
  - name: here
    topic: {topic}
    columns: {{id: string}}
    primary_key: [id]
    key_format: string
    value_format: json
  - name: gone
    topic: {gone}
    columns: {{id: string}}
    primary_key: [id]
    key_format: string
    value_format: json
""")
    r = run_cli("status", str(cfg))
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"public.gone: its topic {gone} does not exist" in r.stderr
    assert "public.here" in r.stdout
    assert partition_count(session_broker.kafka_config(), gone) == 0  # asking created nothing


def test_progress_line_says_unknown_not_caught_up() -> None:
    parts = [{"relation": "t", "partition": 0, "lag": 0},
             {"relation": "t", "partition": 1, "lag": None}]
    line = Progress.line(parts, {"t": 10}, {"t": 10}, 10.0)
    assert "caught up" not in line and "lag 0" not in line
    assert "t: 0 rec/s, lag unknown (1 partition(s) with no current end offset)" in line


def test_progress_line_of_a_table_holding_no_partition_is_not_caught_up() -> None:
    line = Progress.line([], {"t": 10}, {"t": 10}, 10.0)  # its partitions went elsewhere
    assert "caught up" not in line and "lag 0" not in line
    assert line == "t: 0 rec/s, no partitions assigned, lag unknown"


def _stats(state: str, rxidle_us: int, leader: int = 111, fetchq: int = 0) -> str:
    return json.dumps({
        "brokers": {"127.0.0.1:9092/111": {"nodeid": 111, "state": state, "rxidle": rxidle_us},
                    "GroupCoordinator": {"nodeid": -1, "state": "UP", "rxidle": 1000}},
        "topics": {"t": {"partitions": {
            "0": {"leader": leader, "fetchq_cnt": fetchq},
            "-1": {"leader": -1, "fetchq_cnt": 0}}}}})


def test_reach_rules_from_librdkafka_statistics() -> None:
    now = [100.0]
    reach = Reach(fetch_wait_ms=100, clock=lambda: now[0])
    assert reach.reached("t", 0)  # no statistics yet: the end, if any, is a fresh fetch's
    reach.on_stats(_stats("UP", 200_000))
    assert reach.reached("t", 0) and reach.reached("t", 1)  # 1: not shown yet (assigned since)
    reach.on_stats(_stats("UP", 9_000_000))  # up, but silent for 9 s
    assert not reach.reached("t", 0)
    reach.on_stats(_stats("UP", 9_000_000, fetchq=5))  # silent: its queue is full
    assert reach.reached("t", 0)
    reach.on_stats(_stats("DOWN", 200_000, fetchq=5))
    assert not reach.reached("t", 0)
    reach.on_stats(_stats("UP", 200_000, leader=-1))  # leader unknown
    assert not reach.reached("t", 0)
    reach.on_stats(_stats("UP", 200_000))
    now[0] += 6  # the statistics stopped coming (the worker does not poll)
    assert not reach.reached("t", 0)
    reach.on_stats("not json")  # ignored: the last good statistics stay, and age
    assert not reach.reached("t", 0)


def test_a_paused_partition_has_no_current_end(session_broker: DevBroker) -> None:
    topic = session_broker.create_topic(partitions=1)
    producer = Producer({"bootstrap.servers": session_broker.bootstrap})
    producer.produce(topic, key=b"k", value=b"{}")
    assert producer.flush(10) == 0
    source = AssignedSource(session_broker.kafka_config(), [topic], lambda t, p: None)
    try:
        def end() -> int | None:
            source.poll(100, 0.1)
            return source.end_offset(topic, 0)
        wait_until(end, 20, "the end offset of partition 0")
        assert end() == 1
        source.pause(topic, 0)  # nothing fetched: a record produced now is not seen
        assert source.end_offset(topic, 0) is None
        source.resume(topic, 0)
        wait_until(end, 20, "the end offset again after resume")
    finally:
        source.close()


def test_a_killed_worker_is_not_ready_at_once(tmp_path: Path,
                                               session_broker: DevBroker) -> None:
    """`serve` beside `run --no-api`: after a kill -9 of the worker, /readyz said 200 and
    /metrics lag 0 for up to `STALE_AFTER_S` (the file's last words); the status names its
    writer, so a reader on the same machine sees at once that it is gone."""
    topic = session_broker.create_topic(partitions=1)
    producer = Producer({"bootstrap.servers": session_broker.bootstrap})
    producer.produce(topic, key=b"a", value=json.dumps({"id": "a", "v": 1}))
    assert producer.flush(10) == 0
    store = tmp_path / "data"
    cfg = write_config(tmp_path / "cfg.yaml", session_broker, string_key_table(topic))
    worker = start_worker(cfg)
    wait_until(lambda: ready_answer(str(store))[0] == 200, 60, "the worker to be ready", worker)
    assert writer_gone(_status(store)) is False

    worker.send_signal(signal.SIGKILL)  # not reaped yet: a zombie first
    wait_until(lambda: ready_answer(str(store))[0] == 503, STALE_AFTER_S / 2,
               "/readyz to say 503 well before the status file is stale")
    code, body = ready_answer(str(store))
    assert "is not running" in orjson.loads(body)["reason"]
    exp = Exposition()
    add_worker_metrics(exp, _status(store))
    assert "materializer_partition_lag{" not in exp.text()
    worker.wait(10)
    assert ready_answer(str(store))[0] == 503


def test_writer_gone_knows_only_what_it_can_know() -> None:
    import subprocess  # noqa: PLC0415

    me = {**writer_identity(), "updated_at": 0}
    assert writer_gone(me) is False
    proc = subprocess.Popen(["sleep", "30"])
    try:
        other = {"pid": proc.pid, "process": me["process"].rsplit(":", 2)[0]
                 + f":{proc.pid}:{me['process'].rsplit(':', 1)[1]}"}
        # the same pid started at another time: the writer's pid was taken by another process
        assert writer_gone(other) is True
    finally:
        proc.kill()
        proc.wait()
    # unknowable: no identity, another boot or pid namespace, a malformed one
    assert writer_gone({"pid": proc.pid}) is False
    assert writer_gone({"pid": proc.pid, "process": f"other-boot:pid:[1]:{proc.pid}:5"}) is False
    assert writer_gone({"pid": True, "process": me["process"]}) is False


def test_each_api_process_labels_its_own_metrics(tmp_path: Path) -> None:
    """With `api.processes` > 1 a scrape reaches any of them: unlabelled, their request
    counters and process figures read as one series that resets at every other scrape."""
    import warnings  # noqa: PLC0415

    from materializer.api.app import create_app  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient  # noqa: PLC0415

    for label, want in ((None, "process_cpu_seconds_total "),
                        ("4242", 'process_cpu_seconds_total{api_process="4242"} ')):
        with TestClient(create_app(str(tmp_path), None, api_process=label)) as c:
            c.get("/healthz")
            c.get("/tables")
            text = c.get("/metrics").text
        assert want in text, text
        requests = [ln for ln in text.splitlines()
                    if ln.startswith("materializer_api_requests_total{")]
        assert requests and all(("api_process=" in ln) == (label is not None)
                                for ln in requests)

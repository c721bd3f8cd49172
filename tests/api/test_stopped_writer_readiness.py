"""A worker stopped by a signal (SIGSTOP, SIGTSTP) is not "caught up".

Found by probe h87: with the worker process of a 2-worker cluster frozen (SIGSTOP) for 15 s
while ~400 records a second arrived, its API (a child process, still running) answered
`/readyz` 200 for up to `STALE_AFTER_S` (10 s) from the worker's last status file, while
records acknowledged up to 9.4 s earlier were not applied (under 1 s for a running worker).
The status file names its writer, so a reader on the same machine sees at once that the
writer is stopped, as it sees one killed."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from materializer.api.metrics import Exposition, add_worker_metrics
from materializer.api.readiness import ready_answer
from materializer.devbroker import DevBroker
from materializer.ingest.status_merge import merge_statuses
from materializer.report import worker_state_note
from materializer.status import STALE_AFTER_S, read_status, writer_gone, writer_identity
from tests.support.workers import start_worker, string_key_table, wait_until, write_config


def _status(store: Path) -> dict[str, Any]:
    status = read_status(str(store))
    assert status is not None
    return status


def test_a_stopped_worker_is_not_ready_and_reports_no_lag(tmp_path: Path,
                                                           session_broker: DevBroker) -> None:
    topic = session_broker.create_topic(partitions=1)
    producer = Producer({"bootstrap.servers": session_broker.bootstrap})
    producer.produce(topic, key=b"a", value=json.dumps({"id": "a", "v": 1}))
    assert producer.flush(10) == 0
    store = tmp_path / "data"
    cfg = write_config(tmp_path / "cfg.yaml", session_broker, string_key_table(topic))
    worker = start_worker(cfg)
    wait_until(lambda: ready_answer(str(store))[0] == 200, 60, "the worker to be ready", worker)
    worker.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: ready_answer(str(store))[0] == 503, STALE_AFTER_S / 3,
                   "/readyz to say 503 well before the status file is stale")
        reason = orjson.loads(ready_answer(str(store))[1])["reason"]
        assert "is stopped" in reason, reason
        status = _status(store)
        assert not writer_gone(status)
        exp = Exposition()
        add_worker_metrics(exp, status)
        assert "materializer_partition_lag{" not in exp.text()
        assert "materializer_worker_ready 0" in exp.text()
        note = worker_state_note(str(store))
        assert note is not None and "is stopped" in note
    finally:
        worker.send_signal(signal.SIGCONT)
    wait_until(lambda: ready_answer(str(store))[0] == 200, 30, "ready again once continued",
               worker)
    assert worker_state_note(str(store)) is None


def test_merged_status_of_several_processes_with_one_stopped_is_not_caught_up() -> None:
    """`run --processes N`: one worker process stopped by a signal makes the merged status
    (what /readyz of `run` reads) not caught up, however recent its last report."""
    from materializer.status import writer_stopped  # noqa: PLC0415

    me = writer_identity()
    proc = subprocess.Popen(["sleep", "30"])
    try:
        start = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        other = {"pid": proc.pid,
                 "process": me["process"].rsplit(":", 2)[0] + f":{proc.pid}:{start}"}
        part = {"relation": "public.t", "topic": "t", "partition": 0, "next_offset": 5,
                "end_offset": 5, "lag": 0}
        def child(identity: dict[str, Any], p: int) -> dict[str, Any]:
            return {**identity, "updated_at": time.time(), "started_at": time.time() - 5,
                    "partitions": [{**part, "partition": p}], "assigned": [["t", p]],
                    "caught_up": True, "retrying": None, "metrics": {}}

        merged = merge_statuses([child(me, 0), child(other, 1)], 1, False)
        assert merged["caught_up"] is True
        proc.send_signal(signal.SIGSTOP)
        wait_until(lambda: writer_stopped(other), 60, "the process to be stopped")
        merged = merge_statuses([child(me, 0), child(other, 1)], 1, False)
        assert merged["caught_up"] is False
        assert not writer_stopped(me)
    finally:
        proc.kill()
        proc.wait()
    assert not writer_stopped(other)  # gone: writer_gone says so, not this

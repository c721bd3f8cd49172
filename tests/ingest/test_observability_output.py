"""What the worker writes for machines stays machine-readable (probe h92).

- `run --log-format json` on a terminal: every line on stderr is one JSON object. The live
  progress line (`\\r` redrawn, no newline) used to be drawn there too, so a JSON log
  collector reading a container's tty got lines that were not JSON.
- `run --processes N` while a worker started again has not reported yet (the merged status's
  `updated_at` is 0): the status age is unknown, not 56 years (`/metrics` left
  `materializer_worker_status_age_seconds` at about 1.8e9 and `status` said "the worker status
  is 1796601505 s old").
- the merged status not caught up for a reason the partitions do not show (a partition held
  by no worker process, a worker process stopped or silent): `/readyz` names it instead of
  "0 partition(s) lagging, 0 with an unknown end offset".
- `status` and `get` under `--log-format json`: their words on stderr (the note on the worker,
  why `status` exits 1, a miss) are JSON log lines too, not plain text among them.
"""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from materializer.api.metrics import Exposition, add_worker_metrics
from materializer.devbroker import DevBroker, free_port
from materializer.ingest.status_merge import merge_statuses
from materializer.report import worker_state_note
from materializer.status import readiness
from tests.support.workers import (
    STARTED,
    j,
    materialize,
    run_cli,
    string_key_table,
    wait_until,
    write_config,
)


def test_json_logs_on_a_terminal_are_json_lines(session_broker: DevBroker,
                                                tmp_path: Path) -> None:
    topic = session_broker.create_topic(partitions=1)
    cfg = write_config(tmp_path / "cfg.yaml", session_broker, string_key_table(topic))
    p = Producer({"bootstrap.servers": session_broker.bootstrap})
    for i in range(20):
        p.produce(topic, key=f"k{i}".encode(), value=j({"id": f"k{i}", "v": i}), partition=0)
    p.flush(30)
    master, slave = pty.openpty()  # stderr is a terminal, as under `docker run -t`
    proc = subprocess.Popen([sys.executable, "-m", "materializer", "--log-format", "json",
                             "run", str(cfg), "--no-api"], stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave)
    STARTED.append(proc)
    os.close(slave)
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal's other side closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:  # a progress line is due about a second after the first batch, in either mode
        wait_until(lambda: b"rec/s" in b"".join(chunks), 60, "a progress line", proc)
    finally:
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    reader.join(10)
    os.close(master)
    lines = [ln for ln in b"".join(chunks).replace(b"\r\n", b"\n").split(b"\n") if ln.strip()]
    assert lines
    for ln in lines:
        obj = json.loads(ln)  # not a progress line drawn with \r and an escape sequence
        assert {"ts", "level", "logger", "message"} <= obj.keys()
    assert any("rec/s" in json.loads(ln)["message"] for ln in lines)


def _worker(parts: list[int], now: float, **extra: Any) -> dict[str, Any]:
    return {"pid": os.getpid(), "updated_at": now, "started_at": now - 10,
            "assigned": [["t", p] for p in parts],
            "partitions": [{"relation": "public.t", "topic": "t", "partition": p,
                            "next_offset": 5, "end_offset": 5, "lag": 0} for p in parts],
            "caught_up": True, "metrics": {"records_applied_total": 5}, **extra}


def test_a_worker_not_reported_yet_has_no_status_age(tmp_path: Path) -> None:
    now = time.time()
    merged = merge_statuses([_worker([0], now), None], pid=os.getpid(), stopping=False,
                            now=now)
    assert merged["updated_at"] == 0  # worker 1 was started again and has not written yet
    exp = Exposition()
    add_worker_metrics(exp, merged, now)
    text = exp.text()
    assert "materializer_worker_ready 0" in text
    assert "materializer_worker_status_age_seconds" not in text  # unknown, not 1.8e9 s
    (tmp_path / "worker.json").write_text(json.dumps(merged))
    note = worker_state_note(str(tmp_path))
    assert note is not None and "has not reported" in note, note
    assert " s old" not in note


def test_merged_readiness_names_what_is_missing() -> None:
    now = time.time()
    # worker 1 started again holds nothing yet; partition 1 was held before (known)
    merged = merge_statuses([_worker([0], now), _worker([], now)], pid=os.getpid(),
                            stopping=False, now=now, known={("public.t", 0), ("public.t", 1)})
    ready, why = readiness(merged, now)
    assert not ready
    assert "0 partition(s) lagging" not in why, why
    assert "public.t" in why and "1" in why and "no worker process" in why, why
    # a worker process stopped by a signal: the survivor's "lag 0" is all the merge lists
    me = subprocess.Popen([sys.executable, "-c", STOPS_ITSELF], stdout=subprocess.PIPE)
    STARTED.append(me)
    try:
        assert me.stdout is not None
        ident = json.loads(me.stdout.readline())
        wait_until(lambda: _state(me.pid) == "T", 10, "the process to stop")
        merged = merge_statuses([_worker([0], now), _worker([1], now, **ident)],
                                pid=os.getpid(), stopping=False, now=now)
        ready, why = readiness(merged, now)
        assert not ready
        assert "0 partition(s) lagging" not in why, why
        assert "worker process 1" in why and "stopped" in why, why
    finally:
        me.kill()
        me.wait(10)
        if me.stdout is not None:
            me.stdout.close()


STOPS_ITSELF = ("import json, os, signal\n"
                "from materializer.status import writer_identity\n"
                "print(json.dumps(writer_identity()), flush=True)\n"
                "os.kill(os.getpid(), signal.SIGSTOP)\n")


def _state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


def _json_lines(err: str) -> list[dict[str, Any]]:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines
    return [json.loads(ln) for ln in lines]  # each line one JSON object


def test_status_and_get_say_their_words_as_json_lines(session_broker: DevBroker,
                                                      tmp_path: Path) -> None:
    """`status` (its note on the worker, why it exits 1) and `get` (a miss) spoke plain
    text on stderr under `--log-format json`, beside the JSON log lines."""
    topic = session_broker.create_topic(partitions=1)
    cfg = write_config(tmp_path / "cfg.yaml", session_broker, string_key_table(topic))
    p = Producer({"bootstrap.servers": session_broker.bootstrap})
    p.produce(topic, key=b"k1", value=j({"id": "k1", "v": 1}), partition=0)
    p.flush(30)
    materialize(cfg, {"public.t": {0: 1}})
    missing = run_cli("--log-format", "json", "get", str(cfg), "t", "nope")
    assert missing.returncode == 1
    [said] = _json_lines(missing.stderr)
    assert said["message"] == "public.t: no row for key ['nope']", said
    ok = run_cli("--log-format", "json", "status", str(cfg), "--json")
    assert ok.returncode == 0, ok.stderr
    assert [json.loads(ln)["lag"] for ln in ok.stdout.splitlines()] == [0]
    [note] = _json_lines(ok.stderr)  # the worker stopped: said, not an error
    assert note["level"] == "warning" and "the worker stopped" in note["message"], note
    away = cfg.read_text().replace(session_broker.bootstrap, f"127.0.0.1:{free_port()}")
    (tmp_path / "away.yaml").write_text(away)
    gone = run_cli("--log-format", "json", "status", str(tmp_path / "away.yaml"), "--json")
    assert gone.returncode == 1
    said_all = _json_lines(gone.stderr)
    assert any("cannot reach the Kafka broker" in s["message"] and s["level"] == "error"
               for s in said_all), said_all
    assert [json.loads(ln)["lag"] for ln in gone.stdout.splitlines()] == [None]
    plain = run_cli("status", str(tmp_path / "away.yaml"))  # text logs: plain lines as before
    assert plain.returncode == 1
    assert "materializer: cannot reach the Kafka broker" in plain.stderr
    assert not plain.stderr.lstrip().startswith("{")

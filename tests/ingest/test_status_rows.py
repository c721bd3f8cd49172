"""`materializer status` (report.status_rows) lists every partition of a topic: one whose
end offset gave no answer (its leader away) is a row with END and LAG unknown and a
sentence that makes the command exit 1, never left out (a table would look whole)."""

from __future__ import annotations

from pathlib import Path

import pytest

import connectors.kafka_admin as kafka_admin
from materializer.catalog import load_catalog
from materializer.report import status_rows
from materializer.specs import Catalog

BODY = """\
kafka:
  bootstrap.servers: 127.0.0.1:1
store:
  path: {store}
tables:
  - name: shop.users
    topic: users
    columns: {{id: long, name: string}}
    primary_key: [id]
    key_format: long
"""


def _catalog(tmp_path: Path) -> Catalog:
    cfg = tmp_path / "t.yaml"
    cfg.write_text(BODY.format(store=tmp_path / "data"))
    return load_catalog(str(cfg))


def test_a_partition_without_an_end_answer_is_listed_unknown_and_flagged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_admin, "watermarks", lambda *a, **k: {0: (0, 5), 2: (0, 7)})
    monkeypatch.setattr(kafka_admin, "partition_count", lambda *a, **k: 3)
    problems: list[str] = []
    missing: list[str] = []
    rows = status_rows(_catalog(tmp_path), problems, missing)
    assert [(r["partition"], r["end_offset"], r["lag"]) for r in rows] == [
        (0, 5, 5), (1, None, None), (2, 7, 7)]
    assert problems == []
    assert len(missing) == 1 and "partition(s) 1 of topic users" in missing[0], missing


def test_every_partition_answering_flags_nothing(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_admin, "watermarks", lambda *a, **k: {0: (0, 0), 1: (0, 0)})
    monkeypatch.setattr(kafka_admin, "partition_count", lambda *a, **k: 2)
    missing: list[str] = []
    rows = status_rows(_catalog(tmp_path), [], missing)
    assert [(r["partition"], r["lag"]) for r in rows] == [(0, 0), (1, 0)]
    assert missing == []


def test_status_says_when_no_worker_runs_on_the_store(tmp_path: Path) -> None:
    """`status` of a store whose worker stopped, was killed or stalled read like a live one
    (LAG looks like a worker's, yet nobody applies it): a line on stderr says so."""
    import os
    import time

    from materializer.report import worker_state_note
    from materializer.status import write_status, writer_identity

    store = tmp_path / "data"
    store.mkdir()
    assert "no worker status file" in (worker_state_note(str(store)) or "")
    live = {**writer_identity(), "updated_at": time.time(), "stopping": False}
    write_status(store, live)
    assert worker_state_note(str(store)) is None  # this process wrote it: running
    write_status(store, {**live, "stopping": True})
    assert "the worker stopped" in (worker_state_note(str(store)) or "")
    write_status(store, {**live, "updated_at": time.time() - 60})
    assert "60 s old: the worker is stalled or not running" in (
        worker_state_note(str(store)) or "")
    here = str(live["process"]).rsplit(":", 2)[0]  # this machine and boot
    dead = os.getpid() + 10**6  # no such process
    gone = {**live, "pid": dead, "process": f"{here}:{dead}:1"}
    write_status(store, gone)
    assert "is not running" in (worker_state_note(str(store)) or "")

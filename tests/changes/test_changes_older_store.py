"""A store an older materializer wrote (before 2026-12-05) records neither which change
topic was told of its rows (`changes_target`) nor that it was (`changes_announced`),
though it emitted an event for every change while `changes:` was declared. Opened by this
version, such a table owes a snapshot (whether `changes:` was there from the start cannot
be told), but the records it applies until caught up are new changes: each keeps its own
c/u/d event (before the fix they were applied silently and only the snapshot's op r events
told of them: a consumer of the change topic lost every change in between)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.producer import produce_records
from materializer.changes.outbox import OUTBOX_DB
from materializer.devbroker import DevBroker
from materializer.ingest.announced import owe_snapshot_if_unannounced
from materializer.store.layout import current
from tests.changes.test_changes_declared_later import apply_one, opened
from tests.support.workers import (
    caught_up,
    j,
    read_topic,
    start_worker,
    unique,
    wait_until,
    write_config,
)

BODY = """\
tables:
  - name: t
    topic: {topic}
    columns: {{id: long, name: string}}
    primary_key: [id]
    key_format: json
    value_format: json
    changes: {{topic: {changes}}}
"""


def as_older_store(data: Path, name: str) -> None:
    """Remove what a store written before 2026-12-05 lacks: the two change-topic marks in
    the relation's meta (read from stores such versions wrote: every other meta key is
    there)."""
    found = current(data, name)
    assert found is not None
    # in a process of its own: LMDB opens a file once per process, and this one has it open
    subprocess.run([sys.executable, "-c", _REMOVE_MARKS, str(found[1])], check=True)


_REMOVE_MARKS = """
import sys, lmdb
env = lmdb.open(sys.argv[1], max_dbs=16)
meta = env.open_db(b"meta", create=False)
with env.begin(write=True, db=meta) as txn:
    assert txn.delete(b"changes_announced") and txn.delete(b"changes_target")
env.close()
"""


def test_an_older_store_owes_a_snapshot_that_keeps_events(tmp_path: Path) -> None:
    rel = opened(tmp_path, changes=True)
    rel.writer.side_table(OUTBOX_DB)  # as the worker's outbox makes it
    apply_one(rel, 0)
    as_older_store(tmp_path / "data", "public.t")
    rel = opened(tmp_path, changes=True)
    assert rel.writer.snapshot_due() and rel.writer.snapshot_due_keeps_events()
    owe_snapshot_if_unannounced(rel)  # a second start (the target is recorded now)
    assert rel.writer.snapshot_due_keeps_events()


def test_a_table_never_emitting_owes_a_silent_snapshot(tmp_path: Path) -> None:
    """No outbox: `changes:` was never declared, the rows were never told of: a snapshot
    tells them (as before); no change of this rule."""
    apply_one(opened(tmp_path, changes=False), 0)
    rel = opened(tmp_path, changes=True)
    assert rel.writer.snapshot_due() and not rel.writer.snapshot_due_keeps_events()


def _run(broker: DevBroker, cfg: Path, topic: str,
         records: list[tuple[bytes, bytes | None]]) -> dict[int, int]:
    ends = produce_records(broker.kafka_config(), topic, records)
    worker = start_worker(cfg)
    try:
        wait_until(caught_up(cfg.parent / "data", "public.t", ends), 90, "t to catch up",
                   worker)
    finally:
        worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    return ends


@pytest.mark.integration
def test_a_worker_on_an_older_store_loses_no_change_event(session_broker: DevBroker,
                                                         tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("src"), partitions=1)
    changes = session_broker.create_topic(unique("src.changes"), partitions=1)
    cfg = write_config(tmp_path / "c.yaml", session_broker,
                       BODY.format(topic=topic, changes=changes), group="g-" + topic)
    _run(session_broker, cfg, topic, [(j(k), j({"name": f"a{k}"})) for k in range(5)])
    as_older_store(tmp_path / "data", "public.t")
    # the upgrade: updates, a delete and an insert, each a change of its own
    later = [(j(0), j({"name": "b0"})), (j(1), j({"name": "b1"})), (j(2), None),
             (j(9), j({"name": "c9"})), (j(0), j({"name": "d0"}))]
    _run(session_broker, cfg, topic, later)
    # 5 c, then 5 events of the later records (one delete and its tombstone: 6 messages),
    # then the snapshot: an r event for each of the 5 rows held
    got = read_topic(session_broker, changes, {0: 5 + 6 + 5}, timeout=30)
    events = [json.loads(v) for _, _, _, v in got if v is not None]
    ops = [(e["op"], e["source"]["offset"]) for e in events]
    assert ops[:5] == [("c", o) for o in range(5)]
    assert ops[5:10] == [("u", 5), ("u", 6), ("d", 7), ("c", 8), ("u", 9)], ops
    assert sorted(e["after"]["id"] for e in events[10:]) == [0, 1, 3, 4, 9]
    assert {e["op"] for e in events[10:]} == {"r"}
    assert events[10:][-1]["source"]["snapshot"] == "last"

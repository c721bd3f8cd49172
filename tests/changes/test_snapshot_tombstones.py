"""A snapshot (`op: r` for every row) also deletes from the change topic the keys the table
no longer holds: rows deleted while `changes:` was turned off left their last c/u event in
the (compacted) change topic, so a fold of it kept rows the table had deleted."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from materializer.store import Store
from tests.support.workers import (
    caught_up,
    j,
    read_topic,
    start_worker,
    unique,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.integration

BODY = """\
tables:
  - name: t
    topic: {topic}
    columns: {{id: long, name: string}}
    primary_key: [id]
    key_format: json
    value_format: json
{changes}"""


def _run(broker: DevBroker, cfg: Path, topic: str, changes: str | None,
         records: list[tuple[bytes, bytes | None]], events: int = 0
         ) -> list[tuple[int, int, bytes | None, bytes | None]]:
    """Run a worker until caught up and, with `changes`, until the change topic holds
    `events` messages (read back while it runs: the snapshot is staged once caught up)."""
    write_config(cfg, broker, BODY.format(
        topic=topic, changes=f"    changes: {{topic: {changes}}}\n" if changes else ""),
        group="g-" + topic)
    ends = produce_records(broker.kafka_config(), topic, records)
    worker = start_worker(cfg)
    try:
        wait_until(caught_up(cfg.parent / "data", "public.t", ends), 90, "t to catch up",
                   worker)
        got = read_topic(broker, changes, {0: events}, timeout=15) if changes else []
    finally:
        worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    return got


def test_keys_deleted_while_changes_were_off_are_tombstoned(session_broker: DevBroker,
                                                           tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("src"), partitions=1)
    changes = session_broker.create_topic(unique("src.changes"), partitions=1)
    cfg = tmp_path / "c.yaml"
    _run(session_broker, cfg, topic, changes, [(j(1), j({"name": "a"})), (j(2), j({"name": "b"}))],
         events=2)
    _run(session_broker, cfg, topic, None, [(j(1), None), (j(2), j({"name": "b2"}))])
    # c, c, then the snapshot: r (2), r (3) and the tombstone of key 1 (absent before)
    events = _run(session_broker, cfg, topic, changes, [(j(3), j({"name": "c"}))], events=5)
    fold: dict[int, object] = {}
    for _, _, k, v in events:
        key = json.loads(k or b"null")["id"]
        after = v and json.loads(v)["after"]
        if after is None:
            fold.pop(key, None)
        else:
            fold[key] = after
    with Store.open(tmp_path / "data") as store:
        table = {r["id"]: r for r in store.table("t").scan()}
    assert table == {2: {"id": 2, "name": "b2"}, 3: {"id": 3, "name": "c"}}
    assert fold == table  # key 1 was still {"id": 1, "name": "a"} in the change topic
    assert (events[-1][2], events[-1][3]) == (b'{"id":1}', None)

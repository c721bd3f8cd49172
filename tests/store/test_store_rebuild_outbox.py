"""`rebuild` of a table with `changes:` first delivers the change events its current
state still holds (its outbox); if the broker cannot take them, nothing is dropped."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from connectors.kafka_admin import end_offsets
from connectors.producer import produce_records
from materializer.catalog import load_catalog
from materializer.changes.outbox import OUTBOX_DB, ChangeOutbox
from materializer.devbroker import DevBroker
from materializer.ingest.relation import open_relation
from materializer.specs import TableSpec
from materializer.store import RelationWriter, Store
from materializer.store.environment import close_env
from materializer.testing import FakeRecord
from tests.support.workers import read_topic, run_cli, unique, write_config

pytestmark = pytest.mark.integration

TABLE = """\
tables:
  - name: shop.users
    topic: {topic}
    columns: {{id: long, name: string}}
    primary_key: [id]
    key_format: long
    value_format: json
    changes: {{topic: {changes}}}
"""


class NoSink:
    """The outbox is never drained here: its events stay staged, as after a broker outage."""

    def produce(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("not drained in this test")

    def flush(self, timeout: float = 0) -> None:
        raise AssertionError("not drained in this test")


def _key(i: int) -> bytes:
    return i.to_bytes(8, "big", signed=True)


def stage_undelivered(cfg: Path, ids: range) -> int:
    """Apply records for `ids` to the store of `cfg`, as a worker whose change topic was
    away would: rows committed, their change events left in the outbox. Returns how many."""
    catalog = load_catalog(str(cfg))
    spec = catalog.relation("shop.users")
    assert isinstance(spec, TableSpec)
    rel = open_relation(spec, catalog.store_path)
    outbox = ChangeOutbox(spec, rel.writer, rel.applier.layout, NoSink(), 2)  # type: ignore[arg-type]
    rel.outbox = outbox
    rel.apply({0: [FakeRecord(_key(i), json.dumps({"name": f"staged{i}"}).encode(), n)
                   for n, i in enumerate(ids)]})
    staged = outbox.backlog()
    close_env(rel.writer.path)  # this process lets go; the rebuild is another process
    return staged


def outbox_backlog(store: Path) -> int:
    writer = RelationWriter(store, "shop.users", 1 << 30)
    try:
        return writer.side_table(OUTBOX_DB).entries()
    finally:
        close_env(writer.path)


def test_rebuild_delivers_the_undrained_change_events_first(session_broker: DevBroker,
                                                            tmp_path: Path) -> None:
    conf = session_broker.kafka_config()
    topic = session_broker.create_topic(unique("users"), partitions=2)
    changes = unique("users.changes")
    produce_records(conf, topic, [(_key(i), json.dumps({"name": f"n{i}"}).encode())
                                  for i in range(100, 120)])
    cfg = write_config(tmp_path / "t.yaml", session_broker,
                       TABLE.format(topic=topic, changes=changes))
    staged = stage_undelivered(cfg, range(1, 11))
    assert staged == 10  # ten inserts
    rebuilt = run_cli("rebuild", str(cfg), "shop.users", timeout=120)
    assert rebuilt.returncode == 0, rebuilt.stderr
    ends = end_offsets(conf, changes)
    events = read_topic(session_broker, changes, ends)
    ops = [(p, o, json.loads(k)["id"], json.loads(v)["op"]) for p, o, k, v in events
           if k is not None and v is not None]
    keys = sorted(i for _, _, i, op in ops if op == "c")
    assert keys == list(range(1, 11)), keys
    # then the rebuilt state's snapshot (op r, materializer.ingest.snapshot), after them
    assert sorted(i for _, _, i, op in ops if op == "r") == list(range(100, 120))
    # keys 1-10, which the rebuilt table does not hold, are deleted: a d event (for
    # consumers that skip tombstones) and a tombstone each
    assert sorted(i for _, _, i, op in ops if op == "d") == list(range(1, 11))
    assert {op for _, _, _, op in ops} == {"c", "r", "d"}
    last_c = {p: o for p, o, _, op in sorted(ops) if op == "c"}
    assert all(o > last_c.get(p, -1) for p, o, _, op in ops if op == "r")
    assert outbox_backlog(tmp_path / "data") == 0
    with Store.open(tmp_path / "data") as store:  # the rebuilt state is the topic's
        users = store.table("shop.users")
        assert len(users) == 20 and users.get(1) is None


def test_rebuild_with_the_broker_away_drops_nothing(session_broker: DevBroker,
                                                    tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("users"), partitions=2)
    cfg = write_config(tmp_path / "t.yaml", session_broker,
                       TABLE.format(topic=topic, changes=unique("users.changes")))
    assert stage_undelivered(cfg, range(1, 6)) == 5
    away = tmp_path / "away.yaml"
    away.write_text(cfg.read_text().replace(session_broker.bootstrap, "127.0.0.1:1"))
    t0 = time.monotonic()
    failed = run_cli("rebuild", str(away), "shop.users", timeout=180)
    assert failed.returncode == 1, failed.stderr
    assert time.monotonic() - t0 < 120
    assert "Traceback" not in failed.stderr
    assert "5 change event(s)" in failed.stderr and "nothing was dropped" in failed.stderr
    assert outbox_backlog(tmp_path / "data") == 5
    with Store.open(tmp_path / "data") as store:
        assert store.table("shop.users").get(3) == {"id": 3, "name": "staged3"}

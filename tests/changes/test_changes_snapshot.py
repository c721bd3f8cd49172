"""Snapshot (`op: r`) change events: `materializer rebuild` emits one for every row of the
rebuilt table, `materializer resnapshot` for every current row; folding the change
topic gives the table."""

from __future__ import annotations

import io
import json
import marshal
import signal
from pathlib import Path
from typing import Any

import fastavro
import pytest

from connectors.kafka_admin import end_offsets
from connectors.producer import produce_records
from connectors.registry import FileRegistry
from materializer.changes.envelope import AvroEnvelope, JsonEnvelope, encoder_for
from materializer.changes.event import Change
from materializer.changes.outbox import ChangeOutbox
from materializer.changes.snapshot import snapshot_changes, stage_snapshot
from materializer.columns import parse_type
from materializer.devbroker import DevBroker
from materializer.ingest.relation import open_relation
from materializer.specs import ChangesSpec, Column, TableSpec
from materializer.store import Store
from materializer.testing import FakeRecord
from tests.support.change_topics import Message, fold, in_topic_order
from tests.support.workers import (
    materialize,
    read_topic,
    run_cli,
    start_worker,
    unique,
    wait_until,
    worker_running,
    write_config,
)


def spec_of(changes: ChangesSpec | None = None) -> TableSpec:
    cols = tuple(Column(n, *parse_type(t)) for n, t in
                 {"id": "long not null", "name": "string", "born": "date"}.items())
    return TableSpec(name="shop.users", topic="users", columns=cols, key_columns=("id",),
                     key_format="long", value_format="json",
                     changes=changes or ChangesSpec(topic="users.changes"))


# ------------------------------------------------------------------ without a broker


def test_snapshot_changes_are_r_events_at_the_applied_position() -> None:
    rows = [(0, (1, "a", None)), (1, (2, "b", 3)), (1, (3, None, None))]
    got = snapshot_changes(rows, (0,), {0: 10, 1: 4}, now_ms=77)
    assert got == [Change("r", 0, 9, 77, (1,), None, (1, "a", None)),
                   Change("r", 1, 3, 77, (2,), None, (2, "b", 3)),
                   Change("r", 1, 3, 77, (3,), None, (3, None, None))]


def test_envelopes_mark_snapshot_events(tmp_path: Path) -> None:
    spec = spec_of()
    r1 = Change("r", 0, 9, 77, (1,), None, (1, "a", 3))
    r2 = Change("r", 1, 3, 77, (2,), None, (2, "b", None))
    msgs = JsonEnvelope(spec, spec.column_names).encode([r1, r2], 5, snapshot_last=True)
    assert len(msgs) == 2  # no tombstones
    evs = [json.loads(m[2] or b"") for m in msgs]
    assert [(e["op"], e["before"], e["source"]["snapshot"]) for e in evs] == [
        ("r", None, "true"), ("r", None, "last")]
    assert evs[0]["after"] == {"id": 1, "name": "a", "born": "1970-01-04"}
    assert (evs[0]["source"]["partition"], evs[0]["source"]["offset"]) == (0, 9)
    (m,) = JsonEnvelope(spec, spec.column_names).encode([r1], 5)
    assert json.loads(m[2] or b"")["source"]["snapshot"] == "true"
    reg = FileRegistry(tmp_path / "reg")
    avro = encoder_for(spec_of(ChangesSpec(topic="users.changes", format="debezium-avro")),
                       spec.column_names, reg)
    assert isinstance(avro, AvroEnvelope)
    schema = reg.schema(avro.schema_id)
    got = [fastavro.schemaless_reader(io.BytesIO((v or b"")[5:]), schema)
           for _, _, v in avro.encode([r1, r2], 5, snapshot_last=True)]
    assert [(g["op"], g["source"]["snapshot"]) for g in got] == [  # type: ignore[index]
        ("r", "true"), ("r", "last")]


class NoSink:
    """Staging only: nothing is drained in these tests."""

    def produce(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("not drained here")

    def flush(self, timeout: float = 0) -> None:
        raise AssertionError("not drained here")


def _staged(outbox: ChangeOutbox) -> list[tuple[int, bytes, dict[str, Any]]]:
    items = outbox._table.first_items(1_000_000)
    out = []
    for _, raw in items:
        p, key, value = marshal.loads(raw)
        out.append((p, key, json.loads(value)))
    return out


@pytest.mark.parametrize("chunk", [1, 2, 3, 1000])
def test_stage_snapshot_stages_every_row_in_its_partition(tmp_path: Path, chunk: int) -> None:
    """Rows of two partitions (one key in both, as a source partitioned twice can leave
    it), staged in chunks of `chunk`: one r per stored row, on the row's partition, at
    the partition's last applied offset, the very last marked `last`."""
    spec = spec_of()
    rel = open_relation(spec, tmp_path, map_size=1 << 28)
    rel.apply({0: [FakeRecord(i.to_bytes(8, "big"), json.dumps({"name": f"p0-{i}"}).encode(), n)
                   for n, i in enumerate([1, 3, 5, 7])],
               1: [FakeRecord(i.to_bytes(8, "big"), json.dumps({"name": f"p1-{i}"}).encode(), n)
                   for n, i in enumerate([2, 5, 6])]})
    rel.apply({1: [FakeRecord((6).to_bytes(8, "big"), None, 3)]})  # a delete: no row left
    outbox = ChangeOutbox(spec, rel.writer, rel.applier.layout, NoSink(), 2)  # type: ignore[arg-type]
    assert stage_snapshot(spec, rel.writer, rel.applier.layout, outbox, chunk=chunk) == 6
    staged = _staged(outbox)
    got = sorted((ev["after"]["id"], p, ev["source"]["offset"], ev["after"]["name"])
                 for p, _, ev in staged)
    assert got == [(1, 0, 3, "p0-1"), (2, 1, 3, "p1-2"), (3, 0, 3, "p0-3"), (5, 0, 3, "p0-5"),
                   (5, 1, 3, "p1-5"), (7, 0, 3, "p0-7")]
    assert all(ev["op"] == "r" and ev["before"] is None for _, _, ev in staged)
    assert [ev["source"]["snapshot"] for _, _, ev in staged] == ["true"] * 5 + ["last"]
    assert all(json.loads(k) == {"id": ev["after"]["id"]} for _, k, ev in staged)


def test_stage_snapshot_of_an_empty_table_stages_nothing(tmp_path: Path) -> None:
    spec = spec_of()
    rel = open_relation(spec, tmp_path, map_size=1 << 28)
    outbox = ChangeOutbox(spec, rel.writer, rel.applier.layout, NoSink(), 2)  # type: ignore[arg-type]
    assert stage_snapshot(spec, rel.writer, rel.applier.layout, outbox) == 0
    assert outbox.backlog() == 0


# ------------------------------------------------------------------ with a broker

TABLE = """\
tables:
  - name: shop.users
    topic: {topic}
    columns: {{id: long, name: string, age: int}}
    primary_key: [id]
    key_format: long
    value_format: json
    {changes}
"""


def _key(i: int) -> bytes:
    return i.to_bytes(8, "big", signed=True)


def _changelog(n: int = 400) -> list[tuple[bytes, bytes | None]]:
    """Inserts of 120 keys, updates, and deletes of every 7th key."""
    out: list[tuple[bytes, bytes | None]] = []
    for i in range(n):
        k = i % 120
        out.append((_key(k), json.dumps({"name": f"n{i}", "age": i % 90}).encode()))
    out.extend((_key(k), None) for k in range(0, 120, 7))
    return out


def _table(data: Path) -> dict[Any, dict[str, Any]]:
    with Store.open(data) as store:
        return {r["id"]: r for r in store.table("shop.users").scan(json_form=True)}


def _change_topic(broker: DevBroker, topic: str) -> list[Message]:
    ends = end_offsets(broker.kafka_config(), topic)
    return [Message(p, o, k or b"", v) for p, o, k, v in read_topic(broker, topic, ends)]


def _snapshot_part(msgs: list[Message]) -> list[dict[str, Any]]:
    return [json.loads(m.value) for m in msgs
            if m.value is not None and json.loads(m.value)["op"] == "r"]


def _config(tmp_path: Path, broker: DevBroker, changes: str | None) -> tuple[Path, str]:
    topic = broker.create_topic(unique("users"), partitions=3)
    line = "" if changes is None else f"changes: {{topic: {changes}}}"
    return write_config(tmp_path / "t.yaml", broker, TABLE.format(topic=topic, changes=line)), \
        topic


def test_rebuild_emits_a_snapshot_of_the_rebuilt_table(session_broker: DevBroker,
                                                       tmp_path: Path) -> None:
    changes = unique("users.changes")
    cfg, topic = _config(tmp_path, session_broker, changes)
    produce_records(session_broker.kafka_config(), topic, _changelog())
    done = run_cli("rebuild", str(cfg), "shop.users", timeout=180)
    assert done.returncode == 0, done.stderr
    table = _table(tmp_path / "data")
    assert len(table) == 120 - len(range(0, 120, 7))
    msgs = _change_topic(session_broker, changes)
    snap = _snapshot_part(msgs)
    assert len(msgs) == len(snap) == len(table)  # the replay itself emits nothing
    assert sorted(e["after"]["id"] for e in snap) == sorted(table)
    assert sorted(e["source"]["snapshot"] for e in snap) == ["last"] + ["true"] * (len(snap) - 1)
    assert all(e["before"] is None and e["source"]["table"] == "shop.users" for e in snap)
    for m in msgs:  # each event on its row's source partition, at its applied position
        ev = json.loads(m.value or b"")
        assert m.partition == ev["source"]["partition"]
    f = fold(in_topic_order(msgs))
    assert f.problems == [] and f.table == table


def test_resnapshot_after_the_worker_folds_to_the_table(session_broker: DevBroker,
                                                        tmp_path: Path) -> None:
    changes = unique("users.changes")
    cfg, topic = _config(tmp_path, session_broker, changes)
    ends = produce_records(session_broker.kafka_config(), topic, _changelog())
    materialize(cfg, {"shop.users": ends})
    before = _change_topic(session_broker, changes)
    assert before and not _snapshot_part(before)
    done = run_cli("resnapshot", str(cfg), "shop.users", timeout=180)
    assert done.returncode == 0, done.stderr
    table = _table(tmp_path / "data")
    assert f"{len(table)} snapshot event(s)" in done.stdout
    msgs = _change_topic(session_broker, changes)
    snap = _snapshot_part(msgs)
    assert len(msgs) == len(before) + len(table) and len(snap) == len(table)
    assert sorted(e["source"]["snapshot"] for e in snap) == ["last"] + ["true"] * (len(snap) - 1)
    f = fold(in_topic_order(msgs))
    assert f.problems == [] and f.table == table
    # the snapshot alone (a consumer that starts from it) is the table too
    assert {e["after"]["id"]: e["after"] for e in snap} == table


def test_resnapshot_refuses_while_the_worker_holds_the_store(session_broker: DevBroker,
                                                             tmp_path: Path) -> None:
    cfg, _ = _config(tmp_path, session_broker, unique("users.changes"))
    worker = start_worker(cfg)
    try:
        wait_until(worker_running(tmp_path / "data", worker), 60, "the worker", worker)
        refused = run_cli("resnapshot", str(cfg), "shop.users")
        assert refused.returncode == 1, refused.stderr
        assert str(worker.pid) in refused.stderr
        assert "Traceback" not in refused.stderr
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0


def test_resnapshot_needs_a_table_with_changes(session_broker: DevBroker,
                                               tmp_path: Path) -> None:
    cfg, _ = _config(tmp_path, session_broker, None)
    refused = run_cli("resnapshot", str(cfg), "shop.users")
    assert refused.returncode == 2, refused.stderr
    assert "changes" in refused.stderr and "Traceback" not in refused.stderr
    missing = run_cli("resnapshot", str(cfg), "shop.nope")
    assert missing.returncode == 1 and "shop.nope" in missing.stderr


def test_a_changed_change_topic_gets_a_snapshot_of_the_table(session_broker: DevBroker,
                                                             tmp_path: Path) -> None:
    """The rows held were announced to the first change topic: moved to another one, the
    worker sends it a snapshot (before: it sent nothing, a fold of it was empty)."""
    first, second = unique("users.changes"), unique("users.changes")
    cfg, topic = _config(tmp_path, session_broker, first)
    ends = produce_records(session_broker.kafka_config(), topic, _changelog())
    materialize(cfg, {"shop.users": ends})
    table = _table(tmp_path / "data")
    assert fold(in_topic_order(_change_topic(session_broker, first))).table == table
    session_broker.create_topic(second, partitions=3)
    cfg.write_text(cfg.read_text().replace(first, second))
    worker = start_worker(cfg)
    try:
        got = wait_until(lambda: (lambda m: m if len(m) >= len(table) else None)(
            _change_topic(session_broker, second)), 60, "a snapshot on the new change topic",
            worker)
    finally:
        worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert len(got) == len(_snapshot_part(got)) == len(table)
    f = fold(in_topic_order(got))
    assert f.problems == [] and f.table == table

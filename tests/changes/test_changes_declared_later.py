"""`changes:` declared on a table that already holds rows (or turned off and on again)
owes the change topic a snapshot: without it the topic would lack those rows and keep old
values of rows changed meanwhile. Real relation files; the snapshot itself is
ingest.resync's (tested with a real worker in test_changes_faults / test_topic_reset)."""

from __future__ import annotations

from pathlib import Path

import pytest

from materializer.catalog.load import load_catalog_text
from materializer.changes.outbox import ChangeOutbox
from materializer.errors import SchemaChangedError
from materializer.ingest.announced import owe_snapshot_if_unannounced
from materializer.ingest.relation import Relation, open_relation
from materializer.testing import FakeRecord

TABLE = ("tables:\n  - name: t\n    topic: t\n    columns: {id: int, name: string}\n"
         "    primary_key: [id]\n")


def opened(tmp: Path, changes: bool | str) -> Relation:
    """The table, with `changes:` to t.changes (True), none (False) or as given."""
    decl = "{topic: t.changes}" if changes is True else changes
    text = ("schema_registry: {url: 'http://127.0.0.1:9'}\n" + TABLE
            + (f"    changes: {decl}\n" if changes else ""))
    spec = load_catalog_text(text, str(tmp / "t.yaml")).relations[0]
    rel = open_relation(spec, tmp / "data", map_size=1 << 24)
    owe_snapshot_if_unannounced(rel)
    return rel


def apply_one(rel: Relation, offset: int) -> None:
    rel.apply({0: [FakeRecord(b"1", b'{"name": "a"}', offset)]})


def test_a_table_with_changes_from_its_start_owes_nothing(tmp_path: Path) -> None:
    rel = opened(tmp_path, changes=True)
    assert rel.writer.changes_announced() and not rel.writer.snapshot_due()
    apply_one(rel, 0)
    rel = opened(tmp_path, changes=True)
    assert not rel.writer.snapshot_due()


def test_changes_declared_on_a_table_with_rows_owes_a_snapshot(tmp_path: Path) -> None:
    apply_one(opened(tmp_path, changes=False), 0)
    rel = opened(tmp_path, changes=True)
    assert rel.writer.snapshot_due() and not rel.writer.changes_announced()


def test_changes_turned_off_and_on_again_owes_a_snapshot(tmp_path: Path) -> None:
    apply_one(opened(tmp_path, changes=True), 0)
    off = opened(tmp_path, changes=False)
    assert not off.writer.changes_announced()
    apply_one(off, 1)  # a change no event told of
    assert opened(tmp_path, changes=True).writer.snapshot_due()


def test_a_changed_change_topic_owes_the_new_topic_a_snapshot(tmp_path: Path) -> None:
    """The rows were announced to t.changes: t.changes2 was told of none of them."""
    apply_one(opened(tmp_path, changes=True), 0)
    rel = opened(tmp_path, "{topic: t.changes2}")
    assert rel.writer.snapshot_due() and not rel.writer.changes_announced()
    assert opened(tmp_path, changes=True).writer.snapshot_due()  # and back: owed again


def test_the_same_change_topic_owes_nothing_at_a_restart(tmp_path: Path) -> None:
    apply_one(opened(tmp_path, changes=True), 0)
    rel = opened(tmp_path, changes=True)
    assert rel.writer.changes_announced() and not rel.writer.snapshot_due()
    assert rel.writer.changes_target() == ("t.changes", "debezium-json")


def test_a_format_changed_on_the_same_topic_is_refused(tmp_path: Path) -> None:
    """The topic holds debezium-json events: debezium-avro ones after them would leave it
    unreadable to either consumer."""
    opened(tmp_path, changes=True)
    with pytest.raises(SchemaChangedError, match="changed from debezium-json to "
                       "debezium-avro, but the change topic t.changes holds"):
        opened(tmp_path, "{topic: t.changes, format: debezium-avro}")
    assert opened(tmp_path, changes=True).writer.changes_announced()  # as it was
    with pytest.raises(SchemaChangedError, match=r"to debezium-json \(schemas: true\)"):
        opened(tmp_path, "{topic: t.changes, schemas: true}")  # other key bytes and text


def test_a_format_changed_with_events_undelivered_is_refused(tmp_path: Path) -> None:
    """Staged events are encoded: they would go to the new topic in the old format."""
    rel = opened(tmp_path, changes=True)
    rel.outbox = ChangeOutbox(rel.spec, rel.writer, rel.applier.layout,  # type: ignore[arg-type]
                              None, None, drains=False)  # type: ignore[arg-type]
    apply_one(rel, 0)  # one event staged, no broker to take it
    del rel
    with pytest.raises(SchemaChangedError, match=r"1 change event\(s\) in debezium-json for "
                       "t.changes are not delivered yet"):
        opened(tmp_path, "{topic: t.avro, format: debezium-avro}")
    moved = opened(tmp_path, "{topic: t.changes2}")  # the same format: they go there first
    assert moved.writer.snapshot_due()


def test_a_format_changed_with_a_new_topic_owes_it_a_snapshot(tmp_path: Path) -> None:
    opened(tmp_path, changes=True)  # nothing staged
    rel = opened(tmp_path, "{topic: t.avro, format: debezium-avro}")
    assert rel.writer.changes_target() == ("t.avro", "debezium-avro")

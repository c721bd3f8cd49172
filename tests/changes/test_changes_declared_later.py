"""`changes:` declared on a table that already holds rows (or turned off and on again)
owes the change topic a snapshot: without it the topic would lack those rows and keep old
values of rows changed meanwhile. Real relation files; the snapshot itself is
ingest.resync's (tested with a real worker in test_changes_faults / test_topic_reset)."""

from __future__ import annotations

from pathlib import Path

from materializer.catalog.load import load_catalog_text
from materializer.ingest.relation import Relation, open_relation
from materializer.ingest.worker import owe_snapshot_if_unannounced
from materializer.testing import FakeRecord

TABLE = ("tables:\n  - name: t\n    topic: t\n    columns: {id: int, name: string}\n"
         "    primary_key: [id]\n")


def opened(tmp: Path, changes: bool) -> Relation:
    text = TABLE + ("    changes: {topic: t.changes}\n" if changes else "")
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
    text = TABLE + "    changes: {topic: t.changes2}\n"
    spec = load_catalog_text(text, str(tmp_path / "t.yaml")).relations[0]
    rel = open_relation(spec, tmp_path / "data", map_size=1 << 24)
    owe_snapshot_if_unannounced(rel)
    assert rel.writer.snapshot_due() and not rel.writer.changes_announced()
    assert opened(tmp_path, changes=True).writer.snapshot_due()  # and back: owed again


def test_the_same_change_topic_owes_nothing_at_a_restart(tmp_path: Path) -> None:
    apply_one(opened(tmp_path, changes=True), 0)
    rel = opened(tmp_path, changes=True)
    assert rel.writer.changes_announced() and not rel.writer.snapshot_due()
    assert rel.writer.changes_topic() == "t.changes"

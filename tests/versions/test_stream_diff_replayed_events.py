"""A stream's diff compares events as a table's diff compares rows: an event stored before
`add-columns` (a shorter stored row) and the same record replayed since by a rebuild (the
added column null) are one event, not `removed` + `added`; an event whose values did change
still is. Real relation files, no broker (the rebuild is the one `materializer rebuild`
does: a fresh generation replayed, then published)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from materializer.ingest.relation import open_relation
from materializer.specs import RelationSpec, StreamSpec, TableSpec
from materializer.testing import FakeRecord
from materializer.versions.diff import iter_entries
from materializer.versions.take import take_snapshot
from tests.support.api import columns

STREAM = StreamSpec(name="public.s", topic="s", columns=columns({"k": "string", "n": "long"}),
                    key_columns=("k",), key_format="string")
TABLE = TableSpec(name="public.s", topic="s",
                  columns=columns({"k": "string", "n": "long"}, ["k"]),
                  key_columns=("k",), key_format="string")


def records(extra: dict[str, Any] | None = None) -> list[FakeRecord]:
    return [FakeRecord(f"k{i % 3}".encode(), json.dumps({"n": i, **(extra or {})}).encode(), i)
            for i in range(6)]


def widened(spec: RelationSpec) -> RelationSpec:
    return dataclasses.replace(spec, columns=(*spec.columns, *columns({"m": "string"})))


def diff_after_add_columns_and_rebuild(data: Path, spec: RelationSpec,
                                       replayed: list[FakeRecord]) -> list[dict[str, Any]]:
    open_relation(spec, data).apply({0: records()})
    take_snapshot(data, "A")
    wide = widened(spec)
    open_relation(wide, data, add_columns=True)  # `materializer add-columns`
    assert list(iter_entries(data, "s", "A", None)) == []
    rel = open_relation(wide, data, fresh=True)  # `materializer rebuild`
    rel.apply({0: replayed})
    rel.writer.publish()
    return list(iter_entries(data, "s", "A", None, json_form=True))


def test_the_same_events_replayed_after_add_columns_are_no_change(tmp_path: Path) -> None:
    assert diff_after_add_columns_and_rebuild(tmp_path / "t", TABLE, records()) == []
    assert diff_after_add_columns_and_rebuild(tmp_path / "s", STREAM, records()) == []


def test_events_whose_added_column_now_holds_a_value_are_removed_and_added(
        tmp_path: Path) -> None:
    got = diff_after_add_columns_and_rebuild(tmp_path / "s", STREAM, records({"m": "x"}))
    assert [(e["diff_type"], e["offset"]) for e in got] == sorted(
        [("removed", i) for i in range(6)] + [("added", i) for i in range(6)],
        key=lambda t: (f"k{t[1] % 3}", t[1], t[0] == "added"))
    assert {json.dumps(e["value"], sort_keys=True) for e in got if e["diff_type"] == "added"} \
        == {json.dumps({"k": f"k{i % 3}", "n": i, "m": "x"}, sort_keys=True) for i in range(6)}
    assert all(e["value"] == {"k": f"k{e['offset'] % 3}", "n": e["offset"]}
               for e in got if e["diff_type"] == "removed")


def test_an_event_replayed_with_another_time_is_removed_and_added(tmp_path: Path) -> None:
    later = [FakeRecord(r.k, r.v, r.off, r.ts + 1) if r.off == 4 else r for r in records()]
    got = diff_after_add_columns_and_rebuild(tmp_path / "s", STREAM, later)
    assert [(e["diff_type"], e["offset"], e["timestamp"]) for e in got] == [
        ("removed", 4, 1_700_000_000_000), ("added", 4, 1_700_000_000_001)]

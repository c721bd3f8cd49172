"""A row is unchanged only when every reader would see the same values: 1, True and 1.0
are one value to Python's `==`, and so are 0.0 and -0.0, but not to a JSON reader. A
table with change events (the non-blind apply path), its `changed` lists and diffs tell
them apart; a float column's events carry the stored double; a view held on a dropped
snapshot keeps saying it is gone. In process: real relation, outbox and store."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from materializer import Store
from materializer.catalog.load import load_catalog_text
from materializer.changes.avro_envelope import avro_type
from materializer.changes.outbox import ChangeOutbox
from materializer.columns import parse_type
from materializer.errors import NotFound
from materializer.ingest.relation import Relation, open_relation
from materializer.stored import same_stored
from materializer.testing import FakeRecord
from materializer.versions.paths import drop_snapshot
from materializer.versions.take import take_snapshot


class ListSink:
    def __init__(self) -> None:
        self.msgs: list[tuple[Any, bytes, bytes | None]] = []

    def produce_many(self, topic: str, messages: list[tuple[bytes, bytes | None, int]]
                     ) -> None:
        self.msgs.extend((partition, key, value) for key, value, partition in messages)

    def flush(self, timeout: float = 0) -> int:
        return 0


class Table:
    def __init__(self, tmp: Path, columns: str, changes: bool) -> None:
        self.data = str(tmp / "data")
        text = ("tables:\n  - name: s.t\n    topic: t\n"
                f"    columns: {columns}\n    primary_key: [id]\n    value_format: json\n")
        if changes:
            text += "    changes: {topic: t.changes, columns: true}\n"
        spec = load_catalog_text(text, str(tmp / "t.yaml")).relations[0]
        self.rel: Relation = open_relation(spec, self.data, map_size=1 << 24)
        self.sink = ListSink()
        if changes:
            self.rel.outbox = ChangeOutbox(spec, self.rel.writer, self.rel.applier.layout,
                                           self.sink, 1, None)
        self.offset = 0

    def feed(self, value: dict[str, Any]) -> None:
        rec = FakeRecord(b"1", json.dumps(value).encode(), self.offset)
        self.offset += 1
        self.rel.apply({0: [rec]})
        if self.rel.outbox is not None:
            self.rel.outbox.drain()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(v) for _, _, v in self.sink.msgs if v is not None]

    def row(self) -> Any:
        with Store.open(self.data) as s:
            return s.table("s.t").get(1)


@pytest.mark.parametrize(("a", "b"), [(1, True), (1, 1.0), (0, False), (0.0, -0.0),
                                      ({"a": 1}, {"a": True}), ([0.0], [-0.0]),
                                      ((1, "x"), (1.0, "x"))])
def test_equal_values_of_other_types_are_not_the_same_stored(a: Any, b: Any) -> None:
    assert a == b and not same_stored(a, b) and not same_stored(b, a)
    assert same_stored(a, a) and same_stored(b, b)


@pytest.mark.parametrize("changes", [True, False])
def test_a_value_changed_only_in_type_or_sign_is_stored(tmp_path: Path, changes: bool) -> None:
    t = Table(tmp_path, "{id: int, flag: json, d: double, n: long}", changes)
    t.feed({"flag": 1, "d": 0.0, "n": 1})
    t.feed({"flag": True, "d": 0.0, "n": 1})
    assert t.row()["flag"] is True
    t.feed({"flag": True, "d": -0.0, "n": 1})
    assert math.copysign(1, t.row()["d"]) < 0
    t.feed({"flag": True, "d": -0.0, "n": 1})  # a replay: nothing to do
    if changes:
        ops = [(e["op"], e.get("changed")) for e in t.events()]
        assert ops == [("c", None), ("u", ["flag"]), ("u", ["d"])], ops


def test_changed_names_a_column_equal_only_to_python(tmp_path: Path) -> None:
    t = Table(tmp_path, "{id: int, flag: json, n: long}", True)
    t.feed({"flag": 1, "n": 1})
    t.feed({"flag": True, "n": 2})
    u = t.events()[-1]
    assert (u["before"]["flag"], u["after"]["flag"], u["changed"]) == (1, True, ["flag", "n"])


def test_a_diff_names_a_value_changed_only_in_type_or_sign(tmp_path: Path) -> None:
    t = Table(tmp_path, "{id: int, flag: json, d: double}", False)
    t.feed({"flag": 1, "d": 0.0})
    take_snapshot(t.data, "before")
    t.feed({"flag": True, "d": -0.0})
    with Store.open(t.data) as s:
        (entry,) = list(s.table("s.t").diff("before"))
    assert (entry["diff_type"], entry["changed"]) == ("modified", ["flag", "d"])


def test_a_float_column_is_an_avro_double_in_events() -> None:
    assert avro_type(parse_type("float")[0]) == "double"


def test_a_view_held_on_a_dropped_snapshot_keeps_saying_it_is_gone(tmp_path: Path) -> None:
    t = Table(tmp_path, "{id: int, n: long}", False)
    t.feed({"n": 1})
    take_snapshot(t.data, "snap")
    take_snapshot(t.data, "other")
    with Store.open(t.data) as s:
        held = s.table("s.t", as_of="snap")
        assert held.get(1) == {"id": 1, "n": 1}
        drop_snapshot(t.data, "snap")
        deadline = time.monotonic() + 10  # a view looks for a new generation every 0.1 s
        while not _gone(lambda: held.get(1)):
            assert time.monotonic() < deadline, "the held view never noticed the drop"
        for _ in range(3):  # never the dropped files' row, whatever is read between
            with pytest.raises(NotFound):
                held.get(1)
            with pytest.raises(NotFound):
                len(held)
            assert s.table("s.t", as_of="other").get(1) == {"id": 1, "n": 1}


def _gone(read: Callable[[], Any]) -> bool:
    try:
        read()
    except NotFound:
        return True
    return False

"""Keyed diffs on real LMDB files, against diffs computed independently from the folds."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from materializer.errors import AmbiguousKeyError, NotFound, UsageError
from materializer.specs import StreamSpec, TableSpec
from materializer.store import Store
from materializer.versions.diff import RelationDiff, changed_columns
from materializer.versions.take import take_snapshot
from materializer.versions.walk import differing
from tests.support.api import SpecWriter, columns

T = TableSpec(name="public.t", topic="t", columns=columns({"id": "int", "a": "string",
                                                           "b": "double"}, ["id"]),
              key_columns=("id",))
S = StreamSpec(name="public.s", topic="s", columns=columns({"k": "string", "n": "long"}),
               key_columns=("k",), max_events_per_key=2)

Row = dict[str, Any]
# (partition, key, value or None for a tombstone): a key's records go to partition key % 3,
# one in six to the next partition (a key that moves, or that two partitions then hold)
op = st.builds(lambda moved, k, v: ((k + moved) % 3, k, v),
               st.sampled_from([0, 0, 0, 0, 0, 1]), st.integers(0, 30),
               st.none() | st.fixed_dictionaries({"a": st.sampled_from(["x", "y", "z"]),
                                                  "b": st.none() | st.sampled_from([0.5, 1.0])}))


def fold(ops: list[tuple[int, int, Row | None]], state: dict[tuple[int, int], Row]) -> None:
    for p, k, v in ops:
        if v is None:
            state.pop((p, k), None)
        else:
            state[(p, k)] = {"id": k, "a": v["a"], "b": v["b"]}


def effective(state: dict[tuple[int, int], Row]) -> dict[int, Row]:
    """What `get` answers per key: the row of the one partition holding it."""
    return {k: row for (_, k), row in state.items()}


def held_twice_and_changed(a: dict[tuple[int, int], Row], b: dict[tuple[int, int], Row]
                           ) -> bool:
    """Whether a key that changed in some partition is held by two partitions in either
    version: the diff then raises AmbiguousKeyError, as `get` of that key would."""
    changed = {k for p, k in set(a) | set(b) if a.get((p, k)) != b.get((p, k))}
    return any(sum(1 for _, k2 in state if k2 == k) > 1 for k in changed for state in (a, b))


def expected_diff(a: dict[int, Row], b: dict[int, Row]) -> list[Row]:
    out = []
    for k in sorted(set(a) | set(b)):
        ra, rb = a.get(k), b.get(k)
        if ra is None:
            out.append({"diff_type": "added", "key": [k], "from": None, "to": rb})
        elif rb is None:
            out.append({"diff_type": "removed", "key": [k], "from": ra, "to": None})
        elif ra != rb:
            out.append({"diff_type": "modified", "key": [k], "from": ra, "to": rb,
                        "changed": [c for c in ("id", "a", "b") if ra[c] != rb[c]]})
    return out


def write(w: SpecWriter, ops: list[tuple[int, int, Row | None]]) -> None:
    for p in range(3):
        items = [(k, v) for q, k, v in ops if q == p]
        if items:
            w.write(items, partition=p)


@settings(max_examples=15)
@given(st.lists(op, max_size=40), st.lists(op, max_size=40))
def test_table_diff_equals_the_diff_of_the_folds(tmp_path_factory: pytest.TempPathFactory,
                                                 before: list[Any], between: list[Any]) -> None:
    root = tmp_path_factory.mktemp("diff")
    w = SpecWriter(str(root), T)
    write(w, before)
    take_snapshot(root, "A")
    write(w, between)
    take_snapshot(root, "B")
    state: dict[tuple[int, int], Row] = {}
    fold(before, state)
    state_a = dict(state)
    fold(between, state)
    if held_twice_and_changed(state_a, state):
        with Store.open(root) as store, pytest.raises(AmbiguousKeyError):
            list(store.table("t").diff("A", "B"))
        return
    want = expected_diff(effective(state_a), effective(state))
    with Store.open(root) as store:
        assert list(store.table("t").diff("A", "B", json_form=True)) == want
        assert list(store.table("t").diff("A", json_form=True)) == want  # live = B
        assert list(store.table("t", as_of="B").diff("B", "A", json_form=True)) == [
            {**e, "diff_type": {"added": "removed", "removed": "added"}.get(e["diff_type"],
                                                                             e["diff_type"]),
             "from": e["to"], "to": e["from"]} for e in want]
    with RelationDiff(root, "t", "A", "B") as d:  # paging resumes exactly after a position
        whole = list(d.changes())
    pages, after = [], None
    while True:
        with RelationDiff(root, "t", "A", "B") as d:
            page = [ch for ch, _ in zip(d.changes(after), range(3), strict=False)]
        if not page:
            break
        pages.extend(page)
        after = page[-1].pos
    assert pages == whole


def test_modified_names_exactly_the_changed_columns(tmp_path: Path) -> None:
    w = SpecWriter(str(tmp_path), T)
    w.write([(1, {"a": "x", "b": 0.5}), (2, {"a": "x", "b": None}), (3, {"a": "x", "b": 1.0})])
    take_snapshot(tmp_path, "A")
    w.write([(1, {"a": "y", "b": 0.5}), (2, {"a": "x", "b": 2.0}), (3, {"a": "x", "b": 1.0})])
    with Store.open(tmp_path) as s:
        got = [(e["key"], e["diff_type"], e["changed"]) for e in s.table("t").diff("A")]
    assert got == [([1], "modified", ["a"]), ([2], "modified", ["b"])]  # 3: same row again
    assert changed_columns(("a", "b"), (1, math.nan), ("a", "b"), (1, math.nan)) == []


def test_a_key_moved_to_another_partition_is_modified_or_nothing(tmp_path: Path) -> None:
    w = SpecWriter(str(tmp_path), T)
    w.write([(1, {"a": "x", "b": None}), (2, {"a": "x", "b": None})], partition=0)
    take_snapshot(tmp_path, "A")
    w.write([(1, None), (2, None)], partition=0)
    w.write([(1, {"a": "x", "b": None}), (2, {"a": "q", "b": None})], partition=1)
    with Store.open(tmp_path) as s:
        got = list(s.table("t").diff("A", json_form=True))
    assert got == [{"diff_type": "modified", "key": [2], "from": {"id": 2, "a": "x", "b": None},
                    "to": {"id": 2, "a": "q", "b": None}, "changed": ["a"]}]


def test_stream_diff_is_events_added_and_removed(tmp_path: Path) -> None:
    w = SpecWriter(str(tmp_path), S)
    w.write([("u1", {"n": 1}), ("u1", {"n": 2}), ("u2", {"n": 3})], partition=0)
    w.write([("u1", {"n": 10})], partition=1)
    take_snapshot(tmp_path, "A")
    w.write([("u1", {"n": 4}), ("u3", None)], partition=0)  # u1's n=1 falls out (keep 2)
    with Store.open(tmp_path) as s:
        got = [(e["diff_type"], e["key"], e["partition"], e["offset"], e["value"])
               for e in s.stream("s").diff("A", json_form=True)]
    assert got == [("removed", ["u1"], 0, 0, {"k": "u1", "n": 1}),
                   ("added", ["u1"], 0, 3, {"k": "u1", "n": 4}),
                   ("added", ["u3"], 0, 4, None)]


def test_a_relation_missing_from_a_version(tmp_path: Path) -> None:
    w = SpecWriter(str(tmp_path), T)
    w.write([(1, {"a": "x", "b": None})])
    SpecWriter(str(tmp_path), S).write([("u1", {"n": 1})])
    take_snapshot(tmp_path, "only-t", ["t"])
    take_snapshot(tmp_path, "all")
    w2 = SpecWriter(str(tmp_path), TableSpec(name="public.late", topic="late",
                                             columns=T.columns, key_columns=("id",)))
    w2.write([(5, {"a": "x", "b": None})])
    with Store.open(tmp_path) as s:
        # a complete snapshot taken before `late` existed: everything is added since
        assert [e["diff_type"] for e in s.table("late").diff("all")] == ["added"]
        with pytest.raises(NotFound, match="snapshot 'only-t' does not hold public.s"):
            list(s.stream("s").diff("only-t"))
        with pytest.raises(NotFound, match="no snapshot named 'nope'"):
            s.table("t").diff("nope")


def test_versions_with_another_key_are_refused(tmp_path: Path) -> None:
    SpecWriter(str(tmp_path), T).write([(1, {"a": "x", "b": None})])
    take_snapshot(tmp_path, "A")
    from materializer.store import drop_relation
    drop_relation(tmp_path, "public.t")  # rebuilt with another key type
    other = TableSpec(name="public.t", topic="t", columns=columns(
        {"id": "string", "a": "string", "b": "double"}, ["id"]), key_columns=("id",))
    SpecWriter(str(tmp_path), other).write([("1", {"a": "x", "b": None})])
    with pytest.raises(UsageError, match=r"the key changed from \(id int\) to \(id string\)"):
        RelationDiff(tmp_path, "t", "A", None)


def test_changed_columns_by_name_when_the_layouts_differ() -> None:
    assert changed_columns(("id", "a"), (1, "x"), ("id", "a", "c"), (1, "x", None)) == []
    assert changed_columns(("id", "a"), (1, "x"), ("id", "a", "c"), (1, "y", 3)) == ["a", "c"]
    assert changed_columns(("id", "a", "old"), (1, "x", 2), ("id", "a"), (1, "x")) == ["old"]


@settings(max_examples=100)
@given(st.dictionaries(st.integers(0, 300), st.sampled_from([b"a", b"b"]), max_size=300),
       st.dictionaries(st.integers(0, 300), st.sampled_from([b"a", b"b"]), max_size=300),
       st.integers(1, 40))
def test_walk_finds_exactly_the_differing_keys(a: dict[int, bytes], b: dict[int, bytes],
                                              seed: int) -> None:
    rnd = random.Random(seed)
    same = {k: bytes([rnd.randrange(256)]) for k in range(rnd.randrange(2000))}
    da = {k.to_bytes(2, "big"): v for k, v in {**same, **a}.items()}
    db = {k.to_bytes(2, "big"): v for k, v in {**same, **b}.items()}
    want = [(k, da.get(k), db.get(k)) for k in sorted(set(da) | set(db))
            if da.get(k) != db.get(k)]
    assert list(differing(sorted(da.items()), sorted(db.items()))) == want

"""An environment let go of by the cache while still in use is reused, never opened twice.

LMDB (and py-lmdb: "already open in this process") forbids a second open of a file in one
process. Readers let go of environments (`forget_env`: a view's `release`, the Store's
sweep of dropped snapshots, a diff forgetting the ones it opened) while other views,
diffs or generations may still hold them; the next open of the same file must get the
open environment back. No timing involved: the let-go happens between the steps."""

from __future__ import annotations

import gc
from pathlib import Path

from materializer.store import Store
from materializer.store.environment import cached_env, forget_env
from materializer.versions.diff import RelationDiff
from materializer.versions.take import take_snapshot
from tests.support.api import SpecWriter
from tests.versions.test_diff import T

ROW_A = {"id": 1, "a": "x", "b": 0.5}
ROW_B = {"id": 1, "a": "y", "b": 0.5}
CHANGE = {"diff_type": "modified", "key": [1], "from": ROW_A, "to": ROW_B, "changed": ["a"]}


def _two_snapshots(root: Path) -> SpecWriter:
    w = SpecWriter(str(root), T)
    w.write([(1, {"a": "x", "b": 0.5})], partition=1)
    take_snapshot(root, "A")
    w.write([(1, {"a": "y", "b": 0.5})], partition=1)
    take_snapshot(root, "B")
    return w


def test_an_environment_let_go_while_in_use_is_reused_not_opened_twice(tmp_path: Path
                                                                        ) -> None:
    _two_snapshots(tmp_path)
    with Store.open(tmp_path) as store:
        view = store.table("t", as_of="A")
        held = view._g.env
        view.release()  # the cache lets go; the view (and what it handed out) still uses it
        assert cached_env(view.path) is None
        # every later open of A's file (diffs, as-of views, other stores) reuses it
        assert list(store.table("t").diff("A", "B", json_form=True)) == [CHANGE]
        assert list(store.table("t", as_of="B").diff("A", json_form=True)) == [CHANGE]
        with RelationDiff(tmp_path, "t", "A", "B") as d:
            assert d.a.gen is not None and d.a.gen.env is held
            forget_env(d.a.gen.env)  # a diff forgetting it mid-read, as the sweep might
            with RelationDiff(tmp_path, "t", "A", None) as again:
                assert again.a.gen is not None and again.a.gen.env is held
                assert len(list(again.changes())) == 1
        with Store.open(tmp_path) as other:
            assert other.table("t", as_of="A").get(1) == ROW_A
        assert view.get(1) == ROW_A


def test_the_live_writers_environment_let_go_by_a_reader_is_still_the_one(tmp_path: Path
                                                                          ) -> None:
    w = _two_snapshots(tmp_path)
    with Store.open(tmp_path) as store:
        live = store.table("t")
        live.release()  # a reader in the writer's process lets go of the writer's env
        with Store.open(tmp_path) as other:
            assert other.table("t").get(1) == ROW_B
            w.write([(1, None)], partition=1)
            assert other.table("t").get(1) is None  # the writer's env: its commits, at once
        assert list(store.table("t").diff("B", json_form=True)) == [
            {"diff_type": "removed", "key": [1], "from": ROW_B, "to": None}]


def test_once_nothing_holds_it_the_file_is_opened_afresh_and_cached(tmp_path: Path) -> None:
    _two_snapshots(tmp_path)
    with Store.open(tmp_path) as store:
        view = store.table("t", as_of="A")
        path = view.path
        view.release()
    del view, store
    gc.collect()  # the last user let go: the environment closed
    with Store.open(tmp_path) as store:
        assert store.table("t", as_of="A").get(1) == ROW_A
        assert cached_env(path) is store.table("t", as_of="A")._g.env

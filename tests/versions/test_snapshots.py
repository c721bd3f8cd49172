"""Snapshots on real LMDB files: what a snapshot holds, its files' life cycle, as-of views."""

from __future__ import annotations

import fcntl
import os
import stat
import time
from pathlib import Path

import pytest

from materializer.errors import NotFound, UsageError
from materializer.store import Store
from materializer.versions.paths import (
    SnapshotExists,
    SnapshotNotFound,
    check_name,
    directory_lock,
    drop_snapshot,
    list_snapshots,
    read_manifest,
    remove_leftovers,
    snapshot_names,
)
from materializer.versions.take import prune, take_snapshot
from tests.support.api import SpecWriter, build_data_dir, user_row


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, dict[str, SpecWriter]]:
    return tmp_path, build_data_dir(tmp_path, n_users=60, partitions=3)


def test_snapshot_records_offsets_rows_and_sizes(store: tuple[Path, dict[str, SpecWriter]]
                                                 ) -> None:
    root, writers = store
    m = take_snapshot(root, "A")
    assert m.complete and not m.scheduled
    assert set(m.relations) == {"public.users", "shop.orders", "public.tags", "public.clicks"}
    users = m.relations["public.users"]
    assert users.kind == "table" and users.rows == 60
    assert users.offsets == writers["public.users"].offsets == {0: 20, 1: 20, 2: 20}
    assert m.relations["public.clicks"].kind == "stream"
    assert all(r.bytes > 0 for r in m.relations.values())
    assert read_manifest(root, "A") == m
    assert [x.name for x in list_snapshots(root)] == ["A"]


def test_as_of_view_keeps_the_snapshot_while_the_live_table_moves(
        store: tuple[Path, dict[str, SpecWriter]]) -> None:
    root, writers = store
    take_snapshot(root, "A")
    writers["public.users"].write([(0, None), (3, user_row(3, 9)), (500, user_row(500))])
    with Store.open(root) as s:
        then, now = s.table("users", as_of="A"), s.table("users")
        assert then.get(0)["check"] == "0:0" and now.get(0) is None
        assert then.get(3)["check"] == "3:0" and now.get(3)["check"] == "3:9"
        assert then.get(500) is None and now.get(500) is not None
        assert len(then) == 60 and len(now) == 60
        assert [r["id"] for r in then.scan(limit=3)] == [0, 1, 2]
        assert then.next_offsets() == {0: 20, 1: 20, 2: 20}
        assert s.stream("clicks", as_of="A").events("u1", 2)[0] == {"user_id": "u1",
                                                                    "url": "/p4", "n": 4}
        assert s.at("A").names() == s.names()


def test_absent_snapshot_is_not_found_with_the_names(
        store: tuple[Path, dict[str, SpecWriter]]) -> None:
    root, _ = store
    with Store.open(root) as s:
        with pytest.raises(SnapshotNotFound, match=r"snapshots: none yet") as e:
            s.table("users", as_of="A")
        assert e.value.snapshots == []
        take_snapshot(root, "b2")
        take_snapshot(root, "a1")
        with pytest.raises(NotFound, match=r"no snapshot named 'x' \(snapshots: a1, b2\)") as e:
            s.table("users", as_of="x")
        assert e.value.snapshots == ["a1", "b2"]  # type: ignore[attr-defined]
        with pytest.raises(SnapshotNotFound):
            s.table("users", as_of="../relations")


def test_names_are_checked_and_never_reused(store: tuple[Path, dict[str, SpecWriter]]) -> None:
    root, _ = store
    for bad in ("", ".hidden", "a/b", "x" * 129, "a b", "é"):
        with pytest.raises(UsageError, match="is not a snapshot name"):
            check_name(bad)
        with pytest.raises(UsageError):
            take_snapshot(root, bad)
    take_snapshot(root, "A")
    with pytest.raises(SnapshotExists, match="exists already"):
        take_snapshot(root, "A")
    assert snapshot_names(root) == ["A"]


def test_partial_snapshot_and_unknown_relation(store: tuple[Path, dict[str, SpecWriter]]
                                               ) -> None:
    root, _ = store
    m = take_snapshot(root, "part", ["users", "shop.orders"])
    assert set(m.relations) == {"public.users", "shop.orders"} and not m.complete
    with Store.open(root) as s, pytest.raises(NotFound, match="no table or stream named"):
        s.table("tags", as_of="part")
    with pytest.raises(NotFound, match=r"no table or stream named 'nope' .*it holds: public"):
        take_snapshot(root, "other", ["nope"])
    assert snapshot_names(root) == ["part"]  # nothing left of the failed one
    assert not [e for e in os.listdir(root / "snapshots") if e.startswith(".tmp")]


def test_files_are_the_owners_only(store: tuple[Path, dict[str, SpecWriter]]) -> None:
    root, _ = store
    old = os.umask(0o022)
    try:
        take_snapshot(root, "A")
    finally:
        os.umask(old)
    for dirpath, dirs, files in os.walk(root / "snapshots"):
        for d in dirs:
            assert stat.S_IMODE(os.stat(Path(dirpath) / d).st_mode) == 0o700, d
        for f in files:
            assert stat.S_IMODE(os.lstat(Path(dirpath) / f).st_mode) == 0o600, f


def test_drop_unlists_and_deletes(store: tuple[Path, dict[str, SpecWriter]]) -> None:
    root, _ = store
    take_snapshot(root, "A")
    with Store.open(root) as s:
        view = s.table("users", as_of="A")
        assert view.get(1) is not None
        drop_snapshot(root, "A")
        assert snapshot_names(root) == []
        assert os.listdir(root / "snapshots") == [".lock"]
        with pytest.raises(SnapshotNotFound):
            s.table("users", as_of="A")
        with pytest.raises(SnapshotNotFound, match="no snapshot named 'A'"):
            drop_snapshot(root, "A")


def test_a_name_taken_again_is_the_new_snapshot_for_views_held(
        store: tuple[Path, dict[str, SpecWriter]]) -> None:
    root, writers = store
    take_snapshot(root, "A")
    with Store.open(root) as s:
        s.table("users", as_of="A").get(0)
        drop_snapshot(root, "A")
        writers["public.users"].write([(0, user_row(0, 4))])
        take_snapshot(root, "A")
        deadline = time.monotonic() + 60
        while s.table("users", as_of="A").get(0)["check"] != "0:4":  # views check every 0.1 s
            assert time.monotonic() < deadline, "the view never followed the new snapshot"


def test_leftovers_of_dead_takers_are_removed_live_ones_kept(
        store: tuple[Path, dict[str, SpecWriter]]) -> None:
    root, _ = store
    take_snapshot(root, "A")
    base = root / "snapshots"
    dead = base / ".tmp-B-000000000000"
    dead.mkdir()
    (dead / ".owner").write_bytes(b"")  # nobody holds its lock: its taker died
    no_owner = base / ".tmp-C-000000000000"
    no_owner.mkdir()
    dropping = base / ".drop-D-000000000000"
    dropping.mkdir()
    live = base / ".tmp-E-000000000000"
    live.mkdir()
    fd = os.open(live / ".owner", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with directory_lock(root):
            removed = remove_leftovers(base)
        assert sorted(removed) == sorted([dead.name, no_owner.name, dropping.name])
        assert live.is_dir() and (base / "A").is_dir()
    finally:
        os.close(fd)
    take_snapshot(root, "F")  # the next take cleans up what is now orphaned
    assert not live.exists()
    assert snapshot_names(root) == ["A", "F"]


def test_prune_keeps_the_newest_scheduled_ones_only(
        store: tuple[Path, dict[str, SpecWriter]]) -> None:
    root, _ = store
    take_snapshot(root, "manual")
    for i in range(4):
        take_snapshot(root, f"auto-{i}", scheduled=True)
    assert prune(root, 2) == ["auto-0", "auto-1"]
    assert snapshot_names(root) == ["auto-2", "auto-3", "manual"]
    assert prune(root, 5) == []


def test_readers_let_go_of_dropped_snapshots(store: tuple[Path, dict[str, SpecWriter]]) -> None:
    from materializer.store import environment
    from materializer.versions import diff

    root, _ = store
    take_snapshot(root, "A")
    take_snapshot(root, "B")

    def cached(env: object) -> bool:
        return any(e is env for e, _ in environment._ENVS.values())

    with Store.open(root) as s:
        view_env = s.table("users", as_of="A")._g.env
        with diff.RelationDiff(root, "users", "A", "B") as d:
            diff_env = d.a.gen.env if d.a.gen is not None else None
        assert cached(view_env) and diff_env is view_env  # one environment per file
        with diff.RelationDiff(root, "tags", "A", "B") as d:
            tags_env = d.a.gen.env if d.a.gen is not None else None
        assert cached(tags_env)
        drop_snapshot(root, "A")
        s._sweep_at = 0.0
        with pytest.raises(SnapshotNotFound):
            s.at("A")
        assert not cached(view_env)  # the store's views of A let go
        diff.RelationDiff(root, "users", "B", None).close()
        assert not cached(tags_env)  # and so did the diffs'
        assert s.table("users", as_of="B").get(1) is not None

"""`Store` (the Python API) on the store of a cluster member whose worker does not run
(killed: its `cluster.json` aged past the member timeout; stopped: the file says so) read
the files as they are: rows older than those the partitions' new owner applied since,
answered as current (`materializer get`/`scan` refuse them, exit 3; the HTTP API routes
around them). Its reads now raise MemberNotRunning, by the CLI's rule
(`materializer.cluster.view.member_not_running`); a worker that knew no other member
(outside any cluster) is still read as it is, and so are snapshots (points in time)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from materializer import Store
from materializer.api.routes import failure
from materializer.cluster.membership import now_ms, write_members_file
from materializer.cluster.record import Member
from materializer.errors import MemberNotRunning
from materializer.versions.take import take_snapshot
from tests.cluster.helpers import OWN_USERS, member_record
from tests.support.api import CLICKS, SpecWriter
from tests.support.workers import wait_until

USERS = OWN_USERS.name


def _file(store: Path, members: list[Member], age_ms: int = 0, stopped: bool = False) -> None:
    write_members_file(store, {"self": "a", "written_at": now_ms() - age_ms,
                               "timeout_ms": 4000, "heartbeat_ms": 300, "stopped": stopped,
                               "members": [m.to_json() for m in members]})


def _member_of_two(store: Path, age_ms: int = 0, stopped: bool = False) -> None:
    at = now_ms() - age_ms
    _file(store, [member_record("a", (0, 1), at), member_record("b", (), at)], age_ms, stopped)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Path]:
    data = tmp_path / "data"
    users = SpecWriter(str(data), OWN_USERS)
    users.write([(i, {"name": f"v1-{i}"}) for i in range(4)], partition=0)
    users.write([(i, {"name": f"v1-{i}"}) for i in range(4, 8)], partition=1)
    SpecWriter(str(data), CLICKS).write([("u1", {"url": "/a", "n": 1})])
    yield data


def _refused(call: object) -> str:
    assert callable(call)
    with pytest.raises(MemberNotRunning) as e:
        call()
    return str(e.value)


@pytest.mark.parametrize(("age_ms", "stopped"), [(60_000, False), (0, True),
                                                  (-3_600_000, False)])  # clock set back
def test_every_read_of_a_stopped_member_store_is_refused(store: Path, age_ms: int,
                                                         stopped: bool) -> None:
    """Before: `get(1)` answered v1-1 (a row the new owner may have replaced)."""
    _member_of_two(store, age_ms, stopped)
    with Store.open(store) as s:
        users, clicks = s.table(USERS), s.stream(CLICKS.name)
        for call in (lambda: users.get(1), lambda: users.get(1, held_only=True),
                     lambda: users.get(99), lambda: users.get_many([1, 5]),
                     lambda: users.scan(), lambda: users.scan(held_only=True),
                     lambda: len(users), lambda: clicks.events("u1"),
                     lambda: clicks.scan()):
            why = _refused(call)
            assert "does not run" in why and "it knew b" in why
            assert "materializer.Client" in why
        assert _refused(lambda: users.get(1)).startswith(f"{USERS}: ")
        # what `materializer status` reads (counters, offsets) still answers
        assert sum(p["rows"] for p in users.partition_stats()) == 8
        assert users.next_offsets() == {0: 4, 1: 4}


@pytest.mark.parametrize(("age_ms", "stopped"), [(60_000, False), (0, True)])
def test_a_stopped_lone_worker_store_is_read_as_it_is(store: Path, age_ms: int,
                                                      stopped: bool) -> None:
    """Outside any cluster nobody else applies its partitions: its rows are the latest."""
    _file(store, [member_record("a", (0, 1), now_ms() - age_ms)], age_ms, stopped)
    with Store.open(store) as s:
        users = s.table(USERS)
        assert [users.get(i)["name"] for i in range(8)] == [f"v1-{i}" for i in range(8)]
        assert len(users.scan()) == len(users) == 8
        assert len(s.stream(CLICKS.name).events("u1")) == 1


def test_a_store_without_cluster_file_is_read_as_it_is(store: Path) -> None:
    with Store.open(store) as s:
        assert s.table(USERS).get(3) == {"id": 3, "name": "v1-3"}


def test_a_snapshot_of_a_stopped_member_store_is_read(store: Path) -> None:
    """A snapshot is a point in time (as `get --as-of`): it is read as it is."""
    take_snapshot(store, "before", default_schema="own")
    _member_of_two(store, stopped=True)
    with Store.open(store) as s:
        assert s.table(USERS, as_of="before").get(2) == {"id": 2, "name": "v1-2"}
        _refused(lambda: s.table(USERS).get(2))


def test_a_view_kept_follows_the_worker_stopping_and_running_again(store: Path) -> None:
    """The decision is kept a short while (`MEMBER_CHECK_INTERVAL`, so that `get` stays a
    compare), then read again: a view kept refuses soon after the worker stopped, and reads
    again soon after it runs again."""
    _member_of_two(store)
    with Store.open(store) as s:
        users = s.table(USERS)
        assert users.get(1) == {"id": 1, "name": "v1-1"}
        _member_of_two(store, stopped=True)

        def refused() -> bool:
            try:
                users.get(1)
            except MemberNotRunning:
                return True
            return False

        t0 = time.monotonic()
        wait_until(refused, 10, "a view kept to refuse the stopped member's store")
        took = time.monotonic() - t0
        _member_of_two(store)
        wait_until(lambda: not refused(), 10, "a view kept to read again once the worker runs")
        assert users.get_many([1, 5]) == [{"id": 1, "name": "v1-1"}, {"id": 5, "name": "v1-5"}]
    # within the intervals (0.1 + 0.5 s, with room for a busy machine)
    assert took < 3


def test_the_api_answers_503_for_it() -> None:
    """The HTTP API routes a stopped member as owning nothing (503) before it reads its
    store; a read that meets the Store's own refusal (its decision a moment behind the
    routing's) is 503 too, not a 500."""
    status, body = failure(MemberNotRunning("own.users: this store's worker does not run"))
    assert status == 503 and b"does not run" in body


def test_a_faust_table_view_refuses_too(tmp_path: Path) -> None:
    """FaustTableView (`lmdb://` tables read through `Store`) scans through its own
    `scan_raw`: it refuses as TableView does (a faust app's store has no `cluster.json`
    unless one is put there; the rule is the store's, whoever keeps its relations)."""
    pytest.importorskip("faust")
    from tests.faust.support import cl_event, make_app, store_of  # noqa: PLC0415

    data = tmp_path / "tables"
    data.mkdir()
    _member_of_two(data, stopped=True)  # before the store reads it (decisions are kept 0.5 s)
    app = make_app(tmp_path)
    counts = store_of(app.Table("counts", default=int, key_type=str, partitions=1))
    counts.apply_changelog_batch([cl_event(counts.changelog_topic, 0, 0, b'"a"', b"2")],
                                 None, None)
    with Store.open(data) as s:
        view = s.table("counts")
        for call in (lambda: view.get("a"), lambda: view.scan(), lambda: view.get_many(["a"])):
            assert "does not run" in _refused(call)

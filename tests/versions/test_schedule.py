"""`snapshots:` in the declaration file, and the worker's schedule taking them (real child
processes, a clock the test moves)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from materializer.catalog import describe, load_catalog_text
from materializer.catalog.snapshots import format_duration, parse_duration
from materializer.specs import Catalog, SnapshotSchedule
from materializer.versions import schedule
from materializer.versions.paths import list_snapshots
from materializer.versions.schedule import SnapshotScheduler, scheduled_name
from materializer.versions.take import take_snapshot
from tests.support.api import build_data_dir
from tests.support.catalog import errors_of, marked

TABLES = """\
tables:
  - name: users
    topic: users
    columns: {id: int, name: string}
    primary_key: [id]
streams:
  - name: clicks
    topic: clicks
    columns: {k: string}
    key: [k]
"""


def test_the_snapshots_key() -> None:
    cat = load_catalog_text("snapshots: {every: 1h, keep: 24, tables: [users, public.clicks]}\n"
                            + TABLES, "t.yaml")
    assert cat.snapshots == SnapshotSchedule(every=3600.0, keep=24,
                                             tables=("public.users", "public.clicks"))
    assert "snapshots: every 1h (keep the newest 24) of public.users, public.clicks" \
        in describe(cat)
    cat = load_catalog_text("snapshots:\n  every: 90\n" + TABLES, "t.yaml")
    assert cat.snapshots == SnapshotSchedule(every=90.0)
    assert load_catalog_text(TABLES, "t.yaml").snapshots is None


@pytest.mark.parametrize(("text", "message"), [
    ("snapshots: {every: @@often}\n", "`snapshots.every: often` is not a duration"),
    ("snapshots: {every: @@500ms}\n", "is shorter than 1s"),
    ("snapshots: {every: @@1000000000000000000d}\n", "is longer than a year (366d)"),
    ("snapshots: {every: @@367d}\n", "is longer than a year (366d)"),
    ("snapshots: {every: 1h, keep: @@0}\n", "`snapshots.keep` must be at least 1, not 0"),
    ("snapshots: {every: 1h, @@kept: 3}\n", "unknown key `kept` in `snapshots`"),
    ("snapshots: {every: 1h, tables: [users, @@orders]}\n",
     "`snapshots.tables`: no table or stream named `orders` is declared"),
    ("snapshots: {every: 1h, tables: @@[]}\n", "`snapshots.tables` is empty"),
    ("snapshots: @@{keep: 3}\n", "`snapshots` needs `every`"),
    ("snapshots: @@hourly\n", "`snapshots` must be a mapping, like `{every: 1h, keep: 24}`"),
])
def test_snapshots_errors_at_their_place(text: str, message: str) -> None:
    body, line, column = marked(text)
    diags = errors_of(body + TABLES, "t.yaml")
    assert [(d.line, d.column) for d in diags] == [(line, column)], diags
    assert message in diags[0].message


def test_durations() -> None:
    assert [parse_duration(t) for t in ("90s", "30m", "1h", "1.5d", "500ms", "3600", " 2h ")] \
        == [90.0, 1800.0, 3600.0, 129600.0, 0.5, 3600.0, 7200.0]
    assert parse_duration("1w") is None and parse_duration("h") is None
    assert [format_duration(s) for s in (7200, 86400, 90, 1.5, 60)] == ["2h", "1d", "90s",
                                                                        "1.5s", "1m"]


def _drive(s: SnapshotScheduler, deadline: float = 60) -> None:
    """Tick until the snapshot process started by the last tick has finished."""
    end = time.monotonic() + deadline
    while s.proc is not None:
        assert time.monotonic() < end, "the snapshot process did not finish"
        s.proc.wait(max(0.0, end - time.monotonic()))
        s.tick()


def test_the_schedule_takes_and_prunes_snapshots(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schedule, "CHECK_INTERVAL", 0.0)
    build_data_dir(tmp_path, n_users=10)
    take_snapshot(tmp_path, "by-hand")
    base = (int(time.time()) // 60 + 10) * 60  # a minute in the future: after real times
    now = [base + 10.0]
    cat = Catalog(source="t", store_path=str(tmp_path),
                  snapshots=SnapshotSchedule(every=60, keep=2, tables=("public.users",)))
    s = SnapshotScheduler(cat, clock=lambda: now[0])
    s.tick()
    assert s.proc is None  # nothing is due before the first minute after the start
    for _ in range(3):
        now[0] += 60
        s.tick()
        assert s.proc is not None
        _drive(s)
        s.tick()  # the same minute: nothing more
        assert s.proc is None
    names = [m.name for m in list_snapshots(tmp_path)]
    assert names == ["by-hand", scheduled_name(base + 120), scheduled_name(base + 180)]
    taken = list_snapshots(tmp_path)[-1]
    assert taken.scheduled and list(taken.relations) == ["public.users"]
    assert scheduled_name(1_700_000_100) == "auto-20231114T221500Z"

    # a worker starting later sees the newest scheduled snapshot, and catches up at once
    now[0] += 3 * 60
    s2 = SnapshotScheduler(cat, clock=lambda: now[0])
    assert s2.last == taken.created_at
    s2.tick()
    _drive(s2)
    assert [m.name for m in list_snapshots(tmp_path)][-1] == scheduled_name(base + 360)


def test_a_failed_snapshot_is_tried_again_later(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schedule, "CHECK_INTERVAL", 0.0)
    now = [6_000.0]
    cat = Catalog(source="t", store_path=str(tmp_path / "missing"),
                  snapshots=SnapshotSchedule(every=3600))
    s = SnapshotScheduler(cat, clock=lambda: now[0])
    now[0] = 7_300.0
    s.tick()
    _drive(s)  # no data directory: the process fails
    assert s.last == 6_000.0 and s.due(now[0]) is None
    now[0] += 61
    assert s.due(now[0]) == 7_200.0

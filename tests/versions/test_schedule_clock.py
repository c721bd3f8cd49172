"""The schedule and `keep` when the clock goes back (or was ahead when a snapshot was taken):
snapshots go on being taken, and the one just taken is never the one pruned. Real snapshot
child processes; the scheduler's clock is the test's."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from materializer.specs import Catalog, SnapshotSchedule
from materializer.versions import schedule, take
from materializer.versions.paths import list_snapshots
from materializer.versions.schedule import SnapshotScheduler, scheduled_name
from materializer.versions.take import prune, take_snapshot
from tests.support.api import build_data_dir

MONTH = 30 * 86400.0


def _drive(s: SnapshotScheduler, deadline: float = 60) -> None:
    """Tick until the snapshot process started by the last tick has finished."""
    end = time.monotonic() + deadline
    while s.proc is not None:
        assert time.monotonic() < end, "the snapshot process did not finish"
        s.proc.wait(max(0.0, end - time.monotonic()))
        s.tick()


def _taken_with_clock_at(store: Path, instant: float, monkeypatch: pytest.MonkeyPatch) -> str:
    """A scheduled snapshot taken while the clock read `instant`; its name."""
    name = scheduled_name(instant)
    with monkeypatch.context() as m:
        m.setattr(take.time, "time", lambda: instant)
        take_snapshot(store, name, scheduled=True)
    return name


def test_a_snapshot_from_a_clock_that_was_ahead_does_not_stop_the_schedule(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schedule, "CHECK_INTERVAL", 0.0)
    build_data_dir(tmp_path, n_users=10)
    now = [float(int(time.time()) // 60 * 60 + 5)]
    future = _taken_with_clock_at(tmp_path, now[0] + MONTH, monkeypatch)  # then corrected
    cat = Catalog(source="t", store_path=str(tmp_path),
                  snapshots=SnapshotSchedule(every=60, keep=1))
    s = SnapshotScheduler(cat, clock=lambda: now[0])
    now[0] += 60
    s.tick()
    assert s.proc is not None, "no snapshot due until the clock reaches the one from ahead"
    _drive(s)
    # keep: 1 keeps the snapshot just taken, not the one dated a month ahead
    assert [m.name for m in list_snapshots(tmp_path)] == [scheduled_name(now[0] // 60 * 60)]
    assert future not in [m.name for m in list_snapshots(tmp_path)]


def test_the_clock_going_back_while_running_keeps_the_schedule(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schedule, "CHECK_INTERVAL", 0.0)
    build_data_dir(tmp_path, n_users=10)
    now = [float((int(time.time()) // 60 + 10) * 60 + 5)]
    cat = Catalog(source="t", store_path=str(tmp_path),
                  snapshots=SnapshotSchedule(every=60))
    s = SnapshotScheduler(cat, clock=lambda: now[0])
    now[0] += 60
    s.tick()
    _drive(s)
    now[0] -= 86400  # a day back
    s.tick()
    assert s.proc is None  # nothing due before the next minute, as at a start
    now[0] += 60
    s.tick()
    assert s.proc is not None, "no snapshot due for a day"
    _drive(s)
    assert len(list_snapshots(tmp_path)) == 2


def test_prune_never_drops_the_snapshot_just_taken(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    build_data_dir(tmp_path, n_users=10)
    t = time.time()
    ahead = [_taken_with_clock_at(tmp_path, t + MONTH + i * 60, monkeypatch) for i in range(2)]
    older = _taken_with_clock_at(tmp_path, t - 3600, monkeypatch)
    just = take_snapshot(tmp_path, "auto-just", scheduled=True)
    # the ones dated after it were taken before it: they are the oldest
    assert prune(tmp_path, 2, just) == ahead
    assert sorted(m.name for m in list_snapshots(tmp_path)) == sorted(["auto-just", older])
    assert prune(tmp_path, 1, just) == [older]
    assert [m.name for m in list_snapshots(tmp_path)] == ["auto-just"]

"""lmdb:// with two workers of one app (found by a probe: two workers, each with its own
directory, a rebalance, a clean stop, a kill -9): what a stopped worker's directory tells
outside readers. No broker: faust's calls made as a real worker makes them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from faust.types import TP

from materializer.errors import PartitionsNotHeld
from materializer.store import Store
from tests.faust.support import cl_event, make_app, store_of


def _recovered(tmp_path: Path, active: set[int]) -> object:
    """A two-partition table with a key in each partition, recovered with `active` the
    partitions this worker is active for (the others standby)."""
    store = store_of(make_app(tmp_path).Table("counts", default=int, key_type=str,
                                              partitions=2))
    topic = store.changelog_topic
    store.apply_changelog_batch([cl_event(topic, 0, 0, b'"a"', b"1"),
                                 cl_event(topic, 1, 0, b'"b"', b"2")], None, None)
    asyncio.run(store.on_recovery_completed({TP(topic, p) for p in active},
                                            {TP(topic, p) for p in {0, 1} - active}))
    return store


def test_a_worker_stopping_beside_another_marks_its_partitions_revoked(
        tmp_path: Path) -> None:
    # Before: worker B (active for partition 0, standby for 1) stopped cleanly, worker A took
    # partition 0 over and went on writing it, and B's directory still answered B's last
    # values for partition 0 as current (probe: 22 keys of 60 stale per table, 4 of them
    # deleted since, i.e. resurrected).
    store = _recovered(tmp_path, {0})
    counts = Store.open(tmp_path / "tables").table("counts")
    assert counts.get("a")["value"] == 1
    with pytest.raises(PartitionsNotHeld):
        counts.get("b")
    asyncio.run(store.on_stop())
    with pytest.raises(PartitionsNotHeld):
        counts.get("a")
    with pytest.raises(PartitionsNotHeld):
        counts.get("b")


def test_a_worker_active_for_every_partition_still_serves_them_after_its_stop(
        tmp_path: Path) -> None:
    store = _recovered(tmp_path, {0, 1})
    asyncio.run(store.on_stop())
    counts = Store.open(tmp_path / "tables").table("counts")
    assert counts.get("a")["value"] == 1 and counts.get("b")["value"] == 2
    assert counts.get("nope") is None

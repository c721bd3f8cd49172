"""The faust store's journal: what may reach the disk, and what reads see meanwhile."""

from __future__ import annotations

from connectors.faust_journal import Journal


def _rows(taken: dict, p: int) -> dict:
    return taken[p].rows if p in taken else {}


def test_a_logged_write_waits_for_its_ack_and_for_durability() -> None:
    j = Journal()
    j.write(0, b"k", b"1", logged=True)
    assert j.lookup(0, b"k") == (True, b"1")
    assert j.take() == {}
    assert j.acked(0, 7, b"k", b"1") is None
    assert j.take() == {}  # acknowledged, not yet declared persisted
    j.durable(0, 7)
    taken = j.take()
    assert taken[0].rows == {b"k": b"1"} and taken[0].offset == 7
    assert j.lookup(0, b"k") == (True, b"1")  # visible until settled
    j.settle(taken)
    assert j.lookup(0, b"k") == (False, None)
    assert j.waiting() == 0


def test_take_stops_at_the_first_write_not_yet_acknowledged() -> None:
    j = Journal()
    for i in range(3):
        j.write(1, b"k%d" % i, b"v%d" % i, logged=True)
    j.acked(1, 10, b"k0", b"v0")
    j.durable(1, 10)
    assert _rows(j.take(), 1) == {b"k0": b"v0"}
    j.acked(1, 11, b"k1", b"v1")
    j.acked(1, 12, b"k2", b"v2")
    j.durable(1, 11)
    taken = j.take()
    assert taken[1].rows == {b"k1": b"v1"} and taken[1].offset == 11
    j.durable(1, 12)
    assert j.take()[1].offset == 12


def test_the_newest_write_of_a_key_stays_visible_while_an_older_one_is_settled() -> None:
    j = Journal()
    j.write(0, b"k", b"1", logged=True)
    j.write(0, b"k", None, logged=True)
    j.acked(0, 0, b"k", b"1")
    j.durable(0, 0)
    taken = j.take()
    j.settle(taken)
    assert j.lookup(0, b"k") == (True, None)  # the delete still waits
    j.acked(0, 1, b"k", None)
    j.durable(0, 1)
    taken = j.take()
    assert taken[0].rows == {b"k": None}
    j.settle(taken)
    assert j.lookup(0, b"k") == (False, None)


def test_a_local_write_waits_behind_earlier_logged_writes_of_its_partition() -> None:
    j = Journal()
    j.write(0, b"k", b"1", logged=True)
    j.write(0, b"k", None, logged=False)  # e.g. an expired window
    assert j.take() == {}
    j.acked(0, 3, b"k", b"1")
    j.durable(0, 3)
    taken = j.take()
    assert taken[0].rows == {b"k": None} and taken[0].offset == 3


def test_writes_below_the_disk_floor_are_skipped_but_still_settled() -> None:
    j = Journal()
    j.write(0, b"a", b"old", logged=True)
    j.acked(0, 4, b"a", b"old")
    j.durable(0, 4)
    taken = j.take(floor={0: 9})  # recovery already wrote the changelog up to 8
    assert taken[0].rows == {} and taken[0].offset is None
    j.settle(taken)
    assert j.lookup(0, b"a") == (False, None)


def test_a_failed_changelog_record_never_reaches_the_disk() -> None:
    j = Journal()
    j.write(0, b"a", b"1", logged=True)
    j.write(0, b"b", b"2", logged=True)
    j.failed(0, b"a")
    j.acked(0, 0, b"b", b"2")
    j.durable(0, 0)
    taken = j.take()
    assert taken[0].rows == {b"b": b"2"}


def test_an_unexpected_record_is_reported_and_journaled_as_the_changelog_has_it() -> None:
    j = Journal()
    problem = j.acked(0, 5, b"x", b"1")
    assert problem is not None and "offset 5" in problem
    j.write(0, b"k", b"1", logged=True)
    problem = j.acked(0, 6, b"other", b"2")
    assert problem is not None and "expected" in problem
    j.durable(0, 6)
    assert j.take()[0].rows == {b"x": b"1", b"other": b"2"}


def test_dropping_a_partition_forgets_its_writes() -> None:
    j = Journal()
    j.write(0, b"a", b"1", logged=True)
    j.write(1, b"b", b"2", logged=True)
    j.drop_partition(0)
    assert j.lookup(0, b"a") == (False, None)
    assert j.lookup(1, b"b") == (True, b"2")
    assert j.partitions() == [1]

"""Members on machines whose wall clocks disagree. A member was judged live by its own
`heartbeat_at` (its machine's clock) against the reader's clock: measured (probe h65, two
workers, member timeout 10 s, worker b's clock 30 s ahead), b took a for dead from the
start (`heartbeat_age_s` 30.5) and answered a's keys 503 for as long as both ran (8 of 20
lookups), while a kept b live for about 40 s after b's kill -9. Now a member is live by
when the reader last heard from it, on the reader's own clock (`Member.heard_at`, kept in
`cluster.json` for the API); records read back from the topic at start still carry only
the member's clock, and one dated ahead counts as heard at most now. No broker: the
membership thread's `_absorb` is fed records as its consumer returns them."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import pytest

from materializer.cluster import membership as membership_module
from materializer.cluster.membership import Membership
from materializer.cluster.record import Member, decode, encode
from materializer.cluster.routing import Routing
from materializer.cluster.view import ClusterView
from tests.cluster.helpers import OWN_USERS, member_record

TIMEOUT_MS = 10_000
SKEW_MS = 30_000


class Clock:
    """This machine's clocks (wall and monotonic move together), moved by the test."""

    def __init__(self) -> None:
        self.wall = time.time()
        self.mono = 1000.0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds

    def ms(self) -> int:
        return int(self.wall * 1000)


class Record:
    """A message of the membership topic as the consumer returns it."""

    def __init__(self, member: Member | None, offset: int, key: str | None = None) -> None:
        self._key = (key or (member.id if member is not None else "")).encode()
        self._value = encode(member) if member is not None else None
        self._offset = offset

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def offset(self) -> int:
        return self._offset


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(membership_module, "time", c)
    return c


def _membership(tmp_path: Path, clock: Clock, self_id: str = "a") -> Membership:
    """Worker `self_id` (owning partition 0, pid 4242), no broker."""
    started = clock.ms()
    return Membership({}, "g", str(tmp_path), self_id,
                      lambda: _with(member_record(self_id, (0,), clock.ms()), started),
                      heartbeat_ms=1000, timeout_ms=TIMEOUT_MS,
                      extra={"session_timeout_ms": 45_000})


def _with(m: Member, started_at: int, pid: int = 4242) -> Member:
    return replace(m, started_at=started_at, pid=pid)


def _live(routing: Routing) -> set[str]:
    return set(routing.members)


def _b(at_ms: int) -> Member:
    """Member b's record, owning partition 1, sent at `at_ms` by b's clock."""
    return member_record("b", (1,), at_ms)


def test_a_live_member_whose_clock_runs_behind_stays_live(tmp_path: Path,
                                                           clock: Clock) -> None:
    m = _membership(tmp_path, clock)
    m._absorb([], {("g.members", 0): 0})  # noqa: SLF001 - the topic read to its end
    for offset in range(20):  # b publishes every second, its clock 30 s behind this one's
        m._absorb([Record(_b(clock.ms() - SKEW_MS), offset)])  # noqa: SLF001
        assert _live(m.routing()) == {"a", "b"}
        assert m.routing().owner(OWN_USERS.name, 1).id == "b"  # type: ignore[union-attr]
        clock.advance(1.0)
    # the API reads the same from cluster.json (written on this machine's clock)
    m._write_file()  # noqa: SLF001
    view = ClusterView(tmp_path).routing()
    assert view is not None and _live(view) == {"a", "b"}
    described = {d["id"]: d for d in view.describe()["members"]}
    assert described["b"]["heartbeat_age_s"] == 1.0
    assert described["b"]["heartbeat_at"] < described["b"]["heard_at"] - SKEW_MS + 2000
    # silent for longer than the timeout, by this machine's clock: expired
    clock.advance(TIMEOUT_MS / 1000)
    assert _live(m.routing()) == {"a"}


def test_a_dead_member_whose_clock_ran_ahead_expires_a_timeout_after_it_fell_silent(
        tmp_path: Path, clock: Clock) -> None:
    m = _membership(tmp_path, clock)
    m._absorb([], {("g.members", 0): 0})  # noqa: SLF001
    for offset in range(5):  # b's clock 30 s ahead
        m._absorb([Record(_b(clock.ms() + SKEW_MS), offset)])  # noqa: SLF001
        clock.advance(1.0)
    assert _live(m.routing()) == {"a", "b"}
    clock.advance(TIMEOUT_MS / 1000 - 1 + 0.5)  # b was killed: nothing more from it
    assert _live(m.routing()) == {"a"}
    m._write_file()  # noqa: SLF001
    view = ClusterView(tmp_path).routing()
    assert view is not None and _live(view) == {"a"}
    assert view.owner(OWN_USERS.name, 1) is None  # 503 (no live owner), not forwarded


def test_records_read_back_at_start_are_aged_by_their_clock_at_most_from_now(
        tmp_path: Path, clock: Clock) -> None:
    """Before the topic's end is reached, a record says only what its sender's clock
    said: one dated 30 s ahead (a member dead since, on a machine whose clock runs ahead)
    counts as heard now, so it expires a timeout later, not 40 s later; one 20 s old by
    its clock is expired at once, as before."""
    m = _membership(tmp_path, clock)
    ahead, old = _b(clock.ms() + SKEW_MS), member_record("c", (), clock.ms() - 20_000)
    m._absorb([Record(ahead, 0), Record(old, 1)])  # noqa: SLF001 - history
    m._absorb([], {("g.members", 0): 2})  # noqa: SLF001 - the end: nothing more came
    assert _live(m.routing()) == {"a", "b"}
    clock.advance(TIMEOUT_MS / 1000 + 0.5)
    assert _live(m.routing()) == {"a"}


@pytest.mark.parametrize("skew_ms", [SKEW_MS, 0, -SKEW_MS])
def test_a_member_dead_while_this_worker_was_frozen_is_not_taken_for_live(
        tmp_path: Path, clock: Clock, skew_ms: int) -> None:
    """This worker's process was frozen (SIGSTOP) for 30 s; b published for 5 s of it and
    died. Its records arrive after the freeze (after an end of the topic librdkafka had
    reached before it): they are not news (heard at the arrival), they are aged by b's
    clock as far from this one as b's records heard live said. Measured live before
    (probe h65, clocks in sync): b read live for 10 s after the freeze."""
    m = _membership(tmp_path, clock)
    m._absorb([], {("g.members", 0): 0})  # noqa: SLF001
    for offset in range(5):
        m._absorb([Record(_b(clock.ms() + skew_ms), offset)])  # noqa: SLF001
        clock.advance(1.0)
    frozen = clock.ms()
    clock.advance(30.0)
    m._absorb([], {("g.members", 0): 5})  # noqa: SLF001 - an end reached before the freeze
    late = [Record(_b(frozen + i * 1000 + skew_ms), 5 + i) for i in range(5)]
    m._absorb(late)  # noqa: SLF001 - what b published meanwhile
    assert _live(m.routing()) == {"a"}
    clock.advance(0.5)  # b was alive after all: its next record, still aged by its clock
    m._absorb([Record(_b(clock.ms() + skew_ms), 10)])  # noqa: SLF001
    assert _live(m.routing()) == {"a", "b"}
    for offset in range(11, 20):  # and heard by its arrival again after a few seconds
        clock.advance(1.0)
        m._absorb([Record(_b(clock.ms() + skew_ms - 60_000), offset)])  # noqa: SLF001
    assert _live(m.routing()) == {"a", "b"}  # (its clock was set back a minute meanwhile)


def test_a_record_on_the_topic_cannot_say_when_it_was_heard() -> None:
    forged = decode(encode(_b(1)).replace(b'"v":1', b'"v":1,"heard_at":99999999999999'))
    assert forged.heard_at is None
    assert set(Routing([forged], None, 100_000, TIMEOUT_MS).members) == set()


def test_a_newer_claim_of_the_same_generation_wins_over_a_clock_that_runs_ahead() -> None:
    """Two claims of one partition with the same group generation: the newer assignment
    wins. d's assignment came first, but its machine's clock runs 30 s ahead, so its
    `assigned_at` read later than e's, and a dead d kept the partition (503) until it
    expired. Read on this worker's clock (`heard_at` against d's own `heartbeat_at`),
    e's is the newer."""
    now = 1_000_000_000
    d = Member("d", "http://d", 1, assigned_at=now - 8000 + SKEW_MS,
               heartbeat_at=now - 2000 + SKEW_MS, heard_at=now - 2000,
               relations=_b(0).relations)
    e = Member("e", "http://e", 1, assigned_at=now - 3000, heartbeat_at=now - 500,
               heard_at=now - 500, relations=_b(0).relations)
    routing = Routing([d, e], None, now, TIMEOUT_MS)
    assert routing.owner(OWN_USERS.name, 1).id == "e"  # type: ignore[union-attr]


def test_a_twin_is_told_by_its_records_arriving_not_by_its_clock(
        tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    """A record with this worker's id from an earlier run (read back at start) is no
    twin even when its machine's clock was ahead; one that arrives while this worker runs
    and that it did not write is, also from a machine whose clock runs 30 s behind."""
    m = _membership(tmp_path, clock, self_id="w")
    earlier = _with(member_record("w", (), clock.ms() + SKEW_MS), clock.ms() + SKEW_MS - 9,
                    pid=1)
    with caplog.at_level(logging.WARNING, "materializer.cluster"):
        m._absorb([Record(earlier, 0)])  # noqa: SLF001 - history
        m._absorb([], {("g.members", 0): 1})  # noqa: SLF001
        assert "publishes with this worker's id" not in caplog.text
        twin = _with(member_record("w", (), clock.ms() - SKEW_MS), clock.ms() - SKEW_MS - 9,
                     pid=2)
        m._absorb([Record(twin, 1)])  # noqa: SLF001
    assert "publishes with this worker's id 'w'" in caplog.text

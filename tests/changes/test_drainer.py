"""The supervisor's drainer of `run --processes N` (materializer.changes.drainer), without a
broker: it drains until stopped, drains once more at `finish`, and keeps a failure a retry
cannot fix for the supervisor (calling `on_failure`) instead of dying silently."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any, cast

from materializer.changes.drainer import OutboxDrainer
from materializer.errors import StoreError


class FakeOutbox:
    """Holds `waiting` events; each drain sends them all (or raises `error`)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.spec = SimpleNamespace(name="shop.users")
        self.waiting = 0
        self.drained_total = 0
        self.calls = 0
        self.error = error

    def drain(self, max_chunks: int | None = None) -> int:
        self.calls += 1
        if self.error is not None:
            raise self.error
        n, self.waiting = self.waiting, 0
        self.drained_total += n
        return n

    def backlog(self) -> int:
        return self.waiting


def _wait(cond: Any, what: str) -> None:
    deadline = time.monotonic() + 60
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_drains_while_running_and_once_more_at_finish() -> None:
    box = FakeOutbox()
    failed = threading.Event()
    drainer = OutboxDrainer([cast(Any, box)], failed.set)
    drainer.start()
    box.waiting = 5
    _wait(lambda: box.drained_total == 5, "the loop to drain")
    drainer.finish(time.monotonic() + 60)
    calls = box.calls
    box.waiting = 3  # staged by a worker's last batch before it stopped
    drainer.finish(time.monotonic() + 60)  # the loop is gone: the last round still drains
    assert box.calls == calls + 1 and box.drained_total == 8
    assert drainer.metrics() == {"outbox_backlog": {"shop.users": 0},
                                 "change_events_total": {"shop.users": 8}}
    assert drainer.failure is None and not failed.is_set()


def test_a_failure_no_retry_fixes_is_kept_and_reported() -> None:
    err = StoreError("the outbox cannot be read")
    box = FakeOutbox(err)
    failed = threading.Event()
    drainer = OutboxDrainer([cast(Any, box)], failed.set)
    drainer.start()
    assert failed.wait(10)
    assert drainer.failure is err
    calls = box.calls
    drainer.finish(time.monotonic() + 60)
    assert box.calls == calls  # no last round after a failure: the supervisor raises it

"""The worker's snapshot schedule (`snapshots: {every, keep, tables}` in the declaration).

`SnapshotScheduler.tick()` is called from the worker's loop between batches and costs a
clock read. A snapshot is due at each multiple of `every` since the epoch (UTC; `every:
1h` on the hour): when the newest scheduled snapshot is older than the latest such
instant. With none yet, the first is due at the first multiple after the worker starts;
after a stop across one or more multiples, one is taken at once. It is named
`auto-<instant>` (e.g. `auto-20250102T130000Z`) and taken by a child process
(`materializer.versions.child`), so ingestion never pauses for it; that process then
drops the oldest scheduled snapshots beyond `keep` (snapshots taken by hand are never
dropped). A snapshot that fails is logged and tried again after `min(every, 60 s)`.
A clock found behind the newest scheduled snapshot (it went back, or was ahead when that
one was taken) is logged and the schedule goes on from it, as at a first start: waiting
for the clock to reach that snapshot would take none until then.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import subprocess
import time
from collections.abc import Callable

from materializer.specs import Catalog
from materializer.versions.child import EXIT, command
from materializer.versions.paths import list_snapshots

log = logging.getLogger("materializer.versions")

CHECK_INTERVAL = 0.5
"""Seconds between two looks at the clock and the child process."""


def scheduled_name(instant: float) -> str:
    """`auto-YYYYmmddTHHMMSSZ` of a due instant (seconds since the epoch)."""
    return "auto-" + dt.datetime.fromtimestamp(instant, dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")


class SnapshotScheduler:
    """Takes the snapshots the catalog's `snapshots:` declares (does nothing without it)."""

    def __init__(self, catalog: Catalog, clock: Callable[[], float] = time.time) -> None:
        self.spec = getattr(catalog, "snapshots", None)  # None: no schedule
        self.store_path = catalog.store_path
        self.default_schema = catalog.default_schema
        self.clock = clock
        self.proc: subprocess.Popen[bytes] | None = None
        self._due = 0.0
        self._check_at = 0.0
        self._retry_at = 0.0
        self.last = clock()
        if self.spec is not None:
            taken = [m.created_at for m in list_snapshots(self.store_path) if m.scheduled]
            if taken:
                self.last = max(taken)
                self._clock_back(clock())

    def _clock_back(self, now: float) -> None:
        """If the clock is behind the newest scheduled snapshot (it went back), say so and
        go on from `now`, as at a first start."""
        if now < self.last:
            log.warning("the clock (%s) is behind the newest scheduled snapshot (%s): it went "
                        "back; the schedule goes on from now", _iso(now), _iso(self.last))
            self.last = now

    def due(self, now: float) -> float | None:
        """The instant a snapshot is due for at `now`, or None."""
        assert self.spec is not None
        self._clock_back(now)
        instant = math.floor(now / self.spec.every) * self.spec.every
        return instant if instant > self.last and now >= self._retry_at else None

    def tick(self) -> None:
        """Reap a finished snapshot process; start one when a snapshot is due."""
        if self.spec is None:
            return
        now_m = time.monotonic()
        if now_m < self._check_at:
            return
        self._check_at = now_m + CHECK_INTERVAL
        if self.proc is not None:
            code = self.proc.poll()
            if code is None:
                return
            self._finished(code)
        instant = self.due(self.clock())
        if instant is None:
            return
        name = scheduled_name(instant)
        self._due = instant
        try:
            self.proc = subprocess.Popen(
                command(self.store_path, name, self.spec.tables, scheduled=True,
                        keep=self.spec.keep, default_schema=self.default_schema),
                stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        except OSError as e:
            log.warning("cannot start the snapshot process for %s: %s", name, e)
            self._retry_at = self.clock() + min(self.spec.every, 60.0)

    def _finished(self, code: int) -> None:
        assert self.spec is not None
        self.proc = None
        if code in (0, EXIT["exists"]):  # exists: taken already (by a worker before a restart)
            self.last = self._due
            return
        log.warning("scheduled snapshot %s failed (exit %d, see its message above); trying "
                    "again in %.0f s", scheduled_name(self._due), code,
                    min(self.spec.every, 60.0))
        self._retry_at = self.clock() + min(self.spec.every, 60.0)

    def close(self, timeout: float = 5.0) -> None:
        """At shutdown: wait up to `timeout` for a snapshot being taken; after that it goes
        on on its own (it needs no worker), or dies leaving nothing listed."""
        if self.proc is None:
            return
        try:
            self._finished(self.proc.wait(timeout))
        except subprocess.TimeoutExpired:
            log.info("a scheduled snapshot is still being taken (pid %d); it finishes on its "
                     "own", self.proc.pid)

"""What `materializer run` says about its progress: rate, lag and ETA per table.

On a terminal a live line is redrawn about once a second (text logs only: with
`--log-format json` every line on stderr stays one JSON object, so progress is logged as
elsewhere). Otherwise (logs) a line is written every 10 s while records are being
applied, with the lag of each lagging partition while catching up, and at most one line
a minute when idle. A table with a partition whose end offset is not current reads "lag
unknown", never "lag 0, caught up".
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from materializer.logsetup import LOG_FORMAT_ENV

log = logging.getLogger("materializer.worker")

BUSY_EVERY = 10.0
IDLE_EVERY = 60.0


def _eta(lag: int, rate: float) -> str:
    if lag <= 0:
        return "caught up"
    if rate <= 0:
        return "ETA ?"
    s = lag / rate
    return f"ETA {s:.0f} s" if s < 120 else f"ETA {s / 60:.0f} min"


def _live_line() -> bool:
    """A redrawn line on stderr: only on a terminal and with text logs (a JSON log stream
    takes one object per line; `setup_logging` exports the format to the environment)."""
    return sys.stderr.isatty() and os.environ.get(LOG_FORMAT_ENV, "text").lower() != "json"


class Progress:
    """Turns the worker's per-partition progress into lines (see module doc)."""

    def __init__(self, live: bool | None = None, write: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.live = _live_line() if live is None else live
        self.write = write or (self._draw if self.live else self._log)
        self.clock = clock
        self._last: tuple[float, dict[str, int]] | None = None
        self._last_line = float("-inf")

    def update(self, parts: Sequence[Mapping[str, Any]], applied: Mapping[str, int]) -> None:
        """`parts`: the worker's partition progress; `applied`: records applied per relation
        since start. Writes a line when one is due."""
        now = self.clock()
        if self._last is None:
            self._last = (now, dict(applied))
            return
        t0, before = self._last
        dt = max(now - t0, 1e-6)
        busy = any(applied.get(k, 0) != before.get(k, 0) for k in applied)
        due = self.live or now - self._last_line >= (BUSY_EVERY if busy else IDLE_EVERY)
        if not due or (not self.live and now - t0 < 1.0):
            return
        self._last = (now, dict(applied))
        self._last_line = now
        self.write(self.line(parts, applied, before, dt))

    @staticmethod
    def line(parts: Sequence[Mapping[str, Any]], applied: Mapping[str, int],
             before: Mapping[str, int], seconds: float) -> str:
        by_rel: dict[str, list[Mapping[str, Any]]] = {}
        for p in parts:
            by_rel.setdefault(str(p["relation"]), []).append(p)
        out = []
        for name in sorted(set(by_rel) | set(applied)):
            rate = (applied.get(name, 0) - before.get(name, 0)) / seconds
            ps = by_rel.get(name, [])
            if not ps:  # its partitions are held by no one here (a rebalance): lag unknown
                out.append(f"{name}: {rate:,.0f} rec/s, no partitions assigned, lag unknown")
                continue
            unknown = [p for p in ps if p.get("lag") is None]
            if unknown:  # no current end offset (broker unreachable, not fetched yet)
                out.append(f"{name}: {rate:,.0f} rec/s, lag unknown ({len(unknown)} "
                           f"partition(s) with no current end offset), ETA ?")
                continue
            lag = sum(int(p.get("lag") or 0) for p in ps)
            lagging = [f"p{p['partition']} {int(p['lag']):,}" for p in ps if p.get("lag")]
            detail = f" ({', '.join(lagging[:8])})" if lagging and lag else ""
            out.append(f"{name}: {rate:,.0f} rec/s, lag {lag:,}{detail}, {_eta(lag, rate)}")
        return "; ".join(out) or "no partitions assigned yet"

    @staticmethod
    def _draw(text: str) -> None:
        sys.stderr.write("\r\x1b[K" + text[:200])
        sys.stderr.flush()

    @staticmethod
    def _log(text: str) -> None:
        log.info("%s", text)

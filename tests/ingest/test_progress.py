"""Progress lines of `materializer run`: rate, lag and ETA per table; quiet when idle."""

from __future__ import annotations

from materializer.ingest.progress import Progress


def test_a_line_gives_rate_lag_and_eta_per_table() -> None:
    parts = [{"relation": "shop.users", "partition": 0, "lag": 1000},
             {"relation": "shop.users", "partition": 1, "lag": 0},
             {"relation": "clicks", "partition": 0, "lag": 0}]
    line = Progress.line(parts, {"shop.users": 600, "clicks": 5}, {"shop.users": 100,
                                                                    "clicks": 5}, 10.0)
    assert "shop.users: 50 rec/s, lag 1,000 (p0 1,000), ETA 20 s" in line
    assert "clicks: 0 rec/s, lag 0, caught up" in line


def test_logs_every_10_s_when_busy_and_once_a_minute_when_idle() -> None:
    now = [0.0]
    lines: list[str] = []
    p = Progress(live=False, write=lines.append, clock=lambda: now[0])
    parts = [{"relation": "t", "partition": 0, "lag": 0}]
    applied = {"t": 0}
    for second in range(1, 181):  # busy for a minute, then idle for two
        now[0] = float(second)
        if second <= 60:
            applied = {"t": second * 100}
        p.update(parts, applied)
    busy = [x for x in lines if "100 rec/s" in x]
    assert 5 <= len(busy) <= 7
    assert len(lines) - len(busy) <= 3

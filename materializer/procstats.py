"""Process figures for metrics (Linux /proc; empty elsewhere): memory, CPU, open files."""

from __future__ import annotations

import os
import resource
import time

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = resource.getpagesize()


def process_stats(pid: int | None = None) -> dict[str, float]:
    """Resident memory (bytes), CPU seconds (user + system), open file descriptors and start
    time (Unix seconds) of a process (this one by default); missing figures are left out."""
    pid = pid or os.getpid()
    out: dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out["cpu_seconds_total"] = (int(fields[11]) + int(fields[12])) / _TICKS
        out["resident_memory_bytes"] = float(int(fields[21]) * _PAGE)
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        out["start_time_seconds"] = time.time() - uptime + int(fields[19]) / _TICKS
        out["open_fds"] = float(len(os.listdir(f"/proc/{pid}/fd")))
    except (OSError, ValueError, IndexError):
        pass
    return out

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
    fields = stat_fields(pid)
    if fields is None:
        return out
    try:
        out["cpu_seconds_total"] = (int(fields[11]) + int(fields[12])) / _TICKS
        out["resident_memory_bytes"] = float(int(fields[21]) * _PAGE)
        out["start_time_seconds"] = _boot_time() + int(fields[19]) / _TICKS
        out["open_fds"] = float(len(os.listdir(f"/proc/{pid}/fd")))
    except (OSError, ValueError, IndexError):
        pass
    return out


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (`[0]` is the state, `[19]` the
    start time in clock ticks since boot), None if unreadable or short (no such process,
    not Linux, /proc hidden)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2:].decode(errors="replace").split()  # the command
    return fields if len(fields) >= 22 else None  # name may hold anything, ")" included


_BOOT: list[float] = []


def _boot_time() -> float:
    """The boot time (Unix seconds): now minus /proc/uptime, read once per process. Read at
    every call it moved (the uptime's 10 ms steps and the wall clock's adjustments), so
    `process_start_time_seconds` changed at every scrape and `changes()`/`resets` rules
    took each scrape for a restart; the kernel's `btime` does not move but is whole seconds
    (truncated: a process looked up to 1 s older than it is, and a crash-loop check of its
    age was wrong by as much)."""
    if not _BOOT:
        with open("/proc/uptime") as f:
            _BOOT.append(time.time() - float(f.read().split()[0]))
    return _BOOT[0]


def pid_exists(pid: int) -> bool:
    """Whether the kernel knows a process `pid` (a zombie counts): False only when it says
    there is none; True when it cannot tell (another user's process)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True

"""What the worker reports about itself: counter names, lag, the status file, readiness.

One owner for each rule, shared by the worker, `materializer status`, `/metrics`,
`/readyz` and the demo:
- Counters (durable, per partition, committed with the rows): `applied`;
  `unchanged` for records a table's rules took without changing it (a version below the
  stored one, `ignore`'s later rows, the stored values again, a delete of an absent key;
  a table written blind counts them as `applied`): every record read is counted once;
  `dropped:<reason>` for records dropped by policy `null_key: drop`;
  `skipped:<reason>` and `dead_letter:<reason>` for records not applied because they
  could not be decoded or did not fit (or null keys under `null_key: dead_letter`).
  "Rejected" means exactly the skipped and dead-lettered ones; "dropped" is separate.
- Lag of a partition: `max(0, end - next_offset)`, None when the end is unknown (not
  fetched yet, paused, or its leader not reached lately). The end offset is shown as the
  broker reports it, never clamped. Unknown is never shown or counted as 0.
- The status file `<store>/worker.json` is replaced atomically about once a second;
  reading a missing, stale, partial or malformed one never raises. Its batch times are a
  cumulative `Histogram`. It names its writer (`pid`, `process`: boot, pid namespace and
  start time), so a reader on the same machine knows at once when that process is gone
  (kill -9 included), or stopped (SIGSTOP), instead of trusting its last words for
  `STALE_AFTER_S`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from materializer.procstats import pid_exists, stat_fields
from materializer.redact import scrub

STATUS_FILE = "worker.json"
STALE_AFTER_S = 10.0
AHEAD_SLACK_S = 2.0
"""How far in the future (by the reader's clock) a status may be dated and still count as
fresh: further, the wall clock was set back (or the writer's runs ahead) and its age
cannot be told, so it is not trusted (else a stalled worker read ready until the clock
caught up again, an hour after a step back of an hour)."""


def fresh_age(age: float) -> bool:
    """Whether a status `age` seconds old (by the reader's clock) counts as fresh."""
    return -AHEAD_SLACK_S <= age <= STALE_AFTER_S  # NaN is not

APPLIED = "applied"
UNCHANGED = "unchanged"
_POLICY_PREFIX = {"drop": "dropped", "skip": "skipped", "dead_letter": "dead_letter"}


def rejection_counter(policy: str, reason: str) -> str:
    """The counter a record routed by `policy` (drop, skip, dead_letter) adds to."""
    return f"{_POLICY_PREFIX[policy]}:{reason}"


def is_rejected(counter: str) -> bool:
    """Whether a counter counts rejected records (skipped or dead-lettered)."""
    return counter.startswith(("skipped:", "dead_letter:"))


def is_dropped(counter: str) -> bool:
    """Whether a counter counts records dropped by policy (null keys)."""
    return counter.startswith("dropped:")


def totals(counters: Mapping[str, int]) -> dict[str, int]:
    """Applied, dropped and rejected totals of one partition's counters."""
    return {"applied": counters.get(APPLIED, 0),
            "dropped": sum(n for k, n in counters.items() if is_dropped(k)),
            "rejected": sum(n for k, n in counters.items() if is_rejected(k))}


def lag(end: int | None, next_offset: int) -> int | None:
    """Records between the next offset to apply and the partition end (None: unknown)."""
    return None if end is None else max(0, end - next_offset)


def status_path(store_path: str | os.PathLike[str]) -> Path:
    return Path(store_path) / STATUS_FILE


def replace_json(path: Path, obj: Any, **dumps: Any) -> None:
    """Replace the JSON file `path` atomically (readers see the old or the new one, whole);
    OSError if it cannot be written (a full disk), leaving no temporary file behind."""
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(obj, **dumps))
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_status(store_path: str | os.PathLike[str], status: Mapping[str, Any]) -> None:
    """Replace the status file atomically (readers see the old or the new one, whole)."""
    replace_json(status_path(store_path), status)


def read_status(store_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The worker's last status, or None if the file is missing or not a JSON object."""
    try:
        status = json.loads(status_path(store_path).read_bytes())
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) else None


def number(v: Any) -> float | None:
    """A finite number from untrusted JSON, else None."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def writer_identity() -> dict[str, Any]:
    """`pid` and `process` of this process, for the status file (`writer_gone` reads them)."""
    pid = os.getpid()
    here, stat = _here(), _proc_stat(pid)
    return {"pid": pid,
            "process": None if here is None or stat is None else f"{here}:{pid}:{stat[1]}"}


def writer_gone(status: Mapping[str, Any]) -> bool:
    """Whether the process that wrote `status` is known to have ended (exited, killed, a
    zombie, or its pid now another process's). False when it cannot be known: no
    `process` in the status, or a writer on another machine, boot or pid namespace."""
    found = _writer_here(status)
    if found is None:
        return False
    pid, ident, here = found
    stat = _proc_stat(pid)
    if stat is not None:
        state, start = stat
        return state in ("Z", "X") or ident != f"{here}:{pid}:{start}"
    # no readable /proc entry: gone, or hidden from us (`hidepid`): ask the kernel
    return not pid_exists(pid)


def writer_stopped(status: Mapping[str, Any]) -> bool:
    """Whether the process that wrote `status` is stopped by job control (SIGSTOP,
    SIGTSTP): it applies nothing and writes no status until continued, so its last words
    ("caught up", lag 0) stop being true as records arrive, for up to `STALE_AFTER_S`
    before the file counts as stale. False when it cannot be known (as `writer_gone`). A
    tracing stop (`t`: strace, a debugger) does not count: a traced worker still runs."""
    found = _writer_here(status)
    if found is None:
        return False
    pid, ident, here = found
    stat = _proc_stat(pid)
    return stat is not None and stat[0] == "T" and ident == f"{here}:{pid}:{stat[1]}"


def _writer_here(status: Mapping[str, Any]) -> tuple[int, str, str] | None:
    """(pid, process identity, this machine's boot and pid namespace) of the process that
    wrote `status` when it ran on this machine, boot and pid namespace; else None (its
    state cannot be known here)."""
    pid, ident = status.get("pid"), status.get("process")
    if not isinstance(ident, str) or isinstance(pid, bool) or not isinstance(pid, int):
        return None
    here = _here()
    if here is None or not ident.startswith(here + ":"):
        return None
    return pid, ident, here


_HERE: list[str | None] = []


def _here() -> str | None:
    """This boot and pid namespace (`<boot id>:<pid namespace>`), None off Linux."""
    if not _HERE:
        try:
            boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
            _HERE.append(f"{boot}:{os.readlink('/proc/self/ns/pid')}")
        except OSError:
            _HERE.append(None)
    return _HERE[0]


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks) of process `pid` from /proc, None if unreadable."""
    fields = stat_fields(pid)
    return None if fields is None else (fields[0], fields[19])


_PID = re.compile(r" \(pid [^)]*\)")
"""A process id as a merged status's `not_caught_up` names it (`worker process 1 (pid N)`)."""


def readiness(status: Mapping[str, Any] | None, now: float | None = None) -> tuple[bool, str]:
    """(ready, reason): ready when the status is fresh (under 10 s old) and says caught up.

    The worker sets `caught_up` only when it has partitions assigned and each has a known
    lag of 0 (an end offset its leader gave lately, see `connectors.kafka_reach.Reach`), so a
    worker still joining its group, or cut off from its broker, is not ready; the reason
    counts the partitions lagging and those whose end offset is unknown. Nor is a worker
    whose change events cannot be delivered (`change_events_stuck`: an event larger than
    the producer or the change topic takes holds up every later one of its table).

    The reason is what the open `/readyz` answers (no token asked): it names no process id
    (the `status` command and the status file, for the store's operator, do).
    """
    if status is None:
        return False, "no worker status file (is the worker running?)"
    updated = status.get("updated_at")
    if not isinstance(updated, int | float) or isinstance(updated, bool):
        return False, "the worker status has no updated_at"
    if updated <= 0:  # `run --processes N`: a worker (started again) has not reported yet
        return False, "a worker process has not reported its status yet"
    age = (time.time() if now is None else now) - float(updated)
    if not fresh_age(age):  # also catches NaN
        if age < 0:
            return False, (f"the worker status is dated {-age:.0f} s in the future (was the "
                           "clock set back?)")
        return False, f"the worker status is {age:.0f} s old"
    if writer_gone(status):
        return False, "the worker is not running"
    if writer_stopped(status):
        return False, ("the worker is stopped (SIGSTOP or SIGTSTP): it applies nothing "
                       "until continued")
    stuck = status.get("change_events_stuck")
    if isinstance(stuck, dict) and stuck:
        name, why = min(stuck.items())
        return False, f"change events of {name} cannot be delivered: {str(why)[:400]}"
    if status.get("caught_up") is not True:
        if isinstance(waiting := status.get("retrying"), str):
            # the open /readyz shows it: no URL password or client secret (`redact.scrub`)
            return False, f"not caught up: a batch is retried ({scrub(waiting)[:300]})"
        if isinstance(why := status.get("not_caught_up"), str):  # `run --processes N`
            return False, f"not caught up: {_PID.sub('', why)[:400]}"
        parts = [p for p in _as_list(status.get("partitions")) if isinstance(p, dict)]
        if not parts:
            return False, "not caught up (no partitions assigned)"
        unknown = sum(1 for p in parts if number(p.get("lag")) is None)
        lagging = sum(1 for p in parts if (n := number(p.get("lag"))) is not None and n != 0)
        return False, (f"not caught up ({lagging} partition(s) lagging, {unknown} with an "
                       "unknown end offset: broker not reached or not fetched yet)")
    return True, "caught up"


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


BATCH_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Bucket bounds (seconds) of the worker's batch-time histogram in its status file."""


class Histogram:
    """A cumulative latency histogram in Prometheus style."""

    def __init__(self, buckets: tuple[float, ...] = BATCH_BUCKETS) -> None:
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self.sum += seconds
        self.count += 1
        for i, le in enumerate(self.buckets):
            if seconds <= le:
                self.counts[i] += 1

    def as_dict(self) -> dict[str, Any]:
        return {"buckets": [[le, c] for le, c in zip(self.buckets, self.counts, strict=True)],
                "sum": self.sum, "count": self.count}

"""The status of `run --processes N`: the workers' status files merged into one.

Each worker writes `<store>/worker.<I>.json`; the supervisor (materializer.ingest.processes)
merges them into `worker.json` every second, so `status`, `/readyz` and `/metrics` read one
status as with a single worker: partitions and assignments together, counters summed
(histogram buckets by position), start times the earliest, `updated_at` the oldest; caught
up only when every worker reported within `STALE_AFTER_S`, every partition has no lag and no
partition of the relations' topics or held before is left without a worker
(`merge_statuses`'s `known`); `not_caught_up` says why when the partitions' lag does not
(a worker process silent or stopped, partitions held by none).
The counters of a worker killed and started again are carried (`RetiredCounters`), so the
merged counters never fall.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from materializer.status import fresh_age, number, writer_stopped


def counters_of(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The counters among a worker's metrics: `*_total` figures (its process's CPU seconds
    and collections included) and the batch-time histogram; gauges (backlogs, memory,
    start time) are left out."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if key.endswith("_total") or key == "batch_seconds":
            out[key] = value
        elif isinstance(value, Mapping):
            inner = counters_of(value)
            if inner:
                out[key] = inner
    return out


class RetiredCounters:
    """The counters of worker processes that died and were started again. A new worker
    counts from 0; without these the merged counters (`records_applied_total`, ...) would
    fall at each restart. What a killed worker counted after its last status (at most a
    second of work) is not known and not carried."""

    def __init__(self) -> None:
        self.metrics: dict[str, Any] = {}

    def retire(self, status_path: Path) -> None:
        """Carry the counters of the dead worker's last status, and remove that status (the
        merge would count it again until the new worker writes its own)."""
        status = read_status_file(status_path)
        metrics = status.get("metrics") if status is not None else None
        if isinstance(metrics, dict):
            self.metrics = _add(self.metrics, counters_of(metrics))
        with contextlib.suppress(OSError):
            status_path.unlink()

    def add_to(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """`metrics` (the live workers' merged figures) with the retired counters added."""
        return _add(metrics, self.metrics) if self.metrics else metrics


def read_status_file(path: Path) -> dict[str, Any] | None:
    """A worker's status file, or None (missing or malformed)."""
    try:
        obj = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def merge_statuses(statuses: Sequence[Mapping[str, Any] | None], pid: int, stopping: bool,
                   now: float | None = None, known: set[tuple[str, int]] | None = None
                   ) -> dict[str, Any]:
    """One status of several workers: partitions and assignments together, numbers summed
    (histogram buckets by position), start times the earliest, `updated_at` the oldest;
    caught up only when every worker reported within `STALE_AFTER_S` (and is not stopped by
    a signal), every partition has
    no lag, and every (relation, partition) of `known` (the supervisor's: every partition
    of the relations' topics as recorded in the store, and any a worker listed) is
    held by a worker: a worker killed and started again holds none until the group gives
    its partitions back, and those partitions' records go unapplied meanwhile."""
    now = time.time() if now is None else now
    present = [s for s in statuses if s is not None]
    # a worker stopped by a signal (SIGSTOP) writes nothing until continued: its last
    # status ("lag 0") is not current, however recent
    fresh = [s for s in present
             if (u := number(s.get("updated_at"))) is not None and fresh_age(now - u)
             and not writer_stopped(s)]
    partitions = [p for s in present for p in _list(s.get("partitions"))]
    assigned = sorted({tuple(a) for s in present for a in _list(s.get("assigned"))
                       if isinstance(a, list)})
    held = {(p.get("relation"), p.get("partition")) for p in partitions if isinstance(p, dict)}
    retrying = next((r for s in fresh if isinstance(r := s.get("retrying"), str)), None)
    unheld = (known or set()) - held
    caught_up = (not stopping and len(fresh) == len(statuses) and bool(partitions)
                 and retrying is None
                 and all(isinstance(p, dict) and number(p.get("lag")) == 0 for p in partitions)
                 and not unheld)
    metrics: dict[str, Any] = {}
    for s in present:
        m = s.get("metrics")
        if isinstance(m, dict):
            metrics = _add(metrics, m)
    updated = [u for s in present if (u := number(s.get("updated_at"))) is not None]
    started = [u for s in present if (u := number(s.get("started_at"))) is not None]
    return {"pid": pid, "updated_at": min(updated) if len(updated) == len(statuses) else 0,
            "started_at": min(started, default=now),
            "group": next((s.get("group") for s in present), None),
            "stopping": stopping, "workers": len(statuses),
            "assigned": [list(a) for a in assigned], "partitions": _newest(present),
            "caught_up": caught_up, "retrying": retrying,
            "not_caught_up": None if caught_up else _why_not(statuses, now, unheld, stopping),
            "metrics": metrics}


def _why_not(statuses: Sequence[Mapping[str, Any] | None], now: float,
             unheld: set[tuple[str, int]], stopping: bool) -> str | None:
    """Why the merged status is not caught up when its partitions cannot tell (`/readyz`
    says it): a worker process silent or stopped, or partitions held by none;
    None when the partitions' lag says it (or nothing is assigned)."""
    if stopping:
        return "the worker processes are stopping"
    for index, s in enumerate(statuses):
        u = None if s is None else number(s.get("updated_at"))
        if s is None or u is None:
            return f"worker process {index} has not reported its status yet"
        if writer_stopped(s):
            return (f"worker process {index} (pid {s.get('pid')}) is stopped (SIGSTOP or "
                    "SIGTSTP): it applies nothing until continued")
        if not fresh_age(now - u):
            return f"worker process {index} has not reported for {now - u:.0f} s"
    if unheld:
        by_rel: dict[str, list[int]] = {}
        for rel, part in sorted(unheld, key=str):
            by_rel.setdefault(str(rel), []).append(part)
        named = "; ".join(f"{rel} {sorted(ps)}" for rel, ps in sorted(by_rel.items()))
        return (f"{len(unheld)} partition(s) held by no worker process (the group has not "
                f"assigned them yet, or a worker started again waits for them): {named[:300]}")
    return None


def _newest(statuses: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The workers' partitions, each (relation, topic, partition) once: a partition that
    moved between workers is listed by both until the one it left writes its status again
    (up to a second), and two samples of one series break a Prometheus scrape; the entry of
    the status written last is kept (`caught_up` still reads every entry)."""
    out: dict[Any, Any] = {}
    newest = sorted(statuses, key=lambda s: number(s.get("updated_at")) or 0.0)
    for s in newest:
        for p in _list(s.get("partitions")):
            key = ((p.get("relation"), p.get("topic"), p.get("partition"))
                   if isinstance(p, dict) else id(p))
            out.pop(key, None)  # the later status's entry, in its order
            out[key] = p
    return list(out.values())


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _add(a: Any, b: Any, key: str = "") -> Any:
    """`a` + `b` for status values: numbers summed (start times: the earliest), dicts key
    by key, lists position by position (histogram buckets `[le, count]`)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = _add(out[k], v, k) if k in out else v
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) == len(b) == 2 and not isinstance(a[0], list) and a[0] == b[0]:
            return [a[0], _add(a[1], b[1], key)]  # a histogram bucket: [le, count]
        if len(a) == len(b):
            return [_add(x, y, key) for x, y in zip(a, b, strict=True)]
        return a
    if number(a) is not None and number(b) is not None:
        return min(a, b) if "start_time" in key else a + b
    return a

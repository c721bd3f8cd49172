"""What the lookup API reports about itself and the worker: readiness and Prometheus text.

Sources, each read at request time (nothing is cached between scrapes):
- the store's durable per-partition counters and row counts (`partition_stats()`):
  records applied, dropped and rejected survive worker restarts;
- the worker's status file `<store>/worker.json` (written atomically about once a
  second): assignment, lag per partition, caught-up flag, batch latency histogram;
- the API process's own request latency, measured per endpoint (route template).

Guarantees: reading a missing, stale, partial or malformed status file never raises;
it only makes the worker look not ready. Per-partition lag and end offsets are exported
only from a fresh status (under `STALE_AFTER_S` old, not stopping): a killed worker's last
file never reads as lag 0; an absent `materializer_partition_lag` sample means unknown.
Label values are escaped per the Prometheus text format 0.0.4, so any relation or reason
name is safe.
"""

from __future__ import annotations

import math
import threading
import time
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from typing import Any

from materializer.procstats import process_stats
from materializer.status import (
    APPLIED,
    UNCHANGED,
    fresh_age,
    is_dropped,
    is_rejected,
    number,
    readiness,
    writer_gone,
    writer_stopped,
)

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1.0, 2.5)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


# ------------------------------------------------------------------ request latency


class LatencyRecorder:
    """Per-endpoint request latency histograms and request counts by status code.

    Thread-safe (one lock, held only for the increments), cheap enough to call on
    every request: one bisect and three additions.
    """

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self._lock = threading.Lock()
        # endpoint -> [per-bucket counts (non-cumulative, last is +Inf), sum]
        self._hist: dict[str, tuple[list[int], list[float]]] = {}
        self._codes: dict[tuple[str, int], int] = {}

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        i = bisect_left(self.buckets, seconds)
        with self._lock:
            h = self._hist.get(endpoint)
            if h is None:
                h = ([0] * (len(self.buckets) + 1), [0.0])
                self._hist[endpoint] = h
            h[0][i] += 1
            h[1][0] += seconds
            key = (endpoint, status)
            self._codes[key] = self._codes.get(key, 0) + 1

    def snapshot(self) -> tuple[dict[str, tuple[list[int], float]], dict[tuple[str, int], int]]:
        with self._lock:
            hist = {k: (list(v[0]), v[1][0]) for k, v in self._hist.items()}
            return hist, dict(self._codes)


# ---------------------------------------------------------------------- exposition


def _esc(v: object) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**kv: object) -> str:
    return "{" + ",".join(f'{k}="{_esc(v)}"' for k, v in kv.items()) + "}"


def _fmt(v: float) -> str:
    if isinstance(v, int):
        return str(v)
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


class Exposition:
    """Prometheus text being built: each family's HELP and TYPE come once, before its samples."""

    def __init__(self) -> None:
        self._families: dict[str, tuple[str, str, list[str]]] = {}

    def add(self, name: str, kind: str, help_: str, value: float, *, sample: str = "",
            **labels: object) -> None:
        """One sample of family `name`; `sample` is a suffix such as `_bucket`."""
        fam = self._families.get(name)
        if fam is None:
            fam = (kind, help_, [])
            self._families[name] = fam
        fam[2].append(f"{name}{sample}{_labels(**labels) if labels else ''} {_fmt(value)}")

    def histogram(self, name: str, help_: str, buckets: Iterable[tuple[float, int]],
                  total: float, count: int, **labels: object) -> None:
        """`buckets` are (upper bound, cumulative count) pairs; +Inf is added as `count`."""
        for le, c in buckets:
            if not math.isinf(le):
                self.add(name, "histogram", help_, c, sample="_bucket", **labels, le=_fmt(le))
        self.add(name, "histogram", help_, count, sample="_bucket", **labels, le="+Inf")
        self.add(name, "histogram", help_, total, sample="_sum", **labels)
        self.add(name, "histogram", help_, count, sample="_count", **labels)

    def text(self) -> str:
        out: list[str] = []
        for name, (kind, help_, samples) in self._families.items():
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(samples)
        return "\n".join(out) + "\n"


def add_store_metrics(exp: Exposition, stats: Mapping[str, list[dict[str, Any]]]) -> None:
    """Rows, next offsets and the durable counters, per relation and partition held by
    this store's worker (a revoked one only as `materializer_partition_revoked`: summed
    across a cluster's workers, its stale copy would count twice).

    Counter names written by the worker: `applied`, `dropped:<reason>`,
    `skipped:<reason>`, `dead_letter:<reason>`; others are exported generically.
    """
    for rel, parts in sorted(stats.items()):
        for st in parts:
            p = st.get("partition")
            if st.get("revoked"):  # another worker's (or nobody's): its copy here is not
                exp.add("materializer_partition_revoked", "gauge",  # served: not summed
                        "1 for a partition marked revoked from this store's worker (another "
                        "worker holds it, or the group session was lost): its rows, offsets "
                        "and counters here are a stale copy and are not exported.", 1,
                        relation=rel, partition=p)
                continue
            exp.add("materializer_rows", "gauge", "Rows (table) or events (stream) stored.",
                    st.get("rows", 0), relation=rel, partition=p)
            exp.add("materializer_next_offset", "gauge",
                    "Next source offset to apply, committed with the rows.",
                    st.get("next_offset", 0), relation=rel, partition=p)
            for name, n in sorted(st.get("counters", {}).items()):
                kind, _, reason = name.partition(":")
                if name == APPLIED:
                    exp.add("materializer_records_applied_total", "counter",
                            "Records applied to the store.", n, relation=rel, partition=p)
                elif name == UNCHANGED:
                    exp.add("materializer_records_unchanged_total", "counter",
                            "Records the table's rules took without a change (an older "
                            "version, ignore, the same values, a delete of an absent key).",
                            n, relation=rel, partition=p)
                elif is_dropped(name):
                    exp.add("materializer_records_dropped_total", "counter",
                            "Records dropped by policy (null keys).", n,
                            relation=rel, partition=p, reason=reason)
                elif is_rejected(name):
                    exp.add("materializer_records_rejected_total", "counter",
                            "Records rejected (undecodable or not fitting the columns), "
                            "by reason and policy.", n,
                            relation=rel, partition=p, reason=reason,
                            policy="skip" if kind == "skipped" else "dead_letter")
                else:
                    exp.add("materializer_store_counter_total", "counter",
                            "Other durable store counters.", n,
                            relation=rel, partition=p, counter=name)


def add_worker_metrics(exp: Exposition, status: Mapping[str, Any] | None,
                       now: float | None = None) -> None:
    """Liveness, lag per partition and batch latency from the worker's status file."""
    ready, _ = readiness(status, now)
    exp.add("materializer_worker_ready", "gauge",
            "1 if the worker status is fresh and caught up with every assigned partition.",
            int(ready))
    if status is None:
        return
    updated = number(status.get("updated_at"))
    # 0: `run --processes N` with a worker started again that has not reported yet (unknown)
    age = None if updated is None or updated <= 0 else (
        (time.time() if now is None else now) - updated)
    if age is not None:
        exp.add("materializer_worker_status_age_seconds", "gauge",
                "Seconds since the worker last wrote its status.", max(0.0, age))
    # lag and end offsets only from a live worker's status: a worker killed (or stopped)
    # leaves its last file behind, whose "lag 0" is no longer true (absent = unknown)
    live = (age is not None and fresh_age(age) and status.get("stopping") is not True
            and not writer_gone(status) and not writer_stopped(status))
    for part in _list(status.get("partitions")) if live else ():
        if not isinstance(part, dict):
            continue
        labels = {"relation": part.get("relation", ""), "topic": part.get("topic", ""),
                  "partition": part.get("partition", "")}
        for field, metric, help_ in (
                ("lag", "materializer_partition_lag", "Records behind the partition end."),
                ("end_offset", "materializer_partition_end_offset",
                 "End offset (high watermark) of the source partition."),
                ("next_offset", "materializer_partition_applied_offset",
                 "Next offset the worker will apply.")):
            v = number(part.get(field))
            if v is not None:
                exp.add(metric, "gauge", help_, v, **labels)
    metrics = status.get("metrics")
    if not isinstance(metrics, dict):
        return
    applied = number(metrics.get("records_applied_total"))
    if applied is not None:
        exp.add("materializer_worker_records_applied_total", "counter",
                "Records this worker process applied since it started.", applied)
    for key, metric, help_ in (
            ("dead_letters_total", "materializer_dead_letters_total",
             "Dead letters this worker process produced that the broker acknowledged (a "
             "copy it refused or lost is not counted; one sent again and acknowledged is)."),
            ("rebalances_total", "materializer_rebalances_total",
             "Partition assignments this worker process received."),
            ("registry_retries_total", "materializer_registry_retries_total",
             "Schema registry requests repeated after a failure.")):
        v = number(metrics.get(key))
        if v is not None:
            exp.add(metric, "counter", help_, v)
    for key, metric, kind, help_ in (
            ("outbox_backlog", "materializer_outbox_backlog", "gauge",
             "Change events committed but not yet acknowledged by the broker."),
            ("change_events_total", "materializer_change_events_total", "counter",
             "Change events (tombstones included) delivered by this worker process.")):
        per = metrics.get(key)
        for rel, n in sorted(per.items()) if isinstance(per, dict) else ():
            v = number(n)
            if v is not None:
                exp.add(metric, kind, help_, v, relation=rel)
    proc = metrics.get("process")
    for key, kind, help_ in (
            ("resident_memory_bytes", "gauge", "Resident memory of the worker process."),
            ("cpu_seconds_total", "counter", "CPU time of the worker process."),
            ("open_fds", "gauge", "Open file descriptors of the worker process."),
            ("start_time_seconds", "gauge", "Start time of the worker process (Unix)."),
            ("gc_collections_total", "counter",
             "Garbage collections of the worker process, every generation.")):
        v = number(proc.get(key)) if isinstance(proc, dict) else None
        if v is not None:
            exp.add(f"materializer_worker_process_{key}", kind, help_, v)
    hist = metrics.get("batch_seconds")
    if isinstance(hist, dict):
        pairs = [(float(b[0]), int(b[1])) for b in _list(hist.get("buckets"))
                 if isinstance(b, list) and len(b) == 2
                 and number(b[0]) is not None and number(b[1]) is not None]
        count, total = number(hist.get("count")), number(hist.get("sum"))
        if count is not None and total is not None:
            exp.histogram("materializer_batch_seconds",
                          "Time to apply and commit one batch (worker process).",
                          sorted(pairs), total, int(count))


def add_process_metrics(exp: Exposition, **labels: str) -> None:
    """The standard process_* figures of this (API) process, with `labels`."""
    for key, kind, help_ in (
            ("resident_memory_bytes", "gauge", "Resident memory size in bytes."),
            ("cpu_seconds_total", "counter", "Total user and system CPU time in seconds."),
            ("open_fds", "gauge", "Number of open file descriptors."),
            ("start_time_seconds", "gauge", "Start time of the process since the epoch.")):
        v = process_stats().get(key)
        if v is not None:
            exp.add(f"process_{key}", kind, help_, v, **labels)


def add_latency_metrics(exp: Exposition, rec: LatencyRecorder, **labels: str) -> None:
    hist, codes = rec.snapshot()
    for endpoint, (counts, total) in sorted(hist.items()):
        cum = 0
        pairs = []
        for le, c in zip(rec.buckets, counts, strict=False):
            cum += c
            pairs.append((le, cum))
        exp.histogram("materializer_api_request_seconds",
                      "Lookup API request latency in this process, by endpoint.",
                      pairs, total, sum(counts), endpoint=endpoint, **labels)
    for (endpoint, code), n in sorted(codes.items()):
        exp.add("materializer_api_requests_total", "counter",
                "Lookup API requests by endpoint and status code.", n,
                endpoint=endpoint, code=code, **labels)

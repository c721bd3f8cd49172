"""The status report (`materializer status`, the demo): store counters beside broker offsets.

Per relation and partition: rows, applied (next) offset, the broker's end offset as
it reports it (never clamped), lag and the dropped / rejected totals, all by the
rules of `materializer.status`. A partition whose applied offset the broker does not
hold (past its end: the topic was recreated; before its log start: retention deleted
records not applied yet) is flagged: its rows no longer match the topic.
"""

from __future__ import annotations

from typing import Any

from materializer.errors import InfrastructureError, NotFound
from materializer.specs import Catalog
from materializer.status import (
    fresh_age,
    lag,
    read_status,
    totals,
    writer_gone,
    writer_stopped,
)
from materializer.store import Store


def status_rows(catalog: Catalog, problems: list[str] | None = None,
                missing: list[str] | None = None) -> list[dict[str, Any]]:
    """Per relation and partition: rows, applied (next) offset, end offset, lag, counters.
    A topic whose end offsets cannot be read shows `None` there, and why is appended to
    `problems`. A relation whose topic does not exist (deleted, or not created yet) is
    appended to `missing` as a sentence, and its stored partitions are flagged `no_topic`:
    its END and LAG are unknown, never 0. Every partition of an existing topic has a row;
    one whose end offset did not answer (its leader away) is also a sentence in
    `missing`."""
    from connectors.kafka_admin import partition_count, watermarks  # noqa: PLC0415

    rows: list[dict[str, Any]] = []
    ends: dict[str, dict[int, tuple[int, int]]] = {}
    counts: dict[str, int] = {}
    absent: set[str] = set()
    # no data directory yet (the worker never ran): every relation has no state
    with Store(catalog.store_path, catalog.default_schema) as store:
        for spec in catalog.relations:
            try:
                stats = store.relation(spec.name).partition_stats()
            except NotFound:
                stats = []
            if spec.topic not in ends:
                try:
                    ends[spec.topic] = watermarks(catalog.kafka_config, spec.topic, {},
                                                  timeout=5)
                    counts[spec.topic] = partition_count(catalog.kafka_config, spec.topic)
                    if not ends[spec.topic] and not counts[spec.topic]:
                        absent.add(spec.topic)
                except InfrastructureError as e:
                    ends[spec.topic] = {}
                    if problems is not None:
                        problems.append(str(e))
            if spec.topic in absent and missing is not None:
                missing.append(f"{spec.name}: its topic {spec.topic} does not exist (deleted, "
                               "or not created yet): END and LAG are unknown")
            # every partition of the topic has a row, those whose end did not answer too
            seen = {s["partition"] for s in stats}
            stats += [{"partition": p, "rows": 0, "next_offset": 0, "counters": {}}
                      for p in sorted({*ends[spec.topic], *range(counts.get(spec.topic, 0))})
                      if p not in seen]
            unanswered = sorted(p for p in range(counts.get(spec.topic, 0))
                                if p not in ends[spec.topic])
            if unanswered and missing is not None:
                missing.append(f"{spec.name}: partition(s) {', '.join(map(str, unanswered))} "
                               f"of topic {spec.topic} gave no end offset within 5 s (leader "
                               "unavailable?): END and LAG are unknown")
            for s in sorted(stats, key=lambda s: s["partition"]):
                marks = ends[spec.topic].get(s["partition"])
                end = None if marks is None else marks[1]
                c = s["counters"]
                t = totals(c)
                rows.append({
                    "relation": spec.name, "kind": spec.kind, "partition": s["partition"],
                    "rows": s["rows"], "applied_offset": s["next_offset"],
                    "end_offset": end, "lag": lag(end, s["next_offset"]),
                    "null_keys_dropped": t["dropped"], "rejected": t["rejected"],
                    "counters": c, "flag": "no_topic" if spec.topic in absent
                    else offset_flag(s["next_offset"], marks),
                })
    return rows


def offset_flag(applied: int, marks: tuple[int, int] | None) -> str | None:
    """Why the broker does not hold a partition's applied offset, or None if it does."""
    if marks is None:
        return None
    low, high = marks
    if applied > high:
        return "past_end"
    if applied < low:
        return "before_log_start"
    return None


def flag_problems(rows: list[dict[str, Any]]) -> list[str]:
    """One line per flagged partition: what is wrong and what to run."""
    out = []
    for r in rows:
        if r.get("flag") == "past_end":
            why = (f"its applied offset {r['applied_offset']} is past the topic's end "
                   f"{r['end_offset']} (the topic was recreated or truncated)")
        elif r.get("flag") == "before_log_start":
            why = (f"its applied offset {r['applied_offset']} is before the log start "
                   "(retention deleted records not applied yet)")
        else:
            continue
        out.append(f"{r['relation']} partition {r['partition']}: {why}; its rows do not match "
                   f"the topic: run `materializer rebuild CONFIG {r['relation']}` (or declare "
                   "`on_reset: rebuild`)")
    return out


def format_status(rows: list[dict[str, Any]]) -> str:
    """The rows of `status_rows` as an aligned text table."""
    head = ("TABLE", "PART", "ROWS", "APPLIED", "END", "LAG", "NULL KEYS", "REJECTED", "FLAG")
    lines = [head]
    for r in rows:
        lines.append((r["relation"], str(r["partition"]), str(r["rows"]),
                      str(r["applied_offset"]), "?" if r["end_offset"] is None else
                      str(r["end_offset"]), "?" if r["lag"] is None else str(r["lag"]),
                      str(r["null_keys_dropped"]), str(r["rejected"]),
                      (r.get("flag") or "").upper().replace("_", " ")))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(line, widths, strict=True)))
                     for line in lines)


def worker_state_note(store_path: str) -> str | None:
    """A line for `status` when no worker is known to run on the store (None when one
    does): the table is then what the store holds, and LAG what it misses, with nobody
    applying it; or when a running worker's change events cannot be delivered."""
    return worker_state(store_path)[0]


def worker_state(store_path: str) -> tuple[str | None, bool]:
    """(`worker_state_note`, whether no worker is known to apply the store now: no status
    file, the worker stopped, gone, SIGSTOPped or its status stale; False when one runs or
    whether one does is not known)."""
    status = read_status(store_path)
    if status is None:
        return "no worker status file: no worker runs on this store (or none has yet)", True
    updated = status.get("updated_at")
    if status.get("stopping") and isinstance(updated, int | float):
        return "the worker stopped: nothing is applied until `materializer run` again", True
    if writer_gone(status):
        return (f"the worker (pid {status.get('pid')}) is not running: nothing is applied "
                "until `materializer run` again"), True
    if writer_stopped(status):
        return (f"the worker (pid {status.get('pid')}) is stopped (SIGSTOP or SIGTSTP): "
                "nothing is applied until it is continued"), True
    if not isinstance(updated, int | float) or isinstance(updated, bool):
        return "the worker status has no time: whether a worker runs is not known", False
    if updated <= 0:  # `run --processes N`: a worker started again has not reported yet
        return ("a worker process has not reported its status yet (one was started again): "
                "whether every partition is applied is not known yet"), False
    import time  # noqa: PLC0415

    age = time.time() - float(updated)
    if not fresh_age(age):
        if age >= 0:
            return f"the worker status is {age:.0f} s old: the worker is stalled or not " \
                "running", True
        return (f"the worker status is dated {-age:.0f} s in the future (was the clock set "
                "back?): whether a worker runs is not known"), False
    stuck = status.get("change_events_stuck")
    if isinstance(stuck, dict) and stuck:
        return "; ".join(f"change events of {name} cannot be delivered: {why}"
                         for name, why in sorted(stuck.items())), False
    return None, False


def unapplied_lag(rows: list[dict[str, Any]]) -> str | None:
    """`status`'s reason to exit 1 when no worker applies the store (`worker_state`): the
    partitions whose LAG is above 0, records on the topic nobody applies (None if none:
    a stopped worker's store that holds everything the topic does is not a failure)."""
    behind = [r for r in rows if isinstance(r.get("lag"), int) and r["lag"] > 0]
    if not behind:
        return None
    total = sum(r["lag"] for r in behind)
    names = sorted({r["relation"] for r in behind})
    return (f"{total} record(s) in {len(behind)} partition(s) of {', '.join(names)} are not "
            "applied and no worker is applying them: start `materializer run`")

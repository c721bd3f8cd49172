"""The status report (`materializer status`, the demo): store counters beside broker offsets.

Per relation and partition: rows, applied (next) offset, the broker's end offset as
it reports it (never clamped), lag and the dropped / rejected totals, all by the
rules of `materializer.status`.
"""

from __future__ import annotations

from typing import Any

from materializer.errors import InfrastructureError, NotFound
from materializer.specs import Catalog
from materializer.status import lag, totals
from materializer.store import Store


def status_rows(catalog: Catalog, problems: list[str] | None = None) -> list[dict[str, Any]]:
    """Per relation and partition: rows, applied (next) offset, end offset, lag, counters.
    A topic whose end offsets cannot be read shows `None` there, and why is appended to
    `problems`."""
    from connectors.kafka import end_offsets  # noqa: PLC0415

    rows: list[dict[str, Any]] = []
    ends: dict[str, dict[int, int]] = {}
    # no data directory yet (the worker never ran): every relation has no state
    with Store(catalog.store_path, catalog.default_schema) as store:
        for spec in catalog.relations:
            try:
                stats = store.relation(spec.name).partition_stats()
            except NotFound:
                stats = []
            if spec.topic not in ends:
                try:
                    ends[spec.topic] = end_offsets(catalog.kafka_config, spec.topic, timeout=5)
                except InfrastructureError as e:
                    ends[spec.topic] = {}
                    if problems is not None:
                        problems.append(str(e))
            seen = {s["partition"] for s in stats}
            stats += [{"partition": p, "rows": 0, "next_offset": 0, "counters": {}}
                      for p in ends[spec.topic] if p not in seen]
            for s in sorted(stats, key=lambda s: s["partition"]):
                end = ends[spec.topic].get(s["partition"])
                c = s["counters"]
                t = totals(c)
                rows.append({
                    "relation": spec.name, "kind": spec.kind, "partition": s["partition"],
                    "rows": s["rows"], "applied_offset": s["next_offset"],
                    "end_offset": end, "lag": lag(end, s["next_offset"]),
                    "null_keys_dropped": t["dropped"], "rejected": t["rejected"],
                    "counters": c,
                })
    return rows


def format_status(rows: list[dict[str, Any]]) -> str:
    """The rows of `status_rows` as an aligned text table."""
    head = ("TABLE", "PART", "ROWS", "APPLIED", "END", "LAG", "NULL KEYS", "REJECTED")
    lines = [head]
    for r in rows:
        lines.append((r["relation"], str(r["partition"]), str(r["rows"]),
                      str(r["applied_offset"]), "?" if r["end_offset"] is None else
                      str(r["end_offset"]), "?" if r["lag"] is None else str(r["lag"]),
                      str(r["null_keys_dropped"]), str(r["rejected"])))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(line, widths, strict=True)))
                     for line in lines)

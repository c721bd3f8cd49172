"""`snapshots:`: the snapshots the running worker takes on its own (see materializer.versions).

    snapshots:
      every: 1h          # a duration: 90s, 30m, 1h, 1d (a bare number is seconds); 1s..366d
      keep: 24           # the newest scheduled snapshots kept (default: all)
      tables: [users]    # default: every table and stream

Every problem is reported at its line and column, like the other keys.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from yaml.nodes import MappingNode, Node

from materializer.catalog.decl import At, suggest
from materializer.catalog.yamlnodes import NodeReader
from materializer.specs import SnapshotSchedule

SNAPSHOT_KEYS = ("every", "keep", "tables")
MIN_EVERY = 1.0
MAX_EVERY = 366 * 86400.0
"""A year: a longer period (`1000000000000000000d`) was taken and no snapshot ever was."""
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*\Z")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float | None:
    """Seconds in `90s`, `30m`, `1h`, `1.5d`, `500ms` or `3600` (seconds); None if not one."""
    m = _DURATION.match(text)
    if m is None:
        return None
    return float(m.group(1)) * _SECONDS[m.group(2) or "s"]


def format_duration(seconds: float) -> str:
    """`2h`, `30m`, `90s`, `1d`: the largest unit that divides `seconds`."""
    for unit in ("d", "h", "m", "s"):
        n = seconds / _SECONDS[unit]
        if n == int(n) and n >= 1:
            return f"{int(n)}{unit}"
    return f"{seconds:g}s"


def read_schedule(r: NodeReader, node: Node
                  ) -> tuple[SnapshotSchedule, At[tuple[At[str], ...]] | None] | None:
    """The schedule (tables as written, to check once the relations are known) and the
    `tables` entries with their places; None (problems reported) if it has no `every`."""
    if not isinstance(node, MappingNode):
        r.error(node, "`snapshots` must be a mapping, like `{every: 1h, keep: 24}`")
        return None
    every = keep = None
    seen_every = False
    tables: At[tuple[At[str], ...]] | None = None
    for k, v in r.mapping(node, "`snapshots`", SNAPSHOT_KEYS):
        if k.value == "every":
            seen_every = True
            s = r.scalar(v, "`snapshots.every`")
            if s is None:
                continue
            every = parse_duration(s.value)
            if every is None:
                r.error(s, f"`snapshots.every: {s.value}` is not a duration: write for "
                        "example 1h, 30m, 90s or 1d")
            elif every < MIN_EVERY:
                r.error(s, f"`snapshots.every: {s.value}` is shorter than 1s: snapshots copy "
                        "the tables, take them at most once a second")
                every = None
            elif every > MAX_EVERY:
                r.error(s, f"`snapshots.every: {s.value}` is longer than a year (366d): the "
                        "worker would never take one; take rare snapshots with `materializer "
                        "snapshot` from a scheduler")
                every = None
        elif k.value == "keep":
            n = r.integer(v, "`snapshots.keep`", minimum=1)
            keep = n.value if n is not None else None
        else:
            tables = r.names(v, "`snapshots.tables`")
    if every is None:
        if not seen_every:
            r.error(node, "`snapshots` needs `every` (how often, e.g. `every: 1h`), and "
                    "optionally `keep` (how many to keep) and `tables`")
        return None
    return SnapshotSchedule(every=every, keep=keep), tables


def check_tables(r: NodeReader, schedule: SnapshotSchedule,
                 tables: At[tuple[At[str], ...]] | None, declared: Collection[str],
                 default_schema: str) -> SnapshotSchedule:
    """The schedule with `tables` as qualified names; an unknown name is an error at it."""
    if tables is None:
        return schedule
    if not tables.value:
        r.error(tables.loc, "`snapshots.tables` is empty: leave it out to snapshot every "
                "table and stream")
    out: list[str] = []
    for t in tables.value:
        name = t.value if "." in t.value else f"{default_schema}.{t.value}"
        if name not in declared:
            r.error(t.loc, f"`snapshots.tables`: no table or stream named `{t.value}` is "
                    f"declared.{suggest(name, sorted(declared))}")
        elif name not in out:
            out.append(name)
    if not out:
        return schedule
    return SnapshotSchedule(every=schedule.every, keep=schedule.keep, tables=tuple(out))

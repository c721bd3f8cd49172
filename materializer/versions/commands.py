"""The command line of versions (wired into `materializer.cli`):

    materializer snapshot CONFIG NAME [--tables T...]   # take a consistent snapshot
    materializer snapshot CONFIG --drop NAME             # remove one
    materializer snapshots CONFIG [--json]               # list: name, time, offsets, size
    materializer diff CONFIG TABLE FROM [TO] [--format json|table] [--as-events]

`get` and `scan` take `--as-of NAME` (in `materializer.cli`). Exit codes as everywhere:
0 success, 1 not found or runtime failure, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from materializer.errors import NotFound, UsageError
from materializer.specs import Catalog, TableSpec

Handler = Callable[[argparse.Namespace], int]


def add_commands(sub: Any, handler: Handler) -> None:
    """Add `snapshot`, `snapshots` and `diff` to the CLI's subparsers; `handler` (the
    CLI's, which loads the declaration file) calls `run`."""
    s = sub.add_parser("snapshot", help="take a consistent snapshot of the tables while the "
                       "worker runs (or --drop one)")
    s.add_argument("config")
    s.add_argument("name", nargs="?", help="the snapshot's name (A-Z a-z 0-9 _ . -)")
    s.add_argument("--tables", nargs="+", metavar="TABLE",
                   help="only these tables and streams (default: all)")
    s.add_argument("--drop", metavar="NAME", help="remove snapshot NAME instead")
    s.set_defaults(func=handler, versions_command="snapshot")

    s = sub.add_parser("snapshots", help="list the snapshots: name, time, offsets, size")
    s.add_argument("config")
    s.add_argument("--json", action="store_true", help="one manifest per line")
    s.set_defaults(func=handler, versions_command="snapshots")

    s = sub.add_parser("diff", help="rows added, removed and modified between two versions "
                       "of a table (TO defaults to the live table)")
    s.add_argument("config")
    s.add_argument("table")
    s.add_argument("from_", metavar="FROM", help="a snapshot name")
    s.add_argument("to", nargs="?", metavar="TO", help="a snapshot name (default: live)")
    s.add_argument("--format", choices=("json", "table"), default="json",
                   help="JSON lines (default), or a table with Dolt's from_/to_/diff_type "
                        "columns")
    s.add_argument("--as-events", action="store_true",
                   help="Debezium change events (op c/u/d) as JSON lines instead")
    s.set_defaults(func=handler, versions_command="diff")


def run(args: argparse.Namespace, catalog: Catalog) -> int:
    command: str = args.versions_command
    if command == "snapshot":
        return _snapshot(args, catalog)
    if command == "snapshots":
        return _snapshots(args, catalog)
    return _diff(args, catalog)


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


def _snapshot(args: argparse.Namespace, catalog: Catalog) -> int:
    from materializer.versions.paths import drop_snapshot  # noqa: PLC0415
    from materializer.versions.take import take_snapshot  # noqa: PLC0415

    if (args.name is None) == (args.drop is None):
        raise UsageError("give a snapshot NAME to take, or --drop NAME to remove one")
    if args.drop is not None:
        if args.tables:
            raise UsageError("--tables is for taking a snapshot, not for --drop")
        drop_snapshot(catalog.store_path, args.drop)
        _out(f"snapshot {args.drop} dropped")
        return 0
    names = None if not args.tables else [_declared(catalog, t).name for t in args.tables]
    m = take_snapshot(catalog.store_path, args.name, names,
                      default_schema=catalog.default_schema)
    _out(f"snapshot {m.name} taken at {m.created}: {len(m.relations)} table(s) and "
         f"stream(s), {sum(r.rows for r in m.relations.values()):,} rows, {m.bytes:,} bytes")
    for name, r in sorted(m.relations.items()):
        _out(f"  {name}: {r.rows:,} rows, offsets {_offsets(r.offsets)}")
    return 0


def _declared(catalog: Catalog, name: str) -> Any:
    try:
        return catalog.relation(name)
    except KeyError:
        names = ", ".join(r.name for r in catalog.relations) or "none"
        raise NotFound(f"no table or stream named {name!r} in the catalog (declared: "
                       f"{names})") from None


def _offsets(offsets: dict[int, int] | Any) -> str:
    return " ".join(f"{p}:{o}" for p, o in sorted(offsets.items())) or "-"


def _snapshots(args: argparse.Namespace, catalog: Catalog) -> int:
    from materializer.store.lock import store_root  # noqa: PLC0415
    from materializer.versions.paths import list_snapshots  # noqa: PLC0415

    store_root(catalog.store_path, create=False)  # a file there, or another store format:
    manifests = list_snapshots(catalog.store_path)  # said (exit 1), not 'no snapshots yet'
    if args.json:
        for m in manifests:
            _out(json.dumps(m.to_json()))
        return 0
    rows = [("NAME", "CREATED", "TAKEN", "TABLE", "ROWS", "OFFSETS", "BYTES")]
    for m in manifests:
        taken = "scheduled" if m.scheduled else "manual"
        if not m.relations:
            rows.append((m.name, m.created, taken, "-", "-", "-", "0"))
        for name, r in sorted(m.relations.items()):
            rows.append((m.name, m.created, taken, name, f"{r.rows:,}", _offsets(r.offsets),
                         f"{r.bytes:,}"))
    _out(align(rows, right={4, 6}))
    if not manifests:
        _out("(no snapshots yet: materializer snapshot CONFIG NAME takes one)")
    return 0


def align(rows: Sequence[Sequence[str]], right: Iterable[int] = ()) -> str:
    """Rows of cells as an aligned text table (columns in `right` right-aligned)."""
    right = set(right)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) if i in right else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
                     for r in rows)


def _diff(args: argparse.Namespace, catalog: Catalog) -> int:
    from materializer.versions.diff import RelationDiff  # noqa: PLC0415

    spec = _declared(catalog, args.table)
    if args.as_events and args.format == "table":
        raise UsageError("--as-events writes JSON lines: leave out --format table")
    with RelationDiff(catalog.store_path, spec.name, args.from_, args.to,
                      catalog.default_schema) as diff:
        if args.as_events:
            from materializer.versions.events import event_lines  # noqa: PLC0415

            if not isinstance(spec, TableSpec):
                raise UsageError(f"{spec.name} is a stream: --as-events is for tables")
            out = sys.stdout.buffer
            for line in event_lines(diff, spec, time.time_ns() // 1_000_000):
                out.write(line + b"\n")
            return 0
        entries = (diff.entry(ch) for ch in diff.changes())
        if args.format == "json":
            for e in entries:
                _out(json.dumps(e, ensure_ascii=False))
            return 0
        _out(diff_table(diff.kind, diff.layout_a.names, diff.layout_b.names, entries))
    return 0


def _cell(v: Any) -> str:
    if v is None:
        return "NULL"
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


def diff_table(kind: str, names_a: Sequence[str], names_b: Sequence[str],
               entries: Iterable[dict[str, Any]]) -> str:
    """Diff entries as a text table with Dolt's columns: `from_<column>`..., `to_<column>`...,
    `diff_type` (streams: `diff_type`, `partition`, `offset`, then the event's columns)."""
    if kind == "stream":
        cols = list(dict.fromkeys([*names_b, *names_a]))
        rows: list[list[str]] = [["diff_type", "partition", "offset", *cols]]
        for e in entries:
            value = e["value"] or {}
            rows.append([e["diff_type"], str(e["partition"]), str(e["offset"]),
                         *(_cell(value.get(c)) for c in cols)])
        return align(rows, right={1, 2})
    cols = list(dict.fromkeys([*names_a, *names_b]))
    rows = [[*(f"from_{c}" for c in cols), *(f"to_{c}" for c in cols), "diff_type"]]
    for e in entries:
        a, b = e["from"] or {}, e["to"] or {}
        rows.append([*(_cell(a.get(c)) if e["from"] else "" for c in cols),
                     *(_cell(b.get(c)) if e["to"] else "" for c in cols), e["diff_type"]])
    return align(rows)

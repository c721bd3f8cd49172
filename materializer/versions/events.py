"""A table's diff as Debezium change events: what catches a downstream system up from a
snapshot without replaying the topic.

Each change becomes the event the worker would have emitted for it, encoded by the
table's own JSON envelope (`materializer.changes.envelope.JsonEnvelope`, with the
table's `changes: {schemas, columns}` settings): `added` is `op: c` (before null),
`modified` is `op: u` (before and after), `removed` is `op: d` followed by a tombstone
(null value) for the key, as on a change topic. `source.partition` is the partition the
row is in (in `to`, or in `from` for a removed row), `source.offset` the last offset
applied to that partition in `to`, `source.ts_ms` the time of `to` (a snapshot's
instant, or now for the live table) and `source.snapshot` "false".

Output: one JSON object per line, `{"key": <event key>, "value": <envelope or null>}`.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

from materializer.changes.envelope import JsonEnvelope
from materializer.changes.event import Change
from materializer.columns import key_signature
from materializer.errors import UsageError
from materializer.specs import TableSpec
from materializer.store.rows import decode_row
from materializer.versions.diff import RelationDiff, RowChange

OPS = {"added": "c", "modified": "u", "removed": "d"}
CHUNK = 1000


def event_lines(diff: RelationDiff, spec: TableSpec, now_ms: int) -> Iterator[bytes]:
    """The diff as change events, one JSON line (bytes, no newline) per Kafka message."""
    if diff.kind != "table":
        raise UsageError(f"{diff.name} is a stream: change events (--as-events) are for tables")
    names = tuple(diff.layout_b.names)
    missing = [n for n in names if n not in spec.column_names]
    if missing:
        raise UsageError(f"{diff.name}: column(s) {', '.join(missing)} of the stored rows are "
                         "not declared any more: diff with the declaration the rows were "
                         "written with")
    dropped = [n for n in diff.layout_a.names if n not in names]
    if dropped:  # a backward diff across `add-columns`: before images would lose them
        raise UsageError(f"{diff.name}: {diff.a.label} holds column(s) {', '.join(dropped)} "
                         f"that {diff.b.label} does not: the events are encoded in "
                         f"{diff.b.label}'s columns, so their before images would leave "
                         "those values out; diff the other way, or without --as-events")
    mismatch = declared_mismatch(diff, spec)
    if mismatch:
        raise UsageError(f"{diff.name}: the declaration no longer matches the rows of "
                         f"{'; '.join(mismatch)}. The events are encoded by the declaration: "
                         "diff with the one the rows were written with (versions on either "
                         "side of a rebuild that retyped a column give no events)")
    encoder = JsonEnvelope(spec, names)
    changes = (to_change(diff, ch) for ch in diff.changes() if isinstance(ch, RowChange))
    while True:
        chunk = list(islice(changes, CHUNK))
        if not chunk:
            return
        for _, key, value in encoder.encode(chunk, now_ms):
            yield b'{"key":' + key + b',"value":' + (b"null" if value is None else value) + b"}"


def declared_mismatch(diff: RelationDiff, spec: TableSpec) -> list[str]:
    """How `spec` differs from the stored form of `diff`'s versions in what the envelope
    encodes by the declaration: the key (its columns, order and types; the same in both
    versions, or the diff refused them) and the type of every stored column, in TO (the
    after images) and in FROM (the before images). Empty if it fits; each difference
    starts with the version it is in."""
    out = []
    held = key_signature(diff.key_columns, diff.key_types)
    declared = key_signature(spec.key_columns, spec.key_types)
    if held != declared:
        out.append(f"{diff.b.label}: key ({', '.join(held)}) is declared as "
                   f"({', '.join(declared)})")
    declared_types = {c.name: c.type for c in spec.columns}
    for side, layout in ((diff.b, diff.layout_b), (diff.a, diff.layout_a)):
        for name, stored in zip(layout.names, layout.types, strict=True):
            t = declared_types.get(name)
            if t is not None and str(t) != str(stored) and name not in diff.key_columns:
                out.append(f"{side.label}: column {name} {stored} is declared as {t}")
    return out


def to_change(diff: RelationDiff, ch: RowChange) -> Change:
    """A row change as the `Change` the worker would have applied (stored form, `to`'s
    row layout)."""
    names_a, names_b = diff.layout_a.names, diff.layout_b.names
    before = after = None
    if ch.from_raw is not None:
        before = _in_layout(decode_row(ch.from_raw, len(names_a)), names_a, names_b)
    if ch.to_raw is not None:
        after = decode_row(ch.to_raw, len(names_b))
    partition = ch.to_part if ch.to_part is not None else ch.from_part
    assert partition is not None
    offset = max(diff.b.offsets.get(partition, 0) - 1, 0)
    key = diff.key_codec.decode(ch.pos)
    return Change(OPS[ch.diff_type], partition, offset, diff.b.time_ms, key, before, after)


def _in_layout(row: tuple[Any, ...], names: tuple[str, ...], want: tuple[str, ...]
               ) -> tuple[Any, ...]:
    if names == want:
        return row
    by_name = dict(zip(names, row, strict=True))
    return tuple(by_name.get(n) for n in want)

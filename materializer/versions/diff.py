"""Keyed diffs between two versions of a relation, as Dolt shows them.

A version is a snapshot (its name) or the live relation (None). `RelationDiff` reads
both in one read transaction each and walks them together partition by partition, in
key order (`walk.differing`), merging the partitions' changes into one key order.

For a TABLE, one change per key whose row differs, with `diff_type`:
- `added`: the key has a row in `to` only (`from` is null);
- `removed`: in `from` only (`to` is null);
- `modified`: in both, with different values; `changed` lists the columns that differ
  (compared by name in the stored form; a column one version lacks reads as null).
Unchanged rows never appear. A key's row is the one `get` answers: the first served
partition holding it, so a key that moved between partitions is `modified` (or nothing),
not `removed` + `added`.

For a STREAM (no unique key), events are compared by (partition, key, source offset):
an event in `to` only is `added`, one in `from` only `removed` (trimmed by
`max_events_per_key`, or replayed after a rebuild), and an event whose value differs
at the same position is `removed` then `added` (values compared as a table's rows are:
an event stored before `add-columns` and the same record replayed since are one event).

A relation a complete snapshot (taken of the whole store) does not hold did not exist
then and reads as empty, unless the store held it undeclared then (left out: an error,
its rows then are not known); one a partial snapshot (`--tables`) does not hold is an
error.
Versions whose key columns or key types differ (a rebuild changed the key) cannot be
matched by key and are refused. So, with PartitionsNotHeld, are versions in which partitions
were marked revoked (another worker held them, a cluster worker's store holds its own
only): their rows are not known there, and would read as all added or removed (or as
unchanged); `held_only=True` compares the partitions held in both instead.

Changes come in a total order with a position (`pos`: bytes, the encoded key for a
table; key + partition + index for a stream) from which `changes(after=pos)` resumes:
that is the HTTP API's page cursor.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterable, Iterator, Sequence
from itertools import groupby
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple

from materializer.columns import key_signature
from materializer.errors import NotFound, PartitionsNotHeld, UsageError
from materializer.store.generation import Generation
from materializer.store.keys import split_stream_key
from materializer.store.rows import RowLayout, decode_row, split_event
from materializer.stored import from_storage, same_stored, to_json_value
from materializer.versions.paths import store_root_of
from materializer.versions.sides import LIVE, forget_dropped, open_side, resolve_name
from materializer.versions.walk import differing

if TYPE_CHECKING:
    pass



class RowChange(NamedTuple):
    """A table key whose row differs: raw stored rows and the partitions holding them."""

    pos: bytes
    diff_type: str
    from_part: int | None
    from_raw: bytes | None
    to_part: int | None
    to_raw: bytes | None
    changed: tuple[str, ...]


class EventChange(NamedTuple):
    """A stream event present in one version only."""

    pos: bytes
    diff_type: str
    partition: int
    stored_key: bytes
    raw: bytes


class RelationDiff:
    """The difference of relation `name` from version `from_` to version `to` (None: live).

    Holds a read transaction on each version until `close` (a context manager)."""

    def __init__(self, data_dir: str | os.PathLike[str], name: str, from_: str | None,
                 to: str | None, default_schema: str = "public", *,
                 held_only: bool = False) -> None:
        root = store_root_of(data_dir)
        forget_dropped()
        self.name = resolve_name(root, name, [from_, to], default_schema)
        self.a = open_side(root, self.name, from_)
        try:
            self.b = open_side(root, self.name, to)
        except BaseException:
            self.a.close()
            raise
        ga, gb = self.a.gen, self.b.gen
        if ga is None and gb is None:
            self.close()
            raise NotFound(f"{self.name} is in neither {self.a.label} nor {self.b.label}")
        ref = gb if gb is not None else ga
        assert ref is not None
        self.kind = ref.meta.kind
        if ga is not None and gb is not None:
            problem = _incompatible(ga, gb)
            if problem is not None:
                self.close()
                raise UsageError(f"{self.name} from {self.a.label} to {self.b.label}: "
                                 f"{problem}; rows cannot be matched by key")
        unheld = self.a.revoked | self.b.revoked
        if unheld and not held_only:
            where = " and ".join(s.label for s in (self.a, self.b) if s.revoked)
            self.close()
            raise PartitionsNotHeld(self.name, unheld, where)
        for side in (self.a, self.b):  # held_only: the partitions both versions hold
            side.parts = {p: db for p, db in side.parts.items() if p not in unheld}
        self.key_columns = ref.key_columns
        self.key_types = ref.key_types
        self.key_codec = ref.key_codec
        self.layout_a = (ga or ref).layout
        self.layout_b = ref.layout
        self._key_py = tuple(from_storage(t) for t in ref.key_types)
        self._key_js = tuple(to_json_value(t) for t in ref.key_types)

    def check_position(self, pos: bytes) -> None:
        """UsageError unless `pos` is a position `changes` gives (a page cursor): a key
        of the table; of a stream, an event's stored key (key and offset), its partition
        (4 bytes) and which version (0 or 1). Another would start a page elsewhere: an
        empty one reads as the end of the diff."""
        if self.kind == "table":
            ok = self.key_codec.is_key(pos)
        else:
            ok = len(pos) > 13 and pos[-1] in (0, 1) \
                and self.key_codec.is_key(pos[:-13], nulls=True)
        if not ok:
            raise UsageError(f"the cursor is not a position in the diff of {self.name}: "
                             "pass back the `next` value of the previous page")

    def __enter__(self) -> RelationDiff:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.a.close()
        if hasattr(self, "b"):
            self.b.close()

    @property
    def partitions(self) -> list[int]:
        return sorted(set(self.a.parts) | set(self.b.parts))

    # ------------------------------------------------------------------ changes

    def changes(self, after: bytes | None = None) -> Iterator[RowChange | EventChange]:
        """Every change, in order, after position `after` (from the start if None)."""
        if self.kind == "table":
            return self._table_changes(after)
        return self._stream_changes(after)

    def _walk(self, p: int, start: bytes | None) -> Iterator[tuple[bytes, int, bytes | None,
                                                                     bytes | None]]:
        for k, va, vb in differing(self.a.items(p, start), self.b.items(p, start)):
            yield k, p, va, vb

    def _table_changes(self, after: bytes | None) -> Iterator[RowChange]:
        parts = self.partitions
        walks = [self._walk(p, after) for p in parts]
        merged: Iterable[tuple[bytes, int, bytes | None, bytes | None]] = (
            walks[0] if len(walks) == 1 else heapq.merge(*walks, key=itemgetter(0)))
        names_a, names_b = self.layout_a.names, self.layout_b.names
        for k, group in groupby(merged, key=itemgetter(0)):
            if k == after:
                continue
            found = list(group)
            if len(parts) == 1:
                _, p, ra, rb = found[0]
                pa: int | None = p if ra is not None else None
                pb: int | None = p if rb is not None else None
            else:
                pa, ra, pb, rb = self._effective(k, parts, found)
            if ra is None and rb is None:
                continue
            if ra is None:
                yield RowChange(k, "added", None, None, pb, rb, ())
            elif rb is None:
                yield RowChange(k, "removed", pa, ra, None, None, ())
            elif ra != rb:
                changed = changed_columns(names_a, decode_row(ra, len(names_a)),
                                          names_b, decode_row(rb, len(names_b)))
                if changed:
                    yield RowChange(k, "modified", pa, ra, pb, rb, tuple(changed))

    def _effective(self, key: bytes, parts: list[int],
                   found: list[tuple[bytes, int, bytes | None, bytes | None]]
                   ) -> tuple[int | None, bytes | None, int | None, bytes | None]:
        """(partition, row) of `key` in each version as `get` answers it: the one
        partition holding it; AmbiguousKeyError if either version holds it in more than
        one (as `get` raises). Partitions without a change hold the same in both."""
        known = {p: (va, vb) for _, p, va, vb in found}
        held_a: list[tuple[int, bytes]] = []
        held_b: list[tuple[int, bytes]] = []
        for q in parts:
            if q in known:
                va, vb = known[q]
            else:
                va = vb = self.a.get(q, key) if q in self.a.parts else self.b.get(q, key)
            if va is not None:
                held_a.append((q, va))
            if vb is not None:
                held_b.append((q, vb))
        for side, held in ((self.a, held_a), (self.b, held_b)):
            if len(held) > 1:
                raise side.ambiguous(key, [q for q, _ in held])
        pa, ra = held_a[0] if held_a else (None, None)
        pb, rb = held_b[0] if held_b else (None, None)
        return pa, ra, pb, rb

    def _stream_changes(self, after: bytes | None) -> Iterator[EventChange]:
        start = None if after is None else after[:-5]
        walks = [self._walk(p, start) for p in self.partitions]
        merged: Iterable[tuple[bytes, int, bytes | None, bytes | None]] = (
            walks[0] if len(walks) == 1 else heapq.merge(*walks, key=itemgetter(0, 1)))
        for k, p, va, vb in merged:
            if va is not None and vb is not None and self._same_event(va, vb):
                continue  # other bytes, the same event (a row from before add-columns)
            base = k + p.to_bytes(4, "big")
            if va is not None:
                pos = base + b"\x00"
                if after is None or pos > after:
                    yield EventChange(pos, "removed", p, k, va)
            if vb is not None:
                pos = base + b"\x01"
                if after is None or pos > after:
                    yield EventChange(pos, "added", p, k, vb)

    def _same_event(self, raw_a: bytes, raw_b: bytes) -> bool:
        """Whether two stored forms of one event (same key, partition, offset) hold the
        same event: one time and no column differing, compared as table rows are (a
        column one version lacks reads as null). The bytes alone may differ for one
        event: a row stored before `add-columns` is shorter than the same record
        replayed since (a rebuild), and marshal may write equal values differently."""
        ts_a, row_a = split_event(raw_a)
        ts_b, row_b = split_event(raw_b)
        if ts_a != ts_b or (row_a == b"") != (row_b == b""):
            return False
        if row_a == b"":
            return True
        names_a, names_b = self.layout_a.names, self.layout_b.names
        return not changed_columns(names_a, decode_row(row_a, len(names_a)),
                                   names_b, decode_row(row_b, len(names_b)))

    # ------------------------------------------------------------------ shapes

    def key_values(self, encoded: bytes, json_form: bool = True) -> list[Any]:
        """An encoded key as a list of values (JSON form, or the Python API's)."""
        convs = self._key_js if json_form else self._key_py
        return [v if v is None or c is None else c(v)
                for c, v in zip(convs, self.key_codec.decode(encoded), strict=True)]

    def entry(self, ch: RowChange | EventChange, json_form: bool = True) -> dict[str, Any]:
        """A change as the CLI, HTTP and Python API give it (see the module doc)."""
        if isinstance(ch, RowChange):
            out: dict[str, Any] = {
                "diff_type": ch.diff_type, "key": self.key_values(ch.pos, json_form),
                "from": _row(self.layout_a, ch.from_raw, json_form),
                "to": _row(self.layout_b, ch.to_raw, json_form)}
            if ch.diff_type == "modified":
                out["changed"] = list(ch.changed)
            return out
        kb, offset = split_stream_key(ch.stored_key)
        ts, payload = split_event(ch.raw)
        layout = self.layout_a if ch.diff_type == "removed" else self.layout_b
        return {"diff_type": ch.diff_type, "key": self.key_values(kb, json_form),
                "partition": ch.partition, "offset": offset, "timestamp": ts,
                "value": _row(layout, payload or None, json_form)}


def _row(layout: RowLayout, raw: bytes | None, json_form: bool) -> dict[str, Any] | None:
    if raw is None:
        return None
    return layout.to_json(raw) if json_form else layout.to_python(raw)


def _same(x: Any, y: Any) -> bool:
    """The same stored value (`stored.same_stored`: 1, True and 1.0 differ, and so do 0.0
    and -0.0); NaN equals NaN here: it did not change."""
    return same_stored(x, y) or (x != x and y != y)


def changed_columns(names_a: Sequence[str], row_a: Sequence[Any], names_b: Sequence[str],
                    row_b: Sequence[Any]) -> list[str]:
    """The columns whose stored values differ, in `names_b` order then those only in
    `names_a`; a column one side lacks reads as null there."""
    if tuple(names_a) == tuple(names_b):
        return [n for n, x, y in zip(names_b, row_a, row_b, strict=True) if not _same(x, y)]
    da = dict(zip(names_a, row_a, strict=True))
    db = dict(zip(names_b, row_b, strict=True))
    order = list(names_b) + [n for n in names_a if n not in db]
    return [n for n in order if not _same(da.get(n), db.get(n))]


def _incompatible(a: Generation, b: Generation) -> str | None:
    if a.meta.kind != b.meta.kind:
        return f"it is a {a.meta.kind} in one and a {b.meta.kind} in the other"
    ka = key_signature(a.key_columns, a.key_types)
    kb = key_signature(b.key_columns, b.key_types)
    if ka != kb:
        return f"the key changed from ({', '.join(ka)}) to ({', '.join(kb)})"
    return None



def iter_entries(data_dir: str | os.PathLike[str], name: str, from_: str | None,
                 to: str | None, *, json_form: bool = False, held_only: bool = False
                 ) -> Iterator[dict[str, Any]]:
    """Every change of `name` from `from_` to `to` as an entry (`RelationDiff.entry`);
    the versions are opened at once (errors raise here), read while iterating."""
    diff = RelationDiff(data_dir, name, from_, to, held_only=held_only)
    return _entries(diff, json_form)


def _entries(diff: RelationDiff, json_form: bool) -> Iterator[dict[str, Any]]:
    with diff:
        for ch in diff.changes():
            yield diff.entry(ch, json_form)


__all__ = ["LIVE", "EventChange", "RelationDiff", "RowChange",
           "changed_columns", "iter_entries", "open_side", "resolve_name"]

"""Debezium's unavailable values: a column an UPDATE left unchanged that the database did not
log (PostgreSQL: a TOASTed value under REPLICA IDENTITY DEFAULT; Oracle: LOB / XML), for
which Debezium writes its placeholder (`__debezium_unavailable_value`, or the relation's
`unavailable_value_placeholder`) instead of the value.

The decoders (`materializer.formats.placeholders`) return such a row as
`UnavailableFields` (those columns null, named in `columns`); the row decoders here shape it
into an `Unavailable` (the row, and the layout slots of those columns), and the table
applier fills the slots from the stored row (`restore`): the column keeps its value. A key
with no stored row (a new key, a `soft_primary_key` table, which never reads) and a stream
have nothing to take the value from: the record is a bad record, `unavailable_value`, never
a row holding the placeholder or a NULL where data was.

Only relations with a placeholder (`RelationSpec.unavailable_placeholder`: `debezium-json`,
`debezium-avro`, and `json`, `json_sr`, `avro` relations that declare one) use these row
decoders: the others never meet an `UnavailableFields` and pay nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

from materializer.errors import RecordError
from materializer.formats.base import DELETE, TypedValueDecoder, ValueDecoder
from materializer.formats.placeholders import UnavailableFields, unavailable_forms
from materializer.ingest.shaper import Shape, compile_shaper
from materializer.specs import DEBEZIUM_PLACEHOLDER, RelationSpec

RowDecoder = Callable[[bytes, tuple[Any, ...]], Any]


class Unavailable(NamedTuple):
    """A shaped row some of whose columns Debezium did not have: `row` holds null there;
    `columns` names them, `slots` are their places in the layout; `placeholder` is the
    text that stood there."""

    row: tuple[Any, ...]
    columns: tuple[str, ...]
    slots: tuple[int, ...]
    placeholder: str = DEBEZIUM_PLACEHOLDER


def unavailable_error(columns: Sequence[str], why: str,
                      placeholder: str = DEBEZIUM_PLACEHOLDER) -> RecordError:
    """The rejection of a record whose `columns` Debezium did not have (they held
    `placeholder`), and `why` there is no value to keep for them."""
    names = ", ".join(repr(c) for c in columns)
    return RecordError(
        f"column(s) {names} hold Debezium's placeholder {placeholder} (an "
        f"unchanged value the database did not log, e.g. a TOASTed PostgreSQL value) and "
        f"{why}: set REPLICA IDENTITY FULL on the source table, or produce the row first",
        "unavailable_value")


def restore(u: Unavailable, old: tuple[Any, ...] | None) -> tuple[Any, ...]:
    """`u`'s row with the stored row `old`'s values in its unavailable columns;
    RecordError(unavailable_value) when there is no stored row."""
    if old is None:
        raise unavailable_error(u.columns, "the key has no stored row to keep them from",
                                u.placeholder)
    row = list(u.row)
    for i in u.slots:
        row[i] = old[i] if i < len(old) else None
    return tuple(row)


class UnavailableShaper:
    """`UnavailableFields` + key tuple -> `Unavailable`, for `spec`'s rows in `layout`
    order: the shaper of `spec` except that the unavailable columns (null in the fields)
    are not checked for NOT NULL; the others are, as the shaper checks them."""

    __slots__ = ("_slot", "_not_null", "_relaxed", "_shapes")

    def __init__(self, spec: RelationSpec, layout: Sequence[str]) -> None:
        candidates = set(unavailable_forms(spec, binary=False))
        self._slot = {n: i for i, n in enumerate(layout)}
        self._not_null = tuple((n, self._slot[n]) for n in layout
                               if n in candidates and spec.column(n).not_null)
        self._relaxed = replace(spec, columns=tuple(
            replace(c, not_null=False) if c.name in candidates else c for c in spec.columns))
        self._shapes: dict[frozenset[str], Shape] = {}

    def __call__(self, fields: UnavailableFields, key: tuple[Any, ...],
                 stored: frozenset[str] = frozenset()) -> Unavailable:
        shape = self._shapes.get(stored)
        if shape is None:
            shape = self._shapes[stored] = compile_shaper(self._relaxed, list(self._slot),
                                                          stored)
        row = shape(fields, key)
        cols = fields.columns
        for n, i in self._not_null:
            if row[i] is None and n not in cols:
                raise RecordError(f"column {n!r} is NOT NULL but missing or null",
                                  "missing_column")
        return Unavailable(row, cols, tuple(self._slot[n] for n in cols), fields.placeholder)


def two_steps(spec: RelationSpec, layout: Sequence[str], value_decoder: ValueDecoder,
              shape: Shape) -> RowDecoder:
    """The general row decoder of a Debezium relation (`jsonrow.two_steps`): a row, DELETE,
    or an `Unavailable`."""
    held = UnavailableShaper(spec, layout)

    def decode(raw: bytes, key: tuple[Any, ...]) -> Any:
        fields = value_decoder(raw)
        if fields is DELETE:
            return DELETE
        if type(fields) is UnavailableFields:
            return held(fields, key)
        return shape(fields, key)
    return decode


def shaped_by_schema(spec: RelationSpec, layout: Sequence[str], decoder: TypedValueDecoder
                     ) -> RowDecoder:
    """`shaper.shaped_by_schema` for Avro values with a placeholder (`debezium-avro`, an
    `avro` relation that declares one): a row, DELETE, or an `Unavailable`."""
    shapes: dict[frozenset[str], Shape] = {}
    typed = decoder.typed
    held = UnavailableShaper(spec, layout)

    def decode(raw: bytes, key: tuple[Any, ...]) -> Any:
        fields, stored = typed(raw)
        if fields is DELETE:
            return DELETE
        if type(fields) is UnavailableFields:
            return held(fields, key, stored)
        shape = shapes.get(stored)
        if shape is None:
            shape = shapes[stored] = compile_shaper(spec, layout, stored)
        return shape(fields, key)
    return decode


def check_stream(fields: Mapping[str, Any]) -> None:
    """A stream's event cannot keep a value: RecordError(unavailable_value)."""
    if type(fields) is UnavailableFields:
        raise unavailable_error(fields.columns, "a stream has no stored row to keep them from",
                                fields.placeholder)

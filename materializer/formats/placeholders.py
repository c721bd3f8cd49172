"""Debezium's placeholder of a value it does not have, found in decoded rows.

For a column an UPDATE left unchanged that the database did not log (PostgreSQL: a
TOASTed value under REPLICA IDENTITY DEFAULT; Oracle: LOB / XML columns), Debezium writes
its `unavailable.value.placeholder` (default `__debezium_unavailable_value`) instead of the
value, in the envelope's `after` and, through the ExtractNewRecordState transform, in the
unwrapped row. A relation's placeholder is `RelationSpec.unavailable_placeholder`: the
declared `unavailable_value_placeholder`, else the default for `debezium-json` /
`debezium-avro`, else none (nothing is looked for, nothing is paid).

It is recognised (`unavailable_finder`) in the forms Debezium writes it: the text in a
string, json or decimal (`decimal.handling.mode=string`) column, its UTF-8 bytes in a bytes
column (raw bytes in Avro, their base64 text in JSON; with the column's `encoding`, their
text in it, or raw bytes from a field typed as bytes), a one-element list holding the
text in an array column, and the forms the PostgreSQL connector gives TOASTed arrays and
hstore (`UnchangedToastedPlaceholder`): an int[] or bigint[] as the placeholder's bytes as
numbers (an `array<int>` or `array<long>` column), a bytea[] as a one-element list of its
bytes (`array<bytes>`), a uuid[] as a one-element list of the name-based (version 3)
uuid of its bytes (`array<uuid>`), an hstore in map mode as `{text: text}`
(`map<string,string>`). The decoder then returns the row as `UnavailableFields`, with
those columns null and named in `columns`; the applier keeps the stored row's values
there, or rejects the record (`unavailable_value`) when there is none (see
`materializer.ingest.unavailable`).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from materializer.binary_text import bytes_text
from materializer.formats.connect_types import Plan, bytes_field
from materializer.specs import RelationSpec

_SCALAR_KINDS = frozenset(("string", "json", "decimal"))


class UnavailableFields(dict[str, Any]):
    """A decoded row some of whose values Debezium did not have: those columns
    (`columns`, in declaration order) are null here, their values are the stored row's;
    `placeholder` is the text that stood there."""

    __slots__ = ("columns", "placeholder")
    columns: tuple[str, ...]
    placeholder: str


def unavailable_forms(spec: RelationSpec, binary: bool) -> dict[str, Any]:
    """Value column -> the value that is the relation's placeholder in it (for an array or
    map column, the whole list or map: `_container_form`), for the columns of the types
    Debezium writes it to;
    empty when the relation has no placeholder. `binary`: Avro (a bytes column's raw
    bytes), else JSON (their base64 text). A bytes column that declares an `encoding`
    (binary.handling.mode hex, base64, base64-url-safe): their text in it, in either
    (`unavailable_finder` also knows the raw bytes a field typed as bytes gives)."""
    text = spec.unavailable_placeholder
    if text is None:
        return {}
    raw = text.encode()
    keys = set(spec.key_columns)
    out: dict[str, Any] = {}
    for c in spec.columns:
        kind = c.type.kind
        if c.name in keys:
            continue
        if kind in _SCALAR_KINDS:
            out[c.name] = text
        elif kind == "bytes":  # raw in Avro, else text (base64 unless the column says)
            enc = c.type.encoding
            out[c.name] = raw if binary and enc is None else bytes_text(enc)(raw)
        elif kind in ("array", "map"):
            form = _container_form(c.type.kind, c.type.item, text, binary)
            if form is not None:
                out[c.name] = form
    return out


def _container_form(kind: str, item: Any, text: str, binary: bool) -> Any:
    """The placeholder as Debezium's PostgreSQL connector writes it for a TOASTed array or
    hstore (`UnchangedToastedPlaceholder`), in an array or map column of `item`s: int[] and
    bigint[] as the placeholder's bytes as (signed) numbers, bytea[] a list of its bytes
    (base64 text in JSON), uuid[] a list of the name-based uuid of its bytes (Java's
    `UUID.nameUUIDFromBytes`), hstore (map mode) `{text: text}`, any other array a list of
    the text. None for a column Debezium writes no placeholder to."""
    raw = text.encode()
    item_kind = item.kind if item is not None else None
    if kind == "map":
        return {text: text} if item_kind == "string" else None
    if item_kind in ("int", "long"):
        return [b - 256 if b > 127 else b for b in raw]  # Java's (int) of a signed byte
    if item_kind == "bytes":
        return [raw if binary else bytes_text(None)(raw)]
    if item_kind == "uuid":
        return [str(uuid.UUID(bytes=hashlib.md5(raw).digest(), version=3))]  # noqa: S324
    return [text]


def unavailable_finder(spec: RelationSpec, binary: bool
                       ) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    """Row (columns named as declared) -> itself, or, when a column holds the placeholder,
    an `UnavailableFields` copy with those columns null; None when there is nothing to
    look for. Costs one lookup and comparison per string, bytes, json, decimal and array
    column (two for a bytes column with an `encoding`: its text, and the raw bytes of a
    field the schema types as bytes, after `connect_types.bytes_field`)."""
    forms = unavailable_forms(spec, binary)
    if not forms:
        return None
    text = spec.unavailable_placeholder
    assert text is not None
    looked = tuple(forms.items()) + tuple(
        (c.name, text.encode()) for c in spec.columns
        if c.name in forms and c.type.kind == "bytes" and c.type.encoding is not None)

    def found(after: dict[str, Any]) -> dict[str, Any]:
        get = after.get
        hits: list[str] | None = None
        for n, f in looked:
            if get(n) == f:
                hits = [n] if hits is None else [*hits, n]
        if hits is None:
            return after
        out = UnavailableFields(after)
        for n in hits:
            out[n] = None
        out.columns = tuple(hits)
        out.placeholder = text
        return out
    return found


def passing_placeholders(plan: Plan, forms: Mapping[str, Any]) -> Plan:
    """`plan` whose conversions of the columns in `forms` leave the placeholder as it is
    (a Json column would parse it as JSON text, an array's items convert one by one), for
    `unavailable_finder` to see it after the plan. A field typed as bytes for a bytes
    column with an `encoding` is converted all the same (`bytes_field`: the finder knows
    its raw bytes; its base64 text may equal the encoded form of other bytes)."""
    if not any(_passes(fix) and col in forms for _, col, fix in plan):
        return plan
    out = []
    for src, col, fix in plan:
        if fix is not None and fix is not bytes_field and col in forms:  # as `_passes`
            fix = _passing(fix, forms[col])
        out.append((src, col, fix))
    return tuple(out)


def _passes(fix: Callable[[Any], Any] | None) -> bool:
    return fix is not None and fix is not bytes_field


def _passing(fix: Callable[[Any], Any], form: Any) -> Callable[[Any], Any]:
    def passing(v: Any) -> Any:
        return v if v == form else fix(v)
    return passing

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
text in it, or raw bytes from a field typed as bytes), and a one-element list holding the
text in an array column. The decoder then returns the row as `UnavailableFields`, with
those columns null and named in `columns`; the applier keeps the stored row's values
there, or rejects the record (`unavailable_value`) when there is none (see
`materializer.ingest.unavailable`).
"""

from __future__ import annotations

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
    """Value column -> the value that is the relation's placeholder in it (for an array
    column, the one-element list), for the columns of the types Debezium writes it to;
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
        elif kind == "array":
            out[c.name] = [text]
    return out


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
    scalars = tuple((n, f) for n, f in forms.items() if type(f) is not list) + tuple(
        (c.name, text.encode()) for c in spec.columns
        if c.name in forms and c.type.kind == "bytes" and c.type.encoding is not None)
    arrays = tuple(n for n, f in forms.items() if type(f) is list)

    def found(after: dict[str, Any]) -> dict[str, Any]:
        get = after.get
        hits: list[str] | None = None
        for n, f in scalars:
            if get(n) == f:
                hits = [n] if hits is None else [*hits, n]
        for n in arrays:
            v = get(n)
            if type(v) is list and len(v) == 1 and v[0] == text:
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

"""JSON value bytes -> stored row, in one step, for `value_format: json` and `debezium-json`.

`row_decoder(spec, layout, value_decoder, shape)` returns `decode(raw, key) -> row | DELETE`.
The general form is the two steps every format takes: the value decoder (bytes -> field
mapping, see `materializer.formats.jsonformat`), then the row shaper. For plain JSON a
generated function does both at once with a typed msgspec decoder: a msgspec Struct of
the declared columns (strings, booleans, floating-point numbers and in-range integers
typed, and arrays and maps of them, so msgspec checks them in C; the other types
decoded as JSON and converted as the shaper converts them), unknown fields forbidden;
the struct's values are the row. For Debezium JSON the struct is the event's: `after` is
the typed row, `before` (read past by the two steps) is checked as JSON, and the whole
text as UTF-8 and for an integer json refuses (past `sys.get_int_max_str_digits()`), without
`before` being built, the other fields of an event are decoded as JSON (so the whole text
is checked as the two steps check it), an unknown field, the Connect wrapper or an op
other than c, r, u (a row) and d (DELETE) goes to the two steps.

Guarantee: `decode` returns exactly what the two steps return and raises exactly what
they raise. Whatever the typed path does not take goes to the two steps, which decide:
bytes msgspec refuses (not strict JSON, a lone surrogate, invalid UTF-8, a number out of
range, a value of another type than its column's), Debezium's placeholder of an
unavailable value (`materializer.ingest.unavailable`; in a Debezium event, or in a plain
JSON row that declares `unavailable_value_placeholder`), a field that is not a declared
column (its content is not checked by a typed decoder), a `payload` field (maybe Kafka
Connect's wrapper), an object without the first value column (maybe one that shares no
field with the declaration), a null in a NOT NULL column, a converter that raises.
"""

from __future__ import annotations

import codecs
import re
import sys
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import msgspec

from materializer.columns import ColumnType
from materializer.formats.base import DELETE, TypedValueDecoder, ValueDecoder
from materializer.formats.placeholders import unavailable_forms
from materializer.ingest import unavailable
from materializer.ingest.shaper import (
    Shape,
    accepts,
    shaped_by_schema,
    stored_form,
)
from materializer.specs import RelationSpec

RowDecoder = Callable[[bytes, tuple[Any, ...]], Any]
"""(value bytes, key tuple) -> the stored row tuple, or DELETE."""

MISSES_TO_STOP = 32


def typed_path_off(hits: int, misses: int) -> bool:
    """Whether a typed fast path (a relation's rows here, its JSON keys in `keypath`) that
    took `hits` inputs and missed `misses` (each then read by the general path) should stop
    being tried: once `MISSES_TO_STOP` misses are more than one per five hits."""
    return misses >= MISSES_TO_STOP and misses * 5 > hits
_RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_WRAPPER = ("schema", "payload")
_EVENT_FIELDS = ("source", "op", "ts_ms", "ts_us", "ts_ns", "transaction", *_WRAPPER)
"""The fields of a Debezium event besides `after` and `before` (the wrapper's, to see it)."""
_utf8 = codecs.utf_8_decode
_digits = re.compile(rb"[0-9]*").match
_max_digits = sys.get_int_max_str_digits
_FEWEST_DIGITS = 640
"""The lowest limit `sys.set_int_max_str_digits` takes (0, no limit, aside): text of at most
this many bytes holds no integer json refuses."""


def _holds_long_integer(b: bytes, limit: int) -> bool:
    """Whether `b` has a run of more than `limit` ASCII digits: where json, reading an
    integer of that many digits, raises (Python's `int` refuses past
    `sys.get_int_max_str_digits()`), though msgspec reads it past as `Raw`. A run that
    long covers one of the bytes looked at, every `limit + 1`-th; from there, its digits
    are counted to the right and checked to the left, in C: linear in `len(b)`."""
    run = limit + 1
    for p in range(limit, len(b), run):
        if 0x30 <= b[p] <= 0x39:
            m = _digits(b, p, p + run)  # `[0-9]*` matches: None only to the type checker
            need = run - (0 if m is None else m.end() - p)  # digits still wanted, left
            if need <= 0 or (p >= need and b[p - need:p].isdigit()):
                return True
    return False


def two_steps(value_decoder: ValueDecoder, shape: Shape) -> RowDecoder:
    """The general row decoder: decode the value, then shape the row."""
    def decode(raw: bytes, key: tuple[Any, ...]) -> Any:
        fields = value_decoder(raw)
        if fields is DELETE:
            return DELETE
        return shape(fields, key)
    return decode


def msgspec_type(t: ColumnType) -> Any:
    """The msgspec type that makes a value of type `t` arrive in stored form, or Any: an
    array (a map) of such items, nulls allowed, is a list (a dict) of them. Not double and
    float: msgspec would round a JSON integer past 2^53 into its float, which
    `values.to_storage` refuses (the shaper's test passes every float as it is)."""
    kind = t.kind
    if kind == "string":
        return str
    if kind == "boolean":
        return bool
    if kind in _RANGES:
        lo, hi = _RANGES[kind]
        return Annotated[int, msgspec.Meta(ge=lo, le=hi)]
    if kind in ("array", "map") and t.item is not None:
        item = msgspec_type(t.item)
        if item is Any:
            return Any
        nullable, generic = item | None, (list if kind == "array" else dict)
        return generic[nullable] if kind == "array" else generic[str, nullable]
    return Any


def row_decoder(spec: RelationSpec, layout: Sequence[str], value_decoder: ValueDecoder,
                shape: Shape) -> RowDecoder:
    """The row decoder of a relation (see the module doc)."""
    held = spec.unavailable_placeholder is not None  # Debezium's unavailable values
    if isinstance(value_decoder, TypedValueDecoder):
        if held:
            return unavailable.shaped_by_schema(spec, layout, value_decoder)
        return shaped_by_schema(spec, layout, value_decoder)
    if spec.value_format == "debezium-json":
        slow = unavailable.two_steps(spec, layout, value_decoder, shape)
        return _fused(spec, layout, slow, envelope=True)
    slow = (unavailable.two_steps(spec, layout, value_decoder, shape) if held
            else two_steps(value_decoder, shape))
    names = set(spec.column_names)
    if spec.value_format == "json" and not any(n in names for n in _WRAPPER):
        return _fused(spec, layout, slow, envelope=False)
    return slow


def _fused(spec: RelationSpec, layout: Sequence[str], slow: RowDecoder, envelope: bool
           ) -> RowDecoder:
    """The generated decoder: a plain JSON row, or (`envelope`) a Debezium event whose
    `after` is one (its other fields decoded as JSON, so the whole text is checked as the
    two steps check it; a wrapper, an unknown field or an op other than c, r, u, d: the
    two steps)."""
    keys = {n: i for i, n in enumerate(spec.key_columns)}
    value_cols = [c for c in spec.columns if c.name not in keys]
    fields: list[tuple[str, Any, Any]] = []
    rename: dict[str, str] = {}
    counts = [0, 0]  # records the typed path took, records it missed
    off = [False]

    def miss(raw: bytes, key: tuple[Any, ...]) -> Any:
        counts[1] += 1
        if typed_path_off(counts[0], counts[1]):
            off[0] = True  # this relation's records do not fit the typed path
        return slow(raw, key)

    namespace: dict[str, Any] = {"_slow": slow, "_miss": miss, "_UNSET": msgspec.UNSET,
                                 "_utf8": _utf8, "_max_digits": _max_digits,
                                 "_long_int": _holds_long_integer,
                                 "_counts": counts, "_off": off, "_DELETE": DELETE}
    var_of: dict[str, str] = {}
    for c in [*value_cols, *(spec.column(n) for n in spec.key_columns)]:
        var = f"f{len(fields)}"
        typ = msgspec_type(c.type) if c.name not in keys else Any
        fields.append((var, typ | None | msgspec.UnsetType, msgspec.UNSET))
        rename[var] = c.name
        var_of[c.name] = var
    row_vars = ", ".join(v for v, _, _ in fields)
    lines = ["def decode(raw, key):",
             "    if _off[0]:",
             "        return _slow(raw, key)"]
    if envelope:
        row = msgspec.defstruct(f"After_{abs(hash(spec.name))}", fields, rename=rename,
                                forbid_unknown_fields=True)
        # `before`, read past: msgspec checks it as JSON without building it (all but
        # its UTF-8, and the integers json refuses), where the two steps decode it, then
        # drop it. The whole text's UTF-8 is checked, and its digits when it is long
        # enough to hold such an integer: a `before` given twice is checked by msgspec
        # as JSON each time, but only the last one is kept (as is an escaped name)
        event = msgspec.defstruct(
            f"Event_{abs(hash(spec.name))}",
            [("after", row | None | msgspec.UnsetType, msgspec.UNSET),
             ("before", msgspec.Raw, msgspec.Raw()),
             *((n, Any, msgspec.UNSET) for n in _EVENT_FIELDS)],
            forbid_unknown_fields=True)
        namespace["_decode"] = msgspec.json.Decoder(event).decode
        lines += ["    try:",
                  "        event = _decode(raw)",
                  "        if not raw.isascii(): _utf8(raw, 'strict', True)",
                  "    except Exception:",
                  "        return _miss(raw, key)",
                  f"    if len(raw) > {_FEWEST_DIGITS}:",
                  "        limit = _max_digits()",
                  "        if limit and len(raw) > limit and _long_int(raw, limit):",
                  "            return _miss(raw, key)",
                  "    if event.schema is not _UNSET or event.payload is not _UNSET:",
                  "        return _miss(raw, key)",
                  "    op = event.op",
                  "    if op == 'd':",
                  "        _counts[0] += 1",
                  "        return _DELETE",
                  "    after = event.after",
                  "    if (op != 'c' and op != 'u' and op != 'r') or after is None or "
                  "after is _UNSET:",
                  "        return _miss(raw, key)",
                  f"    {row_vars}, = _astuple(after)"]
    else:
        for name in _WRAPPER:
            var = f"f{len(fields)}"
            fields.append((var, Any, msgspec.UNSET))
            rename[var] = name
        struct = msgspec.defstruct(f"Row_{abs(hash(spec.name))}", fields, rename=rename,
                                   forbid_unknown_fields=True)
        namespace["_decode"] = msgspec.json.Decoder(struct).decode
        lines += ["    try:",
                  f"        {', '.join(v for v, _, _ in fields)}, = _astuple(_decode(raw))",
                  "    except Exception:",
                  "        return _miss(raw, key)",
                  f"    if {fields[-1][0]} is not _UNSET:",  # a `payload` field
                  "        return _miss(raw, key)"]
    namespace["_astuple"] = msgspec.structs.astuple
    if value_cols:  # the first value column absent: the object may share no declared field
        lines += [f"    if {var_of[value_cols[0].name]} is _UNSET:",
                  "        return _miss(raw, key)"]
    forms = unavailable_forms(spec, binary=False)
    if forms:  # Debezium's placeholder of an unavailable value: the two steps mark it
        for name, form in forms.items():
            var = var_of[name]
            namespace[f"_ph{var}"] = form
            lines.append(f"    if {var} == _ph{var}:")
            lines.append("        return _slow(raw, key)")
    lines.append("    try:")
    slots = []
    for name in layout:
        if name in keys:
            slots.append(f"key[{keys[name]}]")
            continue
        col = spec.column(name)
        var = var_of[name]
        lines.append(f"        if {var} is _UNSET: {var} = None")
        if col.not_null:
            lines.append(f"        if {var} is None: raise LookupError")
        if msgspec_type(col.type) is Any:
            conv = f"_c{var}"
            namespace[conv] = stored_form(spec, name, col.type)
            test = accepts(col.type, var)
            cond = f"{var} is not None" + ("" if test is None else f" and not ({test})")
            lines.append(f"        if {cond}: {var} = {conv}({var})")
        slots.append(var)
    lines.append(f"        row = ({', '.join(slots)}{',' if len(slots) == 1 else ''})")
    lines.append("    except Exception:  # the two steps say precisely what is wrong")
    lines.append("        return _miss(raw, key)")
    lines.append("    _counts[0] += 1")
    lines.append("    return row")
    exec(compile("\n".join(lines), f"<json row decoder of {spec.name}>", "exec"),  # noqa: S102
         namespace)
    decode: RowDecoder = namespace["decode"]
    return decode

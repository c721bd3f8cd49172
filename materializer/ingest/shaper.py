"""Row shapers: a decoded field mapping + key tuple -> the stored row tuple, in layout order.

`RowShaper` is the reference: a loop over the columns' converters that raises a precise
RecordError for a value that does not fit. `compile_shaper` generates, once per relation,
one straight-line function that does the same work without the loop: each column's value
is read with one `get`, the common cases (a str for a string column, an int in range,
a finite float, a bool) are accepted by an inline type test, anything else goes through
the column's converter, and the result is built as one tuple.

Guarantee: the generated function returns exactly what `tuple(RowShaper.shape(...))`
returns, and raises exactly what it raises: whenever its inline path meets anything it
does not accept (a null in a NOT NULL column, a converter that raises), it hands the
record to the reference shaper, which returns or raises as it always did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from materializer.cautions import warn_once
from materializer.columns import ColumnType
from materializer.errors import RecordError
from materializer.formats.base import DELETE, TypedValueDecoder
from materializer.specs import RelationSpec
from materializer.temporal_values import PLAIN_MS
from materializer.values import FLOAT32_MAX, to_storage

Shape = Callable[[Mapping[str, Any], tuple[Any, ...]], tuple[Any, ...]]

_INT_RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


def stored_form(spec: RelationSpec, column: str, t: ColumnType) -> Any:
    """The converter of a value column of `spec` to its stored form (`to_storage`), which
    logs once per column a value it keeps not quite as carried (`materializer.cautions`)."""
    return to_storage(t, warn_once(spec.name, column))


class RowShaper:
    """Decoded field mapping + key tuple -> stored row (a list) in layout order.

    Key columns always come from the key (a value carrying them does not override).
    Raises RecordError for a value that does not fit its column.
    """

    __slots__ = ("width", "_plan", "_key_slots")

    def __init__(self, spec: RelationSpec, layout: Sequence[str]) -> None:
        self.width = len(layout)
        key_index = {n: i for i, n in enumerate(spec.key_columns)}
        plan = []
        key_slots = []
        for i, name in enumerate(layout):
            col = spec.column(name)
            if name in key_index:
                key_slots.append((i, key_index[name]))
            else:
                plan.append((i, name, stored_form(spec, name, col.type), col.not_null))
        self._plan = tuple(plan)
        self._key_slots = tuple(key_slots)

    def shape(self, fields: Mapping[str, Any], key: tuple[Any, ...]) -> list[Any]:
        out: list[Any] = [None] * self.width
        for i, k in self._key_slots:
            out[i] = key[k]
        get = fields.get
        name = ""
        try:
            for i, name, conv, not_null in self._plan:
                v = get(name)
                if v is None:
                    if not_null:
                        raise RecordError(f"column {name!r} is NOT NULL but missing or null",
                                          "missing_column")
                else:
                    out[i] = conv(v)
        except (TypeError, ValueError, ArithmeticError) as e:
            raise RecordError(f"column {name!r}: {e}", "type_mismatch") from e
        return out


def accepts(t: ColumnType, var: str) -> str | None:
    """A Python test that is true only when `var` (not None) is already in stored form for
    a column of type `t` (the converter would return an equal value), or None: always
    convert. An array (a list) or a map (a dict with str keys) passes when each of its
    items is null or passes its item type's test."""
    kind = t.kind
    if kind in ("array", "map") and t.item is not None:
        item = accepts(t.item, "x")
        if item is None:
            return None
        if kind == "array":
            return f"type({var}) is list and all(x is None or ({item}) for x in {var})"
        return (f"type({var}) is dict and all(type(k) is str and (x is None or ({item})) "
                f"for k, x in {var}.items())")
    if kind == "string":
        return f"type({var}) is str"
    if kind == "boolean":
        return f"type({var}) is bool"
    if kind == "double":
        return f"type({var}) is float and {var} - {var} == 0.0"  # finite: inf - inf is nan
    if kind == "float":  # 32-bit: nan and inf fail the comparisons
        return f"type({var}) is float and {-FLOAT32_MAX!r} <= {var} <= {FLOAT32_MAX!r}"
    if kind in _INT_RANGES:
        lo, hi = _INT_RANGES[kind]
        return f"type({var}) is int and {lo} <= {var} <= {hi}"
    return None


def inline_conversion(t: ColumnType, var: str, conv: str) -> str:
    """A Python expression equal to `conv(var)` (`var` not None, `conv` the column's
    `stored_form`) that does the commonest conversion inline: an integer timestamp in
    milliseconds (`temporal_values.PLAIN_MS`: in range, nothing to caution) is `var *
    1000`; anything else, and every other type, calls `conv`."""
    if t.kind == "timestamp" and t.encoding in (None, "ms"):
        lo, hi = PLAIN_MS.start, PLAIN_MS.stop - 1
        return f"{var} * 1000 if type({var}) is int and {lo} <= {var} <= {hi} else {conv}({var})"
    return f"{conv}({var})"


def compile_shaper(spec: RelationSpec, layout: Sequence[str],
                   stored: frozenset[str] = frozenset()) -> Shape:
    """The generated shaper of `spec` for rows in `layout` order (see the module doc).
    The values of the `stored` columns are taken as they are (their decoder vouches that
    they arrive in stored form: see `TypedValueDecoder`); nulls are still checked."""
    reference = RowShaper(spec, layout)
    key_index = {n: i for i, n in enumerate(spec.key_columns)}
    namespace: dict[str, Any] = {"_reference": reference.shape, "_tuple": tuple}
    lines = ["def shape(fields, key):", "    try:", "        get = fields.get"]
    slots = []
    for i, name in enumerate(layout):
        if name in key_index:
            slots.append(f"key[{key_index[name]}]")
            continue
        col = spec.column(name)
        var = f"v{i}"
        conv = f"_c{i}"
        namespace[conv] = stored_form(spec, name, col.type)
        lines.append(f"        {var} = get({name!r})")
        if col.not_null:
            lines.append(f"        if {var} is None: raise LookupError")
        if name not in stored:  # a vouched-for value is taken as it is
            test = accepts(col.type, var)
            call = inline_conversion(col.type, var, conv)
            if not col.not_null:
                cond = f"{var} is not None" + ("" if test is None else f" and not ({test})")
                lines.append(f"        if {cond}: {var} = {call}")
            elif test is None:
                lines.append(f"        {var} = {call}")
            else:
                lines.append(f"        if not ({test}): {var} = {call}")
        slots.append(var)
    lines.append(f"        return ({', '.join(slots)}{',' if len(slots) == 1 else ''})")
    lines.append("    except Exception:  # the reference says precisely what is wrong")
    lines.append("        return _tuple(_reference(fields, key))")
    exec(compile("\n".join(lines), f"<shaper of {spec.name}>", "exec"), namespace)  # noqa: S102
    shape: Shape = namespace["shape"]
    return shape


def shaped_by_schema(spec: RelationSpec, layout: Sequence[str], decoder: TypedValueDecoder
                     ) -> Callable[[bytes, tuple[Any, ...]], Any]:
    """(value bytes, key tuple) -> stored row or DELETE, with a shaper generated for each
    set of columns the decoder vouches for (one per writer schema, in practice)."""
    shapes: dict[frozenset[str], Shape] = {}
    typed = decoder.typed

    def decode(raw: bytes, key: tuple[Any, ...]) -> Any:
        fields, stored = typed(raw)
        if fields is DELETE:
            return DELETE
        shape = shapes.get(stored)
        if shape is None:
            shape = shapes[stored] = compile_shaper(spec, layout, stored)
        return shape(fields, key)
    return decode

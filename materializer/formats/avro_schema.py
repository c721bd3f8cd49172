"""Avro writer schemas as the decoders read them (`formats.avro`, `formats.debezium`):
named types, records and their fields, recursion, and the reading plan of a record
(`record_reading`: which fields are read without their logical type, the field plan,
and which columns arrive in stored form)."""

from __future__ import annotations

import copy
import math
from collections import Counter
from collections.abc import Mapping
from typing import Any, NamedTuple

from materializer.columns import ColumnType
from materializer.formats.avro_names import DOC, doc_alias
from materializer.formats.connect_types import (
    AVRO_NANOS,
    Element,
    Fixup,
    connect_fixup,
    decimal_fixup,
    field_plan,
)
from materializer.formats.deleted import DELETED_FIELD
from materializer.formats.field_match import Alias, match_fields

# --------------------------------------------------------------------------- Avro schemas


def _unwrap(node: Any) -> Any:
    """The one non-null branch of a ["null", T] union, else the node itself."""
    if isinstance(node, list):
        branches = [b for b in node if b != "null"]
        if len(branches) == 1:
            return _unwrap(branches[0])
    return node


def resolve(node: Any, named: Mapping[str, Any]) -> Any:
    node = _unwrap(node)
    if isinstance(node, str) and node in named:
        return named[node]
    return node


_NANOS = {"timestamp-nanos": AVRO_NANOS, "local-timestamp-nanos": AVRO_NANOS}
"""Avro 1.12's nanosecond timestamps (a long), which fastavro does not convert: named so
that a timestamp column gets the instant (floored to the microsecond, as Debezium's
NanoTimestamp), not the integer read as milliseconds; local-timestamp-nanos is read as
UTC, as fastavro reads local-timestamp-millis/-micros. Other columns take the long."""


def connect_name(node: dict[str, Any]) -> Any:
    """A node's `connect.name`, or the Connect name standing for its Avro logical type
    where fastavro leaves the value an integer (`_NANOS`)."""
    name = node.get("connect.name")
    if name is None and node.get("type") == "long":
        return _NANOS.get(node.get("logicalType"))  # type: ignore[arg-type]
    return name


def avro_element(named: Mapping[str, Any]) -> Element:
    """The `connect_types.Element` of Avro schemas with named types `named`: an `array`'s
    `items`, a `map`'s `values` (a ["null", T] union is T, a name its type), with their
    `connect.name` and `connect.parameters` (what Kafka Connect's AvroConverter writes)."""

    def element(node: Any, kind: str) -> tuple[Any, Any, Any] | None:
        if not isinstance(node, dict) or node.get("type") != kind:
            return None
        inner = resolve(node.get("items" if kind == "array" else "values"), named)
        if not isinstance(inner, dict):
            return None
        return connect_name(inner), inner.get("connect.parameters"), inner
    return element


def avro_fields(record: Any, named: Mapping[str, Any]) -> dict[str, tuple[Any, Any, Any]]:
    """Field name -> (connect name, connect parameters, node) of an Avro record schema
    (the Connect names of array items and map values: `avro_element`)."""
    out = {}
    for f in record.get("fields", ()):
        node = resolve(f.get("type"), named)
        if isinstance(node, dict):
            out[f["name"]] = (connect_name(node), node.get("connect.parameters"), node)
        else:
            out[f["name"]] = (None, None, node)
    return out


def field_names(record: Any) -> list[str]:
    """The names of an Avro record schema's fields, in order."""
    return [f["name"] for f in record.get("fields", ())
            if isinstance(f, dict) and isinstance(f.get("name"), str)]


def field_aliases(record: Any) -> list[Alias]:
    """(field, "alias", alias) for each of the `aliases` of an Avro record schema's fields
    (a column no field matches by its own name takes the one field it is an alias of:
    `field_match.match_fields`), and (field, "doc", X) for a field whose `doc` is the
    change-event envelope's "column X" for it (`field_match.doc_alias`: column X takes
    that field first, and no other column takes it by its name)."""
    out: list[Alias] = []
    for f in record.get("fields", ()):
        if not isinstance(f, dict) or not isinstance(name := f.get("name"), str):
            continue
        if isinstance(f.get("aliases"), list):
            out.extend((name, "alias", a) for a in f["aliases"] if isinstance(a, str))
        if (col := doc_alias(name, f.get("doc"))) is not None:
            out.append((name, DOC, col))
    return out


def named_types(schema: Any) -> Mapping[str, Any]:
    if isinstance(schema, dict):
        n = schema.get("__named_schemas")
        if isinstance(n, dict):
            return n
    return {}


def branch_kinds(node: Any, named: Mapping[str, Any]) -> set[str]:
    """The Avro types a value of schema `node` (resolved: a ["null", T] union is T) may
    be: `record`, `map`, ... (named types resolved; a union's non-null branches)."""
    out: set[str] = set()
    for branch in node if isinstance(node, list) else [node]:
        b = resolve(branch, named)
        if isinstance(b, dict):
            b = b.get("type")
        if isinstance(b, str) and b != "null":
            out.add("record" if b == "error" else b)
    return out


def record_of(schema: Any) -> dict[str, Any] | None:
    node = resolve(schema, named_types(schema))
    if isinstance(node, dict) and node.get("type") == "record":
        return node
    return None


def recursive(node: Any, open_names: frozenset[str] = frozenset()) -> bool:
    """Whether a parsed schema has a record that contains itself (a list, a tree), so
    that its values nest as deep as their bytes say.

    Avro defines a name before its uses, so a cycle of named types always closes on a
    record whose definition is still open where the name is used."""
    if isinstance(node, str):
        return node in open_names
    if isinstance(node, list):
        return any(recursive(b, open_names) for b in node)
    if not isinstance(node, dict):
        return False
    t = node.get("type")
    if t in ("record", "error"):
        name = node.get("name")
        inner = open_names | {name} if isinstance(name, str) else open_names
        return any(recursive(f.get("type"), inner) for f in node.get("fields", ())
                   if isinstance(f, dict))
    if t == "array":
        return recursive(node.get("items"), open_names)
    if t == "map":
        return recursive(node.get("values"), open_names)
    return recursive(t, open_names)


# --------------------------------------------------------------------------- raw logical types


class Reading(NamedTuple):
    """What `prepare` may return to have records read with another schema than the
    writer's (the same bytes, fewer conversions): `schema`, the prepared value, and the
    fields of the top record the decoder uses (None: all; the generated reader reads
    past the others, `formats.avro_compiled`). With `converted`, a generated reader that
    converts those fields as it reads (`avro_compiled.compile_reader`) gives its records
    with `fused` as their prepared value instead (the same, without those conversions
    left to do)."""

    schema: Any
    prepared: Any
    wanted: frozenset[str] | None = None
    converted: tuple[tuple[str, Fixup], ...] = ()
    fused: Any = None


def _read_raw(node: Any, name: Any, params: Any, ctype: ColumnType, element: Element
              ) -> tuple[bool, Fixup | None]:
    """Whether a field of Avro type `node` is better read without its logical type for a
    column of type `ctype`, and then its conversion: decimal bytes (to text at the
    writer's scale, which a decimal column stores as it is when the scales agree: no
    Decimal is made), timestamp-millis and date (the integer is what the column's
    converter reads them from). fastavro would build a Decimal, datetime or date that
    the column converts back."""
    if not isinstance(node, dict) or "name" in node:  # a named type may serve other fields
        return False, None
    logical, base = node.get("logicalType"), node.get("type")
    if logical == "decimal" and base == "bytes" and ctype.kind == "decimal":
        scale = node.get("scale", 0)
        if type(scale) is not int or scale < 0:
            return False, None
        return True, decimal_fixup(scale, ctype)  # fastavro reads at this scale, Connect or not
    if connect_fixup(name, params, node, ctype, element) is not None:
        return False, None
    if (logical in ("timestamp-millis", "local-timestamp-millis") and base == "long"
            and ctype.kind == "timestamp" and ctype.encoding in (None, "ms")):
        return True, None
    if logical == "date" and base == "int" and ctype.kind == "date":
        return True, None
    return False, None


_AS_STORED = {"string": ("string",), "boolean": ("boolean",), "int": ("long",),
              "long": ("long",)}
"""Avro primitive -> the column kinds whose stored form is every value fastavro's compiled
reader gives for it (its varints are 64-bit: an int or long is always a long; an Avro
int is not always in an int column's range: bytes may say more)."""


def arrives_stored(node: Any, ctype: ColumnType, compiled: bool) -> bool:
    """Whether every value read for Avro type `node` (null aside) is already in stored
    form for a column of type `ctype`, so the row shaper need not test it: strings,
    booleans, and (`compiled` reader only: the Python one reads varints of any length)
    int and long for a long column, and arrays and maps of those. Logical types, Connect
    names, named types and unions of several types: no."""
    node = _unwrap(node)
    if isinstance(node, dict):
        if "logicalType" in node or "connect.name" in node:
            return False
        kind = node.get("type")
        if kind in ("array", "map"):
            return (kind == ctype.kind and ctype.item is not None and
                    arrives_stored(node.get("items" if kind == "array" else "values"),
                                   ctype.item, compiled))
        node = kind
    if node in ("int", "long") and not compiled:
        return False
    return isinstance(node, str) and ctype.kind in _AS_STORED.get(node, ())


def record_reading(schema: Any, record: Any, columns: Mapping[str, ColumnType]) -> Reading:
    """How to read records of `schema` whose row is `record` (the schema itself, or a
    Debezium envelope's `after`) into `columns`: the schema to read with, where the
    fields `_read_raw` picks lose their logicalType (a copy: the registry's parsed
    schema is shared; a schema with no such field is read as it is), as prepared
    value (field plan, the columns whose values arrive in stored form: a column filled
    through a field's alias is renamed there, `field_match.match_fields`), and when
    `record` is the top record, the fields that feed columns as `wanted`."""
    named = named_types(schema)
    fields = avro_fields(record, named)
    element = avro_element(named)
    raw: dict[int, Any] = {}
    fixups: dict[str, Fixup | None] = {}
    stored: set[str] = set()
    compiled = not recursive(schema)  # a recursive schema is read by the Python reader
    aliases = field_aliases(record)
    matched = match_fields(fields, columns, aliases, avro=True)
    readers = Counter(matched.values())  # columns per source field
    for col, src in matched.items():
        name, params, node = fields[src]
        take, fix = _read_raw(node, name, params, columns[col], element)
        if take and readers[src] == 1:  # the raw value suits this one column's type
            raw[id(node)] = {k: v for k, v in node.items() if k != "logicalType"}
            fixups[src] = fix
        elif arrives_stored(node, columns[col], compiled):
            stored.add(col)
    prepared = (field_plan(fields, columns, fixups, element, aliases=aliases, avro=True),
                frozenset(stored))
    wanted = None
    if record is record_of(schema):  # read a delete marker too (formats.deleted)
        wanted = frozenset(matched.values()) | ({DELETED_FIELD} & fields.keys())
    if not raw:
        return Reading(schema, prepared, wanted)
    # raw as memo: nodes "already copied"
    return Reading(copy.deepcopy(schema, raw), prepared, wanted)


# --------------------------------------------------------------------------- logical types


def rewritten(schema: Any, change: Any) -> Any:
    """`schema` with `change(node)` applied to a copy of each of its type nodes (dicts:
    types, fields, named types; not default values) for which it returns True; `schema`
    itself (not copied) when it returns False for all. A node seen twice (a named type in
    `__named_schemas` and in place) is one node in the copy too."""

    def walk(node: Any, seen: set[int], apply: bool) -> bool:
        if id(node) in seen:
            return False
        seen.add(id(node))
        found = False
        if isinstance(node, list):
            for x in node:
                found = walk(x, seen, apply) or found
        elif isinstance(node, dict):
            found = bool(change(node, apply))
            for k, x in node.items():
                if k != "default" and isinstance(x, (dict, list)):
                    found = walk(x, seen, apply) or found
        return found

    if not walk(schema, set(), False):
        return schema
    schema = copy.deepcopy(schema)
    walk(schema, set(), True)
    return schema


def without_logical_types(schema: Any) -> Any:
    """`schema` read as its underlying types: no node keeps a `logicalType` (a copy).
    `formats.avro` reads a body that failed with it, to tell a value its converter refuses
    from bytes that end early or are no value."""

    def change(node: dict[str, Any], apply: bool) -> bool:
        if "logicalType" not in node:
            return False
        if apply:
            del node["logicalType"]
        return True
    return rewritten(schema, change)


def _decimal_fault(node: dict[str, Any]) -> str | None:
    """Why the decimal logical type of `node` (bytes or fixed) is invalid, as Java's Avro
    judges it (`LogicalTypes.Decimal`: precision an int > 0 and, for a fixed, at most the
    digits its size holds; scale absent or an int in 0..precision), or None if valid."""
    precision, scale = node.get("precision"), node.get("scale", 0)
    if type(precision) is not int or precision <= 0:
        return f"precision {precision!r} is not a positive int"
    if node.get("type") == "fixed":
        size = node.get("size")
        if type(size) is int and precision > math.floor(math.log10(2) * (8 * size - 1)):
            return f"fixed({size}) cannot hold {precision} digits"
    if type(scale) is not int or scale < 0:
        return f"scale {scale!r} is not an int of at least 0"
    if scale > precision:
        return f"scale {scale} is greater than precision {precision}"
    return None


def without_invalid_decimals(schema: Any) -> Any:
    """`schema` (unparsed JSON) whose decimal logical types on bytes or fixed with invalid
    parameters (`_decimal_fault`: scale > precision, a negative scale, precision missing,
    a fixed too small) are dropped (a copy; `schema` itself when it has none), as the Avro
    spec says ("if a logical type is invalid, for example a decimal with scale greater
    than its precision, then implementations should ignore the logical type and use the
    underlying Avro type") and Java's parser does: its values are then bytes. fastavro's
    `parse_schema` refuses such a schema instead (it accepts a missing precision, and then
    reads a decimal), which made every record of it `bad_schema`. The node keeps its
    `precision` and `scale` (as Java keeps them as properties)."""

    def change(node: dict[str, Any], apply: bool) -> bool:
        if (node.get("logicalType") != "decimal" or node.get("type") not in ("bytes", "fixed")
                or _decimal_fault(node) is None):
            return False
        if apply:
            del node["logicalType"]
        return True
    return rewritten(schema, change)

"""Avro (Confluent wire format) input: bytes to keys and field mappings.

`codecs.key_decoder` / `codecs.value_decoder` delegate here for `key_format: avro`
and `value_format: avro`; the interface is `materializer.formats.base`'s:
a key decoder returns the key tuple in *stored* form, a value decoder a mapping of
field name to decoded value (or `codecs.DELETE`), and both raise `RecordError` and
nothing else for bytes they cannot decode. Registry failures are the exception:
an unreachable registry raises `InfrastructureError` (the record is fine, the
worker should stop or retry, not route it as bad).

Confluent wire format: byte 0 is the magic byte 0, bytes 1-4 the big-endian schema
id, the rest one Avro datum written with that schema. Each record is read with the
*writer* schema its id names, so producers may evolve their schemas freely; fields
are matched to declared columns by name (exactly, or else case-insensitively when
that is unambiguous, as ksqlDB upper-cases names), fields that are not columns are
ignored, and a declared column the record lacks is null (RowShaper rejects it if
it is NOT NULL). Rejection reasons (`RecordError.reason`):

  truncated       fewer than 5 bytes, or the Avro body ends early
  bad_magic       the first byte is not 0 (not Confluent wire format)
  unknown_schema  the registry does not know the schema id
  bad_schema      the schema id names something that is not usable Avro
  avro_decode     the body does not decode with its schema (garbage, trailing bytes)
  too_deep        a value of a recursive schema nested too deeply to read (a few
                  hundred levels), or more than MAX_DEPTH levels in a json column
  not_a_record    a record was needed (composite key, several value columns)
  key_mismatch    a key column is missing from the key or has the wrong type
  malformed_json  debezium-json bytes that are not JSON
  not_debezium    a value that is not a Debezium change event (no op / after)
  unsupported_op  Debezium op other than c, r, u, d (t truncate, m message)
  type_mismatch   a Debezium-encoded value (base64 decimal, ...) that does not decode,
                  or a time outside years 1-9999

Debezium envelopes (`debezium-avro`) are read by `materializer.formats.debezium`
with the wire reader here.

Avro logical types decode through fastavro: timestamp-millis/-micros to
UTC-aware datetime (local-timestamp-* are read as UTC), date, time-millis/-micros,
decimal (bytes or fixed), uuid. A plain Avro long in a timestamp column is epoch
milliseconds; a plain int in a date column is epoch days. Where a record's own field
feeds a column that stores it from the raw value anyway (decimal bytes into a decimal
column, timestamp-millis into a timestamp column counting ms, date into a date column),
the field is read without its logical type (`record_reading`): the same row, without
building a Decimal, datetime or date only to take it apart again
(tests/formats/test_avro_raw_logical.py compares the two).

Values in rows (decided in `materializer.values`): the Python API gives timestamp
as `datetime` (UTC-aware), date as `date`, time as `time`, decimal as `Decimal`,
bytes as `bytes`, uuid as `str`; JSON output (CLI, HTTP) gives ISO 8601 text
(timestamps in UTC with a `Z`), decimals as strings (exact), bytes as base64.

Performance: the schema id -> (parsed schema, field plan) lookup is cached per
decoder, so the registry is asked once per id; the plan (renames and Debezium
conversions) is computed once per writer schema and is empty for plain records,
which then cost one fastavro call and nothing else.

Known limit: an Avro array or map whose items take zero bytes (`null`, an empty
record) lets a hostile block count allocate without bound; no schema sensible for
a table has one.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from fastavro import schemaless_reader

from materializer.columns import ColumnType
from materializer.errors import ConfigError, RecordError
from materializer.formats.base import (
    KEY,
    VALUE,
    KeyDecoder,
    TypedValueDecoder,
    part_error,
)
from materializer.formats.connect_types import (
    Fixup,
    apply_plan,
    connect_fixup,
    decimal_fixup,
    field_plan,
    match_fields,
)
from materializer.formats.wire import HEADER_SIZE, read_header
from materializer.protocols import SchemaRegistry
from materializer.specs import RelationSpec
from materializer.values import to_storage

_BytesIO = io.BytesIO
_python_reader: Callable[..., Any] | None
try:  # fastavro's pure-Python reader, for recursive schemas (see wire_reader)
    from fastavro._read_py import schemaless_reader as _python_reader
except ImportError:  # pragma: no cover - then recursive schemas are refused
    _python_reader = None


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


def avro_fields(record: Any, named: Mapping[str, Any]) -> dict[str, tuple[Any, Any, Any]]:
    """Field name -> (connect name, connect parameters, node) of an Avro record schema."""
    out = {}
    for f in record.get("fields", ()):
        node = resolve(f.get("type"), named)
        if isinstance(node, dict):
            out[f["name"]] = (node.get("connect.name"), node.get("connect.parameters"), node)
        else:
            out[f["name"]] = (None, None, node)
    return out


def named_types(schema: Any) -> Mapping[str, Any]:
    if isinstance(schema, dict):
        n = schema.get("__named_schemas")
        if isinstance(n, dict):
            return n
    return {}


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
    writer's (the same bytes, fewer conversions): `schema`, and the prepared value."""

    schema: Any
    prepared: Any


def _read_raw(node: Any, name: Any, params: Any, ctype: ColumnType) -> tuple[bool, Fixup | None]:
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
    if connect_fixup(name, params, node, ctype) is not None:
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
    schema is shared; a schema with no such field is read as it is), and as prepared
    value (field plan, the columns whose values arrive in stored form)."""
    fields = avro_fields(record, named_types(schema))
    raw: dict[int, Any] = {}
    fixups: dict[str, Fixup | None] = {}
    stored: set[str] = set()
    compiled = not recursive(schema)  # a recursive schema is read by the Python reader
    for col, src in match_fields(fields, columns).items():
        name, params, node = fields[src]
        take, fix = _read_raw(node, name, params, columns[col])
        if take and id(node) not in raw:
            raw[id(node)] = {k: v for k, v in node.items() if k != "logicalType"}
            fixups[src] = fix
        elif arrives_stored(node, columns[col], compiled):
            stored.add(col)
    prepared = (field_plan(fields, columns, fixups), frozenset(stored))
    if not raw:
        return Reading(schema, prepared)
    memo = dict(raw)  # deepcopy takes a node found in its memo as already copied
    return Reading(copy.deepcopy(schema, memo), prepared)


# --------------------------------------------------------------------------- wire reader


def wire_reader(spec: RelationSpec, registry: SchemaRegistry | None, what: str,
                 prepare: Callable[[Any], Any]) -> Callable[[bytes], tuple[Any, Any]]:
    """bytes -> (datum, prepared) where `prepared` is `prepare(writer schema)`, cached
    per schema id. `prepare` may return a RecordError, which is raised for every record
    with that id, or a `Reading`: records are read with its schema.

    A recursive schema is read by fastavro's pure-Python reader: the compiled one
    recurses on the C stack, and a value nested deep enough crashes the process. The
    Python reader stops at the interpreter's recursion limit: RecordError(too_deep).
    (A json column refuses a value nested more than MAX_DEPTH levels, too_deep also.)"""
    if registry is None:
        raise ConfigError(f"{spec.name}: {what} needs a schema_registry (url or path) "
                          "in the declaration file")
    cache: dict[int, tuple[Any, Any, Callable[..., Any]]] = {}
    fetch = registry.schema

    def read(b: bytes) -> tuple[Any, Any]:
        sid = read_header(b)
        n = len(b)
        entry = cache.get(sid)
        if entry is None:
            schema = fetch(sid)  # RecordError(unknown_schema) or InfrastructureError
            try:
                prepared, deep = prepare(schema), recursive(schema)
                if type(prepared) is Reading:
                    schema, prepared = prepared
            except RecursionError:
                prepared = RecordError(f"schema {sid} is nested too deeply to use",
                                       "bad_schema")
                deep = False
            if not deep:
                entry = (schema, prepared, schemaless_reader)
            elif _python_reader is not None:
                entry = (schema, prepared, _python_reader)
            else:  # pragma: no cover
                entry = (schema, RecordError(f"schema {sid} is recursive: this fastavro "
                                             "has no Python reader to read it safely",
                                             "bad_schema"), schemaless_reader)
            cache[sid] = entry
        schema, prepared, reader = entry
        if type(prepared) is RecordError:
            raise RecordError(str(prepared), prepared.reason)
        bio = _BytesIO(b)
        bio.seek(HEADER_SIZE)
        try:
            datum = reader(bio, schema, None)
        except RecursionError as e:
            raise RecordError(f"Avro value (schema {sid}) nested too deeply to read",
                              "too_deep") from e
        except Exception as e:  # noqa: BLE001 - fastavro raises many types on garbage
            if isinstance(e, EOFError) or bio.tell() >= n:  # a varint cut short: IndexError
                raise RecordError(f"Avro body (schema {sid}) ends early", "truncated") from e
            raise RecordError(f"Avro body does not decode with schema {sid}: "
                              f"{type(e).__name__}: {e}", "avro_decode") from e
        if bio.tell() != n:
            raise RecordError(f"{n - bio.tell()} trailing byte(s) after the Avro body "
                              f"(schema {sid})", "avro_decode")
        return datum, prepared

    return read


# --------------------------------------------------------------------------- keys


def key_decoder(spec: RelationSpec, registry: SchemaRegistry | None) -> KeyDecoder:
    """Confluent-wire-format Avro key -> stored-form key tuple of `spec`.

    A record key gives the key columns by name (a composite primary key); a
    primitive key fits a one-column key. A missing or null key column is None in
    the tuple (the applier counts it as a null key)."""
    names = spec.key_columns
    types = dict(zip(names, spec.key_types, strict=True))
    convs = tuple(to_storage(t) for t in spec.key_types)

    def prepare(schema: Any) -> Any:
        rec = record_of(schema)
        if rec is None:
            if len(names) != 1:
                return RecordError(f"a composite key needs an Avro record key, schema is "
                                   f"{json.dumps(schema, default=str)[:80]}", "not_a_record")
            node = resolve(schema, named_types(schema))
            name = node.get("connect.name") if isinstance(node, dict) else None
            params = node.get("connect.parameters") if isinstance(node, dict) else None
            return ((None, connect_fixup(name, params, node, types[names[0]]), convs[0]),)
        fields = avro_fields(rec, named_types(schema))
        found = match_fields(fields, names)
        plan: list[tuple[str, Fixup | None, Fixup]] = []
        for col, conv in zip(names, convs, strict=True):
            src = found.get(col)
            if src is None:
                plan.append((col, None, conv))
            else:
                cname, params, node = fields[src]
                plan.append((src, connect_fixup(cname, params, node, types[col]), conv))
        return tuple(plan)

    read = wire_reader(spec, registry, "key_format avro", prepare)

    def decode(b: bytes) -> tuple[Any, ...]:
        try:
            datum, plan = read(b)
        except RecordError as e:
            raise part_error(KEY, e) from e
        out: list[Any] = []
        src: str | None = None
        try:
            for src, fix, conv in plan:
                if src is None:
                    v = datum
                elif type(datum) is dict:
                    v = datum.get(src)
                else:
                    raise TypeError("the key is not a record")
                if v is None:
                    out.append(None)
                    continue
                if fix is not None:
                    v = fix(v)
                out.append(conv(v))
        except (TypeError, ValueError, ArithmeticError) as e:
            raise RecordError(f"{KEY}key column {src or names[0]!r}: {e}", "key_mismatch"
                              ) from e
        return tuple(out)

    return decode


# --------------------------------------------------------------------------- values


def value_columns(spec: RelationSpec) -> dict[str, ColumnType]:
    keys = set(spec.key_columns)
    return {c.name: c.type for c in spec.columns if c.name not in keys}


def value_decoder(spec: RelationSpec, registry: SchemaRegistry | None) -> TypedValueDecoder:
    columns = value_columns(spec)
    single = next(iter(columns)) if len(columns) == 1 else None
    nothing: frozenset[str] = frozenset()

    def prepare(schema: Any) -> Any:
        rec = record_of(schema)
        if rec is not None:
            return record_reading(schema, rec, columns)
        if single is None:
            return RecordError(f"value schema is not a record and {spec.name} has "
                               f"{len(columns)} value columns", "not_a_record")
        node = resolve(schema, named_types(schema))
        if isinstance(node, dict):
            fix = connect_fixup(node.get("connect.name"), node.get("connect.parameters"),
                                 node, columns[single])
        else:
            fix = None
        return ((single, single, fix),), nothing

    read = wire_reader(spec, registry, "value_format avro", prepare)

    def decode(b: bytes) -> tuple[Mapping[str, Any], frozenset[str]]:
        try:
            datum, (plan, stored) = read(b)
            if type(datum) is not dict:
                if single is None:
                    raise RecordError("the Avro value is not a record", "not_a_record")
                datum = {single: datum}
            if plan:
                apply_plan(plan, datum)
        except RecordError as e:
            raise part_error(VALUE, e) from e
        return datum, stored

    return TypedValueDecoder(decode)

"""Kafka Connect and Debezium logical types, and per-schema plans that apply them.

Debezium (through Kafka Connect) marks special values by a schema *name*:
`connect.name` in Avro schemas, `name` in the JSON converter's schema wrapper.
`connect_fixup` gives the conversion that turns such a value into what the declared
column type accepts (`materializer.values.to_storage`), or None when it already
fits as it comes:

  io.debezium.time.Date, ...connect.data.Date    int days        -> date
  io.debezium.time.Timestamp, ...data.Timestamp  int ms          -> timestamp
  io.debezium.time.MicroTimestamp                int µs          -> timestamp
  io.debezium.time.NanoTimestamp                 int ns          -> timestamp (µs)
  io.debezium.time.ZonedTimestamp                ISO 8601 text   -> timestamp (as it is)
  io.debezium.time.Time, ...connect.data.Time    int ms          -> time
  io.debezium.time.MicroTime / NanoTime          int µs / ns     -> time
  org.apache.kafka.connect.data.Decimal          base64 text or bytes, scale from the schema
  io.debezium.data.VariableScaleDecimal          {scale, value}  -> decimal
  io.debezium.data.Json                          JSON text       -> parsed, for a json column
  io.debezium.time.Year, MicroDuration, NanoDuration  int         -> refused by a date, time
                                                  or timestamp column (no instant: it would
                                                  read them as days or ms)

A bytes column fed by a field the schema types as text (Debezium's binary.handling.mode
hex, base64, base64-url-safe) reads it in the column's `encoding`, or refuses it without
one; with an encoding, a field the schema types as bytes is still bytes.

The same names on the `items` of an array schema or the `values` of a map schema are
applied to each element, for an array or map column (recursively, as deep as the
column's type nests): `connect_fixup` looks into a container schema through an
`Element` function, `connect_element` for the JSON converter's schemas (Avro's is
`formats.avro_schema.avro_element`).

A value that does not fit its column (a Date in a timestamp column, bad base64, a
time outside years 1-9999) is rejected, never guessed: `apply_plan` raises
RecordError(type_mismatch); JSON text too deep or not Unicode keeps its own reason
(too_deep, bad_unicode: see `materializer.formats.jsonread`).

`field_plan` is computed once per writer schema: for every declared column the
source field (`formats.field_match.match_fields`: same name, or else the one field
whose name matches ignoring case, as ksqlDB upper-cases names, or else the one Avro field
one of whose `aliases` is the column's name) and the conversion,
kept only where there is something to do, so a plain record's plan is empty and
costs nothing per record.
"""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from materializer.binary_text import canonical_base64
from materializer.columns import ColumnType
from materializer.decimals import scaled, scaled_text
from materializer.errors import RecordError
from materializer.formats.connect_temporal import (
    NOT_INSTANTS,
    TEMPORAL_KINDS,
    from_days,
    from_micros,
    from_millis,
    from_nanos,
    from_nanos_exact,
    not_an_instant,
    time_micros,
    time_millis,
    time_nanos,
    time_nanos_exact,
)
from materializer.formats.field_match import Alias, match_fields
from materializer.formats.jsonread import loads_text

__all__ = ["Element", "Fixup", "Plan", "apply_plan", "bytes_field", "connect_element",
           "connect_fixup", "decimal_fixup", "field_error", "field_plan", "match_fields",
           "per_schema", "struct_fields", "text_for_bytes"]

T = TypeVar("T")
Fixup = Callable[[Any], Any]
Plan = tuple[tuple[str, str, Fixup | None], ...]
"""Per planned field: (source field name, column name, conversion or None)."""
Element = Callable[[Any, str], tuple[Any, Any, Any] | None]
"""(schema node, "array" or "map") -> (connect name, connect parameters, node) of the
node's items (array) or values (map), or None when the node is no container of that kind."""


def _unscaled(v: Any) -> int | None:
    """The two's-complement integer in Connect decimal bytes (base64 text in JSON)."""
    if isinstance(v, str):
        try:
            v = base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError) as e:
            raise ValueError(f"{v!r} is not a base64 Connect decimal") from e
    if isinstance(v, bytes | bytearray):
        return int.from_bytes(v, "big", signed=True)
    return None


def decimal_fixup(scale: int, ctype: ColumnType) -> Fixup:
    """Connect decimal bytes (base64 text in JSON) with `scale` -> the value, for a column
    of type `ctype`: plain text for a decimal column that reads text as decimal text
    (its converter takes it as it is when it is already in stored form), else a Decimal.
    Anything else passes unchanged (the column's converter judges it)."""
    make = scaled_text if ctype.kind == "decimal" and ctype.encoding is None else scaled

    def conv(v: Any) -> Any:
        n = _unscaled(v)
        return v if n is None else make(n, scale)
    return conv


def _variable_decimal(v: Any) -> Any:
    if isinstance(v, dict):
        scale, raw = v.get("scale"), v.get("value")
        n = _unscaled(raw)
        if type(scale) is not int or n is None:
            raise ValueError("a VariableScaleDecimal needs an int scale and bytes value")
        return scaled(n, scale)
    return v


def _json_text(v: Any) -> Any:
    if isinstance(v, str):
        return loads_text(v)  # ValueError, or RecordError(too_deep | bad_unicode)
    return v


def _scale_of(params: Any, fallback: Any) -> int | None:
    for source in (params, fallback):
        if isinstance(source, Mapping) and "scale" in source:
            try:
                return int(source["scale"])
            except (TypeError, ValueError, OverflowError):  # int(inf): 1e999 in JSON
                return None
    return None


def connect_element(node: Any, kind: str) -> tuple[Any, Any, Any] | None:
    """The `Element` of Kafka Connect JSON schemas (JsonConverter's `schema`): an `array`
    schema's `items`, a `map` schema's `values`, with their `name` and `parameters`."""
    if not isinstance(node, dict) or node.get("type") != kind:
        return None
    inner = node.get("items" if kind == "array" else "values")
    if not isinstance(inner, dict):
        return None
    return inner.get("name"), inner.get("parameters"), inner


def _each_item(fix: Fixup) -> Fixup:
    """`fix` applied to each non-null element of a list; anything else passes unchanged
    (the column's converter judges it)."""
    def conv(v: Any) -> Any:
        if type(v) is list:
            return [None if x is None else fix(x) for x in v]
        return v
    return conv


def _each_value(fix: Fixup) -> Fixup:
    """`fix` applied to each non-null value of a dict (keys kept); anything else passes
    unchanged (the column's converter judges it)."""
    def conv(v: Any) -> Any:
        if type(v) is dict:
            return {k: None if x is None else fix(x) for k, x in v.items()}
        return v
    return conv


def connect_fixup(name: Any, params: Any, node: Any, ctype: ColumnType,
                  element: Element = connect_element, exact: bool = False) -> Fixup | None:
    """The conversion a Connect/Debezium-named field needs to fit a column of type
    `ctype`, or None when the value already fits as it comes (the schema's unit wins
    over the column's `encoding`, which is for input without a schema). `node` is the
    field's own schema (for a decimal `scale` given outside `parameters`). For an array
    or map column whose field is an array or map schema (`element` finds its items or
    values in `node`), the conversion its items or values need, applied to each. With
    `exact` (a key column's), nanoseconds that a microsecond value would floor are refused
    (ValueError) instead: keys are never rounded. A bytes column whose field the schema
    types as text refuses its values (`text_for_bytes`), never guessing their encoding,
    unless it declares one (its converter reads the text in it); one that declares an
    encoding reads a field the schema types as bytes as bytes (`bytes_field`: base64 text
    in JSON), not in its encoding."""
    fix = _named_fixup(name, params, node, ctype)
    if fix is None and ctype.kind == "bytes":
        if ctype.encoding is None:
            return text_for_bytes if _is_text(node) else None
        return bytes_field if _is_type(node, "bytes") else None
    if exact and fix is from_nanos:
        return from_nanos_exact
    if exact and fix is time_nanos:
        return time_nanos_exact
    if fix is None and ctype.item is not None and ctype.kind in ("array", "map"):
        inner = element(node, ctype.kind)
        if inner is not None:
            item_fix = connect_fixup(*inner, ctype.item, element)
            if item_fix is not None:
                return _each_item(item_fix) if ctype.kind == "array" else _each_value(item_fix)
    return fix


def _is_type(node: Any, kind: str) -> bool:
    """Whether a field's schema is of primitive type `kind`: a Connect JSON schema, an Avro
    type (a ["null", kind] union arrives resolved to it)."""
    return node == kind or (isinstance(node, dict) and node.get("type") == kind)


def _is_text(node: Any) -> bool:
    """Whether a field's schema says text: a Connect JSON `string` schema, an Avro
    `string`."""
    return _is_type(node, "string")


def text_for_bytes(v: Any) -> Any:
    """A bytes column without an `encoding` fed by a field its schema types as text:
    refused (type_mismatch), not read as base64. Debezium's binary.handling.mode=hex,
    base64 and base64-url-safe write bytes as such text, and they cannot be told apart:
    hex `fbff0102` is also valid base64, of other bytes."""
    if isinstance(v, str):
        raise ValueError(
            "the schema types it as text (string), not bytes, for a bytes column: Debezium's "
            "binary.handling.mode=hex, base64 and base64-url-safe write bytes as text that "
            "no reader can tell apart (hex is valid base64 of other bytes); declare the "
            "column's encoding (encoding: hex | base64 | base64-url-safe, as the connector's "
            "binary.handling.mode; the bytes items of an array or map column take none), or "
            "set binary.handling.mode=bytes, or declare the column (or its items) string to "
            "keep the text")
    return v


def bytes_field(v: Any) -> Any:
    """A bytes column with an `encoding` fed by a field its schema types as bytes: the
    bytes (Avro's as they are, the JSON converter's from their standard base64 text), not
    text in the column's encoding."""
    if isinstance(v, str):
        return canonical_base64(v, "a field the schema types as bytes")
    return v


AVRO_NANOS = "avro:timestamp-nanos"
"""The name `formats.avro_schema` gives an Avro timestamp-nanos / local-timestamp-nanos
long (fastavro leaves it an integer): a timestamp column converts it from nanoseconds."""


def _named_fixup(name: Any, params: Any, node: Any, ctype: ColumnType) -> Fixup | None:
    """`connect_fixup` by the schema's own name."""
    if not isinstance(name, str):
        return None
    kind = ctype.kind
    in_ms = ctype.encoding in (None, "ms")  # what an integer in the column counts
    if name in ("io.debezium.time.Date", "org.apache.kafka.connect.data.Date"):
        return None if kind == "date" else from_days
    if name in ("io.debezium.time.Timestamp", "org.apache.kafka.connect.data.Timestamp"):
        return None if kind == "timestamp" and in_ms else from_millis
    if name == "io.debezium.time.MicroTimestamp":
        return from_micros
    if name == "io.debezium.time.NanoTimestamp":
        return from_nanos
    if name == AVRO_NANOS:
        return from_nanos if kind == "timestamp" else None
    if name in ("io.debezium.time.Time", "org.apache.kafka.connect.data.Time"):
        return None if kind == "time" and in_ms else time_millis
    if name == "io.debezium.time.MicroTime":
        return time_micros
    if name == "io.debezium.time.NanoTime":
        return time_nanos
    if name == "org.apache.kafka.connect.data.Decimal":
        scale = _scale_of(params, node)
        return None if scale is None else decimal_fixup(scale, ctype)
    if name == "io.debezium.data.VariableScaleDecimal":
        return _variable_decimal
    if name == "io.debezium.data.Json" and kind == "json":
        return _json_text
    if name in NOT_INSTANTS and kind in TEMPORAL_KINDS:
        return not_an_instant(NOT_INSTANTS[name], kind)
    return None


def field_plan(fields: Mapping[str, tuple[Any, Any, Any]],
               columns: Mapping[str, ColumnType],
               fixups: Mapping[str, Fixup | None] | None = None,
               element: Element = connect_element, exact: bool = False,
               aliases: Iterable[Alias] = (), avro: bool = False) -> Plan:
    """Per-schema work for a record: renames and conversions, only where needed.

    `fields` maps a source field name to (connect name, connect parameters, schema
    node); `columns` the declared columns to fill by type; `fixups`, by source field,
    conversions that replace the Connect one (fields read raw: see `formats.avro_schema`);
    `element`, how the schema nodes give their array items and map values; `exact`: key
    columns (`connect_fixup`); `aliases`, the fields' other names (an Avro field's
    `aliases`: `match_fields`); `avro`: an Avro record's (a column that is no valid Avro
    name takes the field of its Avro form: `match_fields`)."""
    out = []
    for col, src in match_fields(fields, columns, aliases, avro).items():
        name, params, node = fields[src]
        if fixups is not None and src in fixups:
            fix = fixups[src]
        else:
            fix = connect_fixup(name, params, node, columns[col], element, exact)
        if fix is not None or src != col:
            out.append((src, col, fix))
    return _reads_first(out)


def _reads_first(plan: list[tuple[str, str, Fixup | None]]) -> Plan:
    """`plan` ordered so that an entry writing a column another entry reads as its
    source field comes after that entry (`apply_plan` writes in place: a field whose
    envelope doc names column `a.b`, `a_b`, is read before column `a_b` is written from
    `a_b_`); a cycle of such entries goes through a temporary key ("\0" + column)."""
    reads = Counter(src for src, _col, _fix in plan)
    if not any(reads[col] > (src == col) for src, col, _fix in plan):
        return tuple(plan)  # no entry writes a field another reads: as matched
    pending = list(plan)
    out: list[tuple[str, str, Fixup | None]] = []
    while pending:
        for i, (_src, col, _fix) in enumerate(pending):
            if not any(j != i and o[0] == col for j, o in enumerate(pending)):
                out.append(pending.pop(i))
                break
        else:  # a cycle: read one entry's field into a temporary key, write it last
            src, col, fix = pending.pop(0)
            out.append((src, "\0" + col, fix))
            pending.append(("\0" + col, col, None))
    return tuple(out)


CONVERSION_ERRORS = (TypeError, ValueError, ArithmeticError, OverflowError)
"""What a conversion of a plan raises for a value it refuses (`apply_plan`)."""


def field_error(src: str, e: Exception) -> RecordError:
    """The rejection of a record whose field `src` a conversion refused with `e` (one of
    CONVERSION_ERRORS): RecordError(type_mismatch), as `apply_plan` raises it."""
    return RecordError(f"field {src!r}: {e}", "type_mismatch")


def apply_plan(plan: Plan, rec: dict[str, Any]) -> None:
    """Rename and convert `rec`'s planned fields in place; RecordError(type_mismatch).

    A planned field `rec` does not have (a Connect payload lacking a field its schema
    lists; an Avro record always has its schema's) leaves its column absent, as a field
    no plan names is: NULL, or kept by a partial update. If `rec` then has a field named
    as the column itself, which its schema does not give for it (it names the column's
    field otherwise: in another case), schema and record disagree about that field and
    its value would be read without the schema's conversion or lost:
    RecordError(case_mismatch)."""
    src = ""
    try:
        for src, col, fix in plan:
            v = rec.get(src)
            if v is not None:
                if fix is not None:
                    v = fix(v)
            elif src not in rec:
                if src != col and col in rec:
                    raise RecordError(
                        f"field {col!r} is not in the record's schema, which names field "
                        f"{src!r} for column {col!r}, and the record lacks {src!r}: the "
                        "schema and the record disagree (make them agree, or declare the "
                        "column as the schema names it)", "case_mismatch")
                continue
            rec[col] = v
    except CONVERSION_ERRORS as e:
        raise field_error(src, e) from e


def struct_fields(struct: Any) -> dict[str, tuple[Any, Any, Any]] | None:
    """Field name -> (connect name, parameters, node) of a Kafka Connect JSON struct
    schema (what JsonConverter writes under `schema`), or None if it is not one."""
    if not isinstance(struct, dict) or not isinstance(struct.get("fields"), list):
        return None
    out = {}
    for f in struct["fields"]:
        if isinstance(f, dict) and isinstance(f.get("field"), str):
            out[f["field"]] = (f.get("name"), f.get("parameters"), f)
    return out


def per_schema(make: Callable[[Any], T], size: int = 8) -> Callable[[Any], T]:
    """`make(schema)`, remembered for the `size` most recent schemas (compared by value:
    JSON schemas come anew with every record). A schema nested too deeply to compare
    raises RecordError(too_deep)."""
    recent: list[tuple[Any, T]] = []

    def get(schema: Any) -> T:
        try:
            for known, made in recent:
                if known == schema:
                    return made
            made = make(schema)
        except RecursionError as e:
            raise RecordError("the Connect schema is nested too deeply", "too_deep") from e
        recent.insert(0, (schema, made))
        del recent[size:]
        return made
    return get

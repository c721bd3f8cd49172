"""Debezium change events as input (`debezium-json`, `debezium-avro`): the `after` row or DELETE.

Debezium (`debezium-json`, `debezium-avro`): op `c`, `r`, `u` give the `after`
row, op `d` gives `DELETE` (a following tombstone is a second, silent delete);
`debezium-json` is read with or without the `{"schema", "payload"}` wrapper, and a
`null` payload is a delete. Kafka Connect / Debezium logical types (Date,
Timestamp, MicroTimestamp, NanoTimestamp, ZonedTimestamp, Time, MicroTime,
NanoTime, Decimal, VariableScaleDecimal, Json) are recognised by their schema name
(`connect.name` in Avro, `name` in the JSON schema wrapper) and converted to what
the declared column type accepts: see `materializer.formats.connect_types`. The same names
are honoured in plain `avro` records (Debezium with the ExtractNewRecordState
transform). Bytes in Debezium JSON are base64 text, which bytes columns accept.
Without the JSON schema wrapper there is no type information: an integer in a
timestamp column is epoch milliseconds, in a date column epoch days, in a time
column milliseconds since midnight, unless the column declares another `encoding`
(`us`, `ns`: Debezium's MicroTimestamp / MicroTime, NanoTimestamp / NanoTime); a
base64 Connect decimal (`decimal.handling.mode=precise`) is read only by a decimal
column that declares `encoding: base64`, with the declared scale (see
`materializer.columns.ENCODINGS`). Other Debezium types
(intervals, geometry, bit sets, enums) arrive as Debezium encodes them and fit
string / bytes / long / json columns.

Unavailable values: for a column an UPDATE left unchanged that the database did not log
(PostgreSQL: a TOASTed value under REPLICA IDENTITY DEFAULT; Oracle: LOB / XML columns),
Debezium writes its placeholder (`__debezium_unavailable_value`, or the relation's declared
`unavailable_value_placeholder`) instead of the value. The decoders return such an `after`
row as `UnavailableFields` (see `materializer.formats.placeholders`, which the plain
`json`, `json_sr` and `avro` decoders share for unwrapped Debezium rows).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from materializer.errors import RecordError
from materializer.formats.avro import checked_reading, value_columns
from materializer.formats.avro_schema import (
    field_names,
    named_types,
    record_of,
    resolve,
)
from materializer.formats.avro_wire import wire_reader
from materializer.formats.base import DELETE, VALUE, TypedValueDecoder, ValueDecoder, part_error
from materializer.formats.connect_types import (
    Plan,
    apply_plan,
    field_plan,
    per_schema,
    struct_fields,
)
from materializer.formats.field_match import match_fields, object_checker, warn_unfilled
from materializer.formats.jsonread import loads
from materializer.formats.placeholders import (
    UnavailableFields,
    passing_placeholders,
    unavailable_finder,
    unavailable_forms,
)
from materializer.protocols import SchemaRegistry
from materializer.specs import DEBEZIUM_PLACEHOLDER, RelationSpec

__all__ = ["PLACEHOLDER", "UnavailableFields", "avro_decoder", "json_decoder",
           "unavailable_finder", "unavailable_forms", "unsupported_op"]

PLACEHOLDER = DEBEZIUM_PLACEHOLDER
"""What Debezium writes for a value it does not have (`unavailable.value.placeholder`'s
default; a relation may declare another: `unavailable_value_placeholder`)."""

_ENVELOPE_USED = frozenset(("op", "after"))
"""The envelope's fields a row is made of (`before`, `source`, ... are read past)."""


def unsupported_op(op: Any) -> RecordError:
    """The rejection of an event that is no row change: a truncate (`t`) says the table was
    emptied, which no row of it carries (its rows are not removed here: a rebuild from a
    new snapshot follows it), a logical decoding message (`m`) is no row."""
    why = (": a truncate, whose rows are not removed here (rebuild the table from a new "
           "snapshot to follow it)" if op == "t" else "")
    return RecordError(f"Debezium op {op!r} is not c, r, u or d{why}", "unsupported_op")


def avro_decoder(spec: RelationSpec, registry: SchemaRegistry | None) -> TypedValueDecoder:
    nothing: frozenset[str] = frozenset()
    forms = unavailable_forms(spec, binary=True)
    find = unavailable_finder(spec, binary=True)

    def prepare(schema: Any) -> Any:
        env = record_of(schema)
        if env is None or not {"op", "after"} <= set(field_names(env)):
            return RecordError("the Avro value is not a Debezium envelope (no op/after "
                               "fields)", "not_debezium")
        after = next(f for f in env["fields"] if f["name"] == "after")
        row = resolve(after["type"], named_types(schema))
        if not isinstance(row, dict) or row.get("type") != "record":
            return RecordError("Debezium `after` is not a record", "not_debezium")
        reading = checked_reading(spec, schema, row, "the Debezium `after` record")
        if isinstance(reading, RecordError):
            return reading
        plan, stored = reading.prepared
        return reading._replace(wanted=_ENVELOPE_USED,
                                prepared=(passing_placeholders(plan, forms), stored))

    read = wire_reader(spec, registry, "value_format debezium-avro", prepare)

    def decode(b: bytes) -> tuple[Any, frozenset[str]]:
        try:
            env, (plan, stored) = read(b)
            op = env.get("op")
            if op == "d":
                return DELETE, nothing
            if op not in ("c", "r", "u"):
                raise unsupported_op(op)
            after = env.get("after")
            if type(after) is not dict:
                raise RecordError(f"Debezium op {op!r} without an `after` row", "not_debezium")
            if plan:
                apply_plan(plan, after)
            if find is not None:
                after = find(after)
            return after, stored
        except RecordError as e:
            raise part_error(VALUE, e) from e

    return TypedValueDecoder(decode)


def _after_of(schema: Any) -> Any:
    """The `after` field of a wrapped Debezium event's schema (None if it has none)."""
    fields = schema.get("fields") if isinstance(schema, dict) else None
    if isinstance(fields, list):
        for f in fields:
            if isinstance(f, dict) and f.get("field") == "after":
                return f
    return None


def json_decoder(spec: RelationSpec) -> ValueDecoder:
    columns = value_columns(spec)
    forms = unavailable_forms(spec, binary=False)
    find = unavailable_finder(spec, binary=False)
    check = object_checker("the Debezium `after` object", spec.column_names, list(columns),
                           spec.name)

    none: frozenset[str] = frozenset()

    def plan(after: Any) -> tuple[Plan, frozenset[str]]:
        """The `after` schema's plan, and the columns it has no field for (logged)."""
        found = struct_fields(after)
        if found is None:
            return (), none
        matched = match_fields(found, spec.column_names)
        unfilled = none
        if matched:  # none: the rows are no_declared_columns, saying so
            unfilled = frozenset(c for c in columns if c not in matched)
            warn_unfilled(spec.name, f"the Debezium `after` schema "
                          f"{after.get('name') or 'struct'}", list(found),
                          [c for c in columns if c not in matched])
        return passing_placeholders(field_plan(found, columns), forms), unfilled
    plan_for = per_schema(plan)  # by the `after` row's schema

    def decode(b: bytes) -> Mapping[str, Any]:
        try:
            obj = loads(b)  # RecordError(malformed_json | too_deep | bad_unicode)
            if type(obj) is not dict:
                if obj is None:
                    return DELETE  # type: ignore[no-any-return]
                raise RecordError(f"a Debezium event must be a JSON object, got "
                                  f"{type(obj).__name__}", "not_debezium")
            schema = None
            if len(obj) == 2 and "payload" in obj and "schema" in obj:
                schema, obj = obj["schema"], obj["payload"]
                if obj is None:
                    return DELETE  # type: ignore[no-any-return]
                if type(obj) is not dict:
                    raise RecordError("the Debezium payload is not an object", "not_debezium")
            op = obj.get("op")
            if op == "d":
                return DELETE  # type: ignore[no-any-return]
            if op not in ("c", "r", "u"):
                if op is None:
                    raise RecordError("not a Debezium event: no `op` field", "not_debezium")
                raise unsupported_op(op)
            after = obj.get("after")
            if type(after) is not dict:
                raise RecordError(f"Debezium op {op!r} without an `after` row", "not_debezium")
            unfilled = none
            if schema is not None:
                # RecordError(too_deep): too deep
                row_plan, unfilled = plan_for(_after_of(schema))
                if row_plan:
                    apply_plan(row_plan, after)
            check(after, schema is None, unfilled)  # without the wrapper's schema: names exact
            if find is not None:
                return find(after)
            return after
        except RecordError as e:
            raise part_error(VALUE, e) from e

    return decode


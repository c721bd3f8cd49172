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
that is unambiguous, as ksqlDB upper-cases names, or else by a field's `aliases`: the
one field one of whose aliases is the column's name, so a renamed field keeps filling
its column), fields that are not columns are ignored, and a declared column the record
lacks is null (RowShaper rejects it if it is NOT NULL). Rejection reasons
(`RecordError.reason`):

  truncated       fewer than 5 bytes, or the Avro body ends early
  bad_magic       the first byte is not 0 (not Confluent wire format)
  unknown_schema  the registry does not know the schema id
  bad_schema      the schema id names something that is not usable Avro
  avro_decode     the body does not decode with its schema (garbage, trailing bytes,
                  an enum index out of range)
  too_deep        a value of a recursive schema nested too deeply to read (a few
                  hundred levels), or more than MAX_DEPTH levels in a json column
  not_a_record    a record was needed (composite key, several value columns)
  ambiguous_alias several fields of the record have an alias that is the name of one
                  column no field has as its own name (no field is guessed)
  key_mismatch    a key column is missing from the key or has the wrong type
  malformed_json  debezium-json bytes that are not JSON
  not_debezium    a value that is not a Debezium change event (no op / after)
  unsupported_op  Debezium op other than c, r, u, d (t truncate, m message)
  type_mismatch   a Debezium-encoded value (base64 decimal, ...) that does not decode,
                  a time outside years 1-9999, or an Avro time-millis/-micros that is
                  no time of day (negative, a day or more: fastavro would wrap it round),
                  or any Avro logical value its converter refuses (a date or timestamp
                  past year 9999, a uuid string that is no uuid), on either reader

Debezium envelopes (`debezium-avro`) are read by `materializer.formats.debezium`
with the wire reader here.

Avro logical types decode through fastavro: timestamp-millis/-micros to
UTC-aware datetime (local-timestamp-* are read as UTC), date, time-millis/-micros,
decimal (bytes or fixed: exactly, whatever the schema's precision, `avro_logical.REPLACED`),
uuid (a string kept as written once checked; on a fixed(16), its canonical text). A
decimal logical type with invalid parameters (scale > precision, a negative
scale, no precision, a fixed too small) is ignored, as the Avro spec says and Java reads
it: its values are bytes (`connectors.avro_schemas.parse`, where fastavro refuses the
schema). A plain Avro long in a timestamp column is epoch
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
which then cost one fastavro call and nothing else. A plan of conversions in place only
(no renames; no delete marker field, which is looked at before them) is done by the
generated reader as it reads (`avro_compiled.compile_reader`'s `converted`), with the
same values and the same rejections (tests/formats/test_avro_fast_reads.py).

The schema helpers and the reading plan of a record are in `formats.avro_schema`; the
reader of Confluent-framed bodies (`wire_reader`) is `formats.avro_wire`.

Known limit: an Avro array or map whose items take zero bytes (`null`, an empty
record) lets a hostile block count allocate without bound; no schema sensible for
a table has one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from materializer.columns import ColumnType
from materializer.errors import RecordError
from materializer.formats.avro_schema import (
    Reading,
    avro_element,
    avro_fields,
    branch_kinds,
    connect_name,
    field_aliases,
    field_names,
    named_types,
    record_of,
    record_reading,
    resolve,
)
from materializer.formats.avro_wire import wire_reader
from materializer.formats.base import (
    DELETE,
    KEY,
    VALUE,
    KeyDecoder,
    TypedValueDecoder,
    key_schema_beyond,
    part_error,
)
from materializer.formats.connect_types import Fixup, apply_plan, connect_fixup
from materializer.formats.deleted import DELETED_FIELD, marks_deleted, reads_deleted_marker
from materializer.formats.field_match import (
    alias_ambiguity,
    ambiguous_alias,
    case_ambiguity,
    match_fields,
    unmatched_schema,
)
from materializer.formats.placeholders import (
    passing_placeholders,
    unavailable_finder,
    unavailable_forms,
)
from materializer.protocols import SchemaRegistry
from materializer.specs import RelationSpec
from materializer.values import key_storage

# --------------------------------------------------------------------------- keys


def key_decoder(spec: RelationSpec, registry: SchemaRegistry | None) -> KeyDecoder:
    """Confluent-wire-format Avro key -> stored-form key tuple of `spec`.

    A record key gives the key columns by name (a composite primary key); a
    primitive key fits a one-column key. A null key column is None in the tuple (the
    applier counts it as a null key); a record schema without a field for a key column
    refuses every key it writes (key_mismatch)."""
    names = spec.key_columns
    types = dict(zip(names, spec.key_types, strict=True))
    convs = tuple(key_storage(t) for t in spec.key_types)

    def prepare(schema: Any) -> Any:
        rec = record_of(schema)
        if rec is None:
            if len(names) != 1:
                return RecordError(f"a composite key needs an Avro record key, schema is "
                                   f"{json.dumps(schema, default=str)[:80]}", "not_a_record")
            named = named_types(schema)
            node = resolve(schema, named)
            name = connect_name(node) if isinstance(node, dict) else None
            params = node.get("connect.parameters") if isinstance(node, dict) else None
            return ((None, connect_fixup(name, params, node, types[names[0]],
                                         avro_element(named), exact=True), convs[0]),)
        named = named_types(schema)
        fields = avro_fields(rec, named)
        element = avro_element(named)
        aliases = field_aliases(rec)
        found = match_fields(fields, names, aliases, avro=True)
        lacking = [col for col in names if col not in found]
        if lacking:  # every key of this schema lacks them: not a null key, another key
            why = alias_ambiguity(fields, lacking, aliases, avro=True)
            if why:
                return ambiguous_alias(f"the Avro key record {rec.get('name')}", why)
            why = case_ambiguity(fields, lacking)
            return RecordError(
                f"the Avro key record {rec.get('name')} has no field for key column"
                f"{'s' if len(lacking) > 1 else ''} {', '.join(map(repr, lacking))}"
                f"{'; ' + why if why else ''} (its fields: {', '.join(fields) or 'none'})",
                "key_mismatch")
        if spec.kind == "table":  # a table's key columns are the whole key
            refused = key_schema_beyond(fields, found, names)
            if refused is not None:
                return refused
        plan: list[tuple[str, Fixup | None, Fixup]] = []
        for col, conv in zip(names, convs, strict=True):
            src = found[col]
            cname, params, node = fields[src]
            plan.append((src, connect_fixup(cname, params, node, types[col], element,
                                            exact=True), conv))
        return tuple(plan)

    read = wire_reader(spec, registry, "key_format avro", prepare)

    def decode(b: bytes) -> tuple[Any, ...]:
        try:
            datum, plan = read(b)
        except RecordError as e:
            if e.reason == "type_mismatch":  # a value of no key column's type (a time that
                raise RecordError(KEY + str(e), "key_mismatch") from e  # is no time of day)
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


def checked_reading(spec: RelationSpec, schema: Any, record: Any, what: str
                    ) -> Reading | RecordError:
    """`record_reading` of `record` (the value, a Debezium `after`) into `spec`'s value
    columns, or RecordError(no_declared_columns) for every value of a record none of
    whose fields is a column, or RecordError(ambiguous_alias) for every value of a record
    several of whose fields have an alias naming one column (`field_match.unmatched_schema`,
    which also logs the columns the record leaves NULL). A column no field matches by its
    own name takes the one field one of whose Avro `aliases` is its name, else (a column
    that is no valid Avro name: `a.b`) the field of its Avro form (`a_b`)."""
    columns = value_columns(spec)
    what = f"{what} {record.get('name')}"
    fields = field_names(record)
    unmatched = unmatched_schema(what, fields, spec.column_names, list(columns), spec.name,
                                 field_aliases(record), avro=True)
    return unmatched or record_reading(schema, record, columns)


def value_decoder(spec: RelationSpec, registry: SchemaRegistry | None) -> TypedValueDecoder:
    columns = value_columns(spec)
    single = next(iter(columns)) if len(columns) == 1 else None
    nothing: frozenset[str] = frozenset()
    marker = reads_deleted_marker(spec)  # Debezium's rewritten deletes: formats.deleted
    forms = unavailable_forms(spec, binary=True)  # unwrapped Debezium rows' placeholder
    find = unavailable_finder(spec, binary=True)

    def prepare(schema: Any) -> Any:
        rec = record_of(schema)
        if rec is not None:
            reading = checked_reading(spec, schema, rec, "the Avro record")
            if not isinstance(reading, RecordError):
                plan, stored = reading.prepared
                if forms:
                    plan = passing_placeholders(plan, forms)
                reading = reading._replace(prepared=(plan, stored, False))
                marked = marker and DELETED_FIELD in (reading.wanted or {DELETED_FIELD})
                if plan and not marked and all(src == col for src, col, _ in plan):
                    # conversions in place only: the generated reader may do them (after
                    # the read, as here; not where a delete marker is checked before them)
                    reading = reading._replace(
                        converted=tuple((src, fix) for src, _, fix in plan if fix is not None),
                        fused=((), stored, False))
            return reading
        if single is None:
            return RecordError(f"value schema is not a record and {spec.name} has "
                               f"{len(columns)} value columns", "not_a_record")
        named = named_types(schema)
        node = resolve(schema, named)
        kinds = branch_kinds(node, named)
        if "record" in kinds and "map" in kinds:  # both read as a dict: which one is it?
            return RecordError(
                f"the value schema is a union of a record and a map, whose values cannot be "
                f"told apart (both read as a mapping), and {spec.name} has one value column "
                f"{single!r}: write the column's value as a record with a field {single!r}",
                "not_a_record")
        if isinstance(node, dict):
            fix = connect_fixup(connect_name(node), node.get("connect.parameters"),
                                 node, columns[single], avro_element(named))
        else:
            fix = None
        # a value of a schema with no record branch is the column's value, a map too (its
        # entries are no fields); a union's record branch still gives the fields
        return ((single, single, fix),), nothing, "record" not in kinds

    read = wire_reader(spec, registry, "value_format avro", prepare)

    def decode(b: bytes) -> tuple[Mapping[str, Any], frozenset[str]]:
        try:
            datum, (plan, stored, bare) = read(b)
            if bare or type(datum) is not dict:
                if single is None:
                    raise RecordError("the Avro value is not a record", "not_a_record")
                datum = {single: datum}
            elif marker and DELETED_FIELD in datum and marks_deleted(datum[DELETED_FIELD]):
                return DELETE, stored
            if plan:
                apply_plan(plan, datum)
        except RecordError as e:
            raise part_error(VALUE, e) from e
        if find is not None:
            datum = find(datum)
        return datum, stored

    return TypedValueDecoder(decode)

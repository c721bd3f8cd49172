"""Avro (Confluent wire format) and Debezium input: bytes to keys and field mappings.

`codecs.key_decoder` / `codecs.value_decoder` delegate here for `key_format: avro`
and `value_format: avro | debezium-json | debezium-avro`; the interface is theirs:
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
  not_a_record    a record was needed (composite key, several value columns)
  key_mismatch    a key column is missing from the key or has the wrong type
  malformed_json  debezium-json bytes that are not JSON
  not_debezium    a value that is not a Debezium change event (no op / after)
  unsupported_op  Debezium op other than c, r, u, d (t truncate, m message)
  type_mismatch   a Debezium-encoded value (base64 decimal, ...) that does not decode

Debezium (`debezium-json`, `debezium-avro`): op `c`, `r`, `u` give the `after`
row, op `d` gives `DELETE` (a following tombstone is a second, silent delete);
`debezium-json` is read with or without the `{"schema", "payload"}` wrapper, and a
`null` payload is a delete. Kafka Connect / Debezium logical types (Date,
Timestamp, MicroTimestamp, NanoTimestamp, ZonedTimestamp, Time, MicroTime,
NanoTime, Decimal, VariableScaleDecimal, Json) are recognised by their schema name
(`connect.name` in Avro, `name` in the JSON schema wrapper) and converted to what
the declared column type accepts: see `materializer.connect_types`. The same names
are honoured in plain `avro` records (Debezium with the ExtractNewRecordState
transform). Bytes in Debezium JSON are base64 text, which bytes columns accept.
Without the JSON schema wrapper there is no type information: an integer in a
timestamp column is epoch milliseconds, in a date column epoch days, in a time
column milliseconds since midnight; a base64 Connect decimal cannot be read (use
Debezium's `decimal.handling.mode=string` or `double`). Other Debezium types
(intervals, geometry, bit sets, enums) arrive as Debezium encodes them and fit
string / bytes / long / json columns.

Avro logical types decode through fastavro: timestamp-millis/-micros to
UTC-aware datetime (local-timestamp-* are read as UTC), date, time-millis/-micros,
decimal (bytes or fixed), uuid. A plain Avro long in a timestamp column is epoch
milliseconds; a plain int in a date column is epoch days.

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

import io
import json
from collections.abc import Callable, Mapping
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from materializer.columns import ColumnType
from materializer.errors import ConfigError, RecordError
from materializer.formats.codecs import DELETE, KeyDecoder, ValueDecoder
from materializer.formats.connect_types import (
    Fixup,
    Plan,
    apply_plan,
    connect_fixup,
    field_plan,
    match_fields,
)
from materializer.specs import RelationSpec
from materializer.values import to_storage

__all__ = [
    "avro_encoder",
    "key_decoder",
    "value_decoder",
    "wire_encode",
]

_BytesIO = io.BytesIO


# --------------------------------------------------------------------------- encoding


def wire_encode(schema_id: int, schema: Any, datum: Any) -> bytes:
    """One datum in Confluent wire format (magic 0, big-endian id, Avro body)."""
    out = _BytesIO()
    out.write(b"\x00" + schema_id.to_bytes(4, "big"))
    schemaless_writer(out, schema, datum)
    return out.getvalue()


def avro_encoder(registry: Any, subject: str, schema: Any) -> Callable[[Any], bytes]:
    """Register `schema` under `subject` once and return datum -> wire-format bytes."""
    schema_id = registry.register(subject, schema)
    parsed = registry.schema(schema_id)

    def encode(datum: Any) -> bytes:
        return wire_encode(schema_id, parsed, datum)
    return encode


# --------------------------------------------------------------------------- Avro schemas


def _unwrap(node: Any) -> Any:
    """The one non-null branch of a ["null", T] union, else the node itself."""
    if isinstance(node, list):
        branches = [b for b in node if b != "null"]
        if len(branches) == 1:
            return _unwrap(branches[0])
    return node


def _resolve(node: Any, named: Mapping[str, Any]) -> Any:
    node = _unwrap(node)
    if isinstance(node, str) and node in named:
        return named[node]
    return node


def _avro_fields(record: Any, named: Mapping[str, Any]) -> dict[str, tuple[Any, Any, Any]]:
    """Field name -> (connect name, connect parameters, node) of an Avro record schema."""
    out = {}
    for f in record.get("fields", ()):
        node = _resolve(f.get("type"), named)
        if isinstance(node, dict):
            out[f["name"]] = (node.get("connect.name"), node.get("connect.parameters"), node)
        else:
            out[f["name"]] = (None, None, node)
    return out


def _named(schema: Any) -> Mapping[str, Any]:
    if isinstance(schema, dict):
        n = schema.get("__named_schemas")
        if isinstance(n, dict):
            return n
    return {}


def _record_of(schema: Any) -> dict[str, Any] | None:
    node = _resolve(schema, _named(schema))
    if isinstance(node, dict) and node.get("type") == "record":
        return node
    return None


# --------------------------------------------------------------------------- wire reader


def _wire_reader(spec: RelationSpec, registry: Any, what: str,
                 prepare: Callable[[Any], Any]) -> Callable[[bytes], tuple[Any, Any]]:
    """bytes -> (datum, prepared) where `prepared` is `prepare(writer schema)`, cached
    per schema id. `prepare` may return a RecordError, which is raised for every record
    with that id."""
    if registry is None:
        raise ConfigError(f"{spec.name}: {what} needs a schema_registry (url or path) "
                          "in the declaration file")
    cache: dict[int, tuple[Any, Any]] = {}
    reader = schemaless_reader
    fetch = registry.schema

    def read(b: bytes) -> tuple[Any, Any]:
        n = len(b)
        if n == 0:
            raise RecordError("empty Avro message", "truncated")
        if b[0] != 0:
            hint = " (it looks like JSON)" if b[0] in b"{[" else ""
            raise RecordError(f"first byte is 0x{b[0]:02x}, not the Confluent wire-format "
                              f"magic byte 0{hint}", "bad_magic")
        if n < 5:
            raise RecordError(f"{n} bytes: shorter than the 5-byte wire-format header",
                              "truncated")
        sid = int.from_bytes(b[1:5], "big")
        entry = cache.get(sid)
        if entry is None:
            schema = fetch(sid)  # RecordError(unknown_schema) or InfrastructureError
            entry = cache[sid] = (schema, prepare(schema))
        schema, prepared = entry
        if type(prepared) is RecordError:
            raise RecordError(str(prepared), prepared.reason)
        bio = _BytesIO(b)
        bio.seek(5)
        try:
            datum = reader(bio, schema, None)
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


def key_decoder(spec: RelationSpec, registry: Any) -> KeyDecoder:
    """Confluent-wire-format Avro key -> stored-form key tuple of `spec`.

    A record key gives the key columns by name (a composite primary key); a
    primitive key fits a one-column key. A missing or null key column is None in
    the tuple (the applier counts it as a null key)."""
    names = spec.key_columns
    types = dict(zip(names, spec.key_types, strict=True))
    convs = tuple(to_storage(t) for t in spec.key_types)

    def prepare(schema: Any) -> Any:
        rec = _record_of(schema)
        if rec is None:
            if len(names) != 1:
                return RecordError(f"a composite key needs an Avro record key, schema is "
                                   f"{json.dumps(schema, default=str)[:80]}", "not_a_record")
            node = _resolve(schema, _named(schema))
            name = node.get("connect.name") if isinstance(node, dict) else None
            params = node.get("connect.parameters") if isinstance(node, dict) else None
            return ((None, connect_fixup(name, params, node, types[names[0]].kind), convs[0]),)
        fields = _avro_fields(rec, _named(schema))
        found = match_fields(fields, names)
        plan: list[tuple[str, Fixup | None, Fixup]] = []
        for col, conv in zip(names, convs, strict=True):
            src = found.get(col)
            if src is None:
                plan.append((col, None, conv))
            else:
                cname, params, node = fields[src]
                plan.append((src, connect_fixup(cname, params, node, types[col].kind), conv))
        return tuple(plan)

    read = _wire_reader(spec, registry, "key_format avro", prepare)

    def decode(b: bytes) -> tuple[Any, ...]:
        datum, plan = read(b)
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
            raise RecordError(f"key {src or names[0]!r}: {e}", "key_mismatch") from e
        return tuple(out)

    return decode


# --------------------------------------------------------------------------- values


def _value_columns(spec: RelationSpec) -> dict[str, ColumnType]:
    keys = set(spec.key_columns)
    return {c.name: c.type for c in spec.columns if c.name not in keys}


def _avro_value_decoder(spec: RelationSpec, registry: Any) -> ValueDecoder:
    columns = _value_columns(spec)
    single = next(iter(columns)) if len(columns) == 1 else None

    def prepare(schema: Any) -> Any:
        rec = _record_of(schema)
        if rec is not None:
            return field_plan(_avro_fields(rec, _named(schema)), columns)
        if single is None:
            return RecordError(f"value schema is not a record and {spec.name} has "
                               f"{len(columns)} value columns", "not_a_record")
        node = _resolve(schema, _named(schema))
        if isinstance(node, dict):
            fix = connect_fixup(node.get("connect.name"), node.get("connect.parameters"),
                                 node, columns[single].kind)
        else:
            fix = None
        return ((single, single, fix),)

    read = _wire_reader(spec, registry, "value_format avro", prepare)

    def decode(b: bytes) -> Mapping[str, Any]:
        datum, plan = read(b)
        if type(datum) is not dict:
            if single is None:
                raise RecordError("the Avro value is not a record", "not_a_record")
            datum = {single: datum}
        if plan:
            apply_plan(plan, datum)
        return datum

    return decode


def _debezium_avro_decoder(spec: RelationSpec, registry: Any) -> ValueDecoder:
    columns = _value_columns(spec)

    def prepare(schema: Any) -> Any:
        env = _record_of(schema)
        field_names = {f.get("name") for f in env.get("fields", ())} if env else set()
        if env is None or not {"op", "after"} <= field_names:
            return RecordError("the Avro value is not a Debezium envelope (no op/after "
                               "fields)", "not_debezium")
        after = next(f for f in env["fields"] if f["name"] == "after")
        row = _resolve(after["type"], _named(schema))
        if not isinstance(row, dict) or row.get("type") != "record":
            return RecordError("Debezium `after` is not a record", "not_debezium")
        return field_plan(_avro_fields(row, _named(schema)), columns)

    read = _wire_reader(spec, registry, "value_format debezium-avro", prepare)

    def decode(b: bytes) -> Mapping[str, Any]:
        env, plan = read(b)
        op = env.get("op")
        if op == "d":
            return DELETE  # type: ignore[no-any-return]
        if op not in ("c", "r", "u"):
            raise RecordError(f"Debezium op {op!r} is not c, r, u or d", "unsupported_op")
        after = env.get("after")
        if type(after) is not dict:
            raise RecordError(f"Debezium op {op!r} without an `after` row", "not_debezium")
        if plan:
            apply_plan(plan, after)
        return after

    return decode


def _connect_fields(struct: Any) -> dict[str, tuple[Any, Any, Any]] | None:
    """Field name -> (name, parameters, node) of a Kafka Connect JSON struct schema."""
    if not isinstance(struct, dict) or not isinstance(struct.get("fields"), list):
        return None
    out = {}
    for f in struct["fields"]:
        if isinstance(f, dict) and isinstance(f.get("field"), str):
            out[f["field"]] = (f.get("name"), f.get("parameters"), f)
    return out


def _debezium_json_decoder(spec: RelationSpec) -> ValueDecoder:
    columns = _value_columns(spec)
    loads = json.loads
    recent: list[tuple[Any, Plan]] = []  # (after-schema, plan), newest first, a few

    def plan_for(schema: Any) -> Plan:
        after = None
        fields = schema.get("fields") if isinstance(schema, dict) else None
        if isinstance(fields, list):
            for f in fields:
                if isinstance(f, dict) and f.get("field") == "after":
                    after = f
                    break
        for known, plan in recent:
            if known == after:
                return plan
        found = _connect_fields(after)
        plan = () if found is None else field_plan(found, columns)
        recent.insert(0, (after, plan))
        del recent[8:]
        return plan

    def decode(b: bytes) -> Mapping[str, Any]:
        try:
            obj = loads(b)
        except (ValueError, UnicodeDecodeError) as e:
            raise RecordError(f"malformed JSON: {e}", "malformed_json") from e
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
            raise RecordError(f"Debezium op {op!r} is not c, r, u or d", "unsupported_op")
        after = obj.get("after")
        if type(after) is not dict:
            raise RecordError(f"Debezium op {op!r} without an `after` row", "not_debezium")
        if schema is not None:
            plan = plan_for(schema)
            if plan:
                apply_plan(plan, after)
        return after

    return decode


def value_decoder(spec: RelationSpec, registry: Any) -> ValueDecoder:
    """Value decoder for `avro`, `debezium-avro` and `debezium-json` (see module doc)."""
    fmt = spec.value_format
    if fmt == "avro":
        return _avro_value_decoder(spec, registry)
    if fmt == "debezium-avro":
        return _debezium_avro_decoder(spec, registry)
    if fmt == "debezium-json":
        return _debezium_json_decoder(spec)
    raise ValueError(f"formats.avro has no value decoder for {fmt!r}")

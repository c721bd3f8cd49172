"""JSON keys and values (`json`, `json_sr`), with or without Kafka Connect's schema wrapper.

`json_sr` is what Confluent's JSON Schema serializer writes (ksqlDB JSON_SR): the
Confluent wire header (magic byte 0, a 4-byte schema id) and then JSON text, read
like `json`; the schema id is not looked up (RecordError truncated, bad_magic for a
message without the header).

Kafka Connect's JsonConverter with `schemas.enable=true` (Debezium with the
ExtractNewRecordState transform, JDBC source connectors, ...) writes every key and
value as `{"schema": {...}, "payload": ...}`. A JSON object is read as that wrapper
when it has exactly these two fields and `schema` is an object with a string `type`
(a Connect schema always has one); then the payload is the data, and the Connect
logical types its schema names are applied by `connect_types.field_plan` (Decimal from
base64 with its `scale`, Timestamp, MicroTimestamp, NanoTimestamp, ZonedTimestamp, Date,
Time, MicroTime, NanoTime, VariableScaleDecimal, Json), with fields matched to columns
by name, else case-insensitively when unambiguous. Plans are computed once per schema
(`connect_types.per_schema`). A `null` payload is a delete (a tombstone with a
schema); a payload that is not an object fills the one non-key column, if there is
exactly one. A relation that declares columns named both `schema` and `payload`
reads its JSON as it is.

A value object that shares no field with the declared columns (key columns
included) is rejected, RecordError(no_declared_columns): its fields would all be
lost and the row stored as NULLs. An empty object `{}` passes (it carries nothing to
lose), and so does any object for a relation without non-key columns. An object that
lacks a column and has a field differing from it only in case or by surrounding
whitespace (ksqlDB writes `NAME`) is rejected too, RecordError(case_mismatch): names are
exact without a schema, and that field's data would be lost; so is a Connect payload
whose schema gives no field of it for a column it lacks while it holds one differing from
the column only in case (schema and payload disagree). One lacking a column and having
other fields is logged once per column (`field_match.object_checker`).

Cost: a plain JSON object pays `"payload" in obj` and `field_match.object_checker`'s
check (a dict key test and a subset test) beyond `jsonread.loads`. (Objects of
exactly the declared fields take the typed path in `ingest.jsonrow` and none of this.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from materializer.columns import ColumnType
from materializer.errors import RecordError
from materializer.formats.base import (
    DELETE,
    KEY,
    VALUE,
    KeyDecoder,
    ValueDecoder,
    extra_key_fields,
    key_schema_beyond,
    part_error,
)
from materializer.formats.connect_types import (
    Fixup,
    Plan,
    apply_plan,
    connect_fixup,
    field_plan,
    per_schema,
    struct_fields,
)
from materializer.formats.deleted import DELETED_FIELD, marks_deleted, reads_deleted_marker
from materializer.formats.field_match import match_fields, object_checker, warn_unfilled
from materializer.formats.jsonread import loads
from materializer.formats.placeholders import (
    passing_placeholders,
    unavailable_finder,
    unavailable_forms,
)
from materializer.formats.wire import HEADER_SIZE, read_header
from materializer.specs import RelationSpec
from materializer.values import key_storage

__all__ = ["is_wrapper", "key_decoder",
           "value_decoder"]

_Unwrap = Callable[[dict[str, Any]], tuple[Any, frozenset[str], bool]]
_ABSENT: Any = object()  # a key column the key object does not have


def is_wrapper(obj: dict[str, Any]) -> bool:
    """Whether a JSON object is Kafka Connect's `{"schema", "payload"}` wrapper."""
    if len(obj) != 2 or "payload" not in obj:
        return False
    schema = obj.get("schema")
    return type(schema) is dict and type(schema.get("type")) is str


def _reads_wrapper(spec: RelationSpec) -> bool:
    names = set(spec.column_names)
    return not ("schema" in names and "payload" in names)


def _unwrapper(columns: Mapping[str, ColumnType], single: str | None, table: str = "",
               whole_key: tuple[str, ...] = (), key: bool = False,
               declared: Sequence[str] = (), placeholders: Mapping[str, Any] | None = None
               ) -> _Unwrap:
    """wrapper -> (payload with its Connect logical types applied: a dict of fields, a
    bare value when the schema is not a struct, or None; the `columns` a struct schema has
    no field for, which `warn_unfilled` logs with `table`; whether the payload is column
    `single`'s value: its schema is no struct, so an object there is a Connect map, not
    the fields of a row). A bare value is converted for column `single` if given (a map's
    values too), else returned as it is. RecordError(type_mismatch) for a
    value its logical type cannot read. With `table` (values, not keys), the columns a
    struct schema has no field for are logged (`warn_unfilled`) when it has a field for
    some `declared` column (a key column's too: its payloads are stored as rows, not
    no_declared_columns). With `whole_key` (a
    table's key columns), a struct schema with another field refuses every payload. With
    `key`, a value its logical type would round is refused (`connect_fixup`'s `exact`).
    `placeholders` (column -> Debezium's placeholder there, `formats.placeholders`) pass
    their columns' conversions unchanged."""

    none: frozenset[str] = frozenset()

    def plan(schema: dict[str, Any]
             ) -> tuple[Plan, Fixup | None, RecordError | None, frozenset[str], bool]:
        fields = struct_fields(schema)
        if fields is not None:
            matched = match_fields(fields, columns) if table or whole_key else {}
            unfilled = none
            if table and (matched or match_fields(fields, declared)):  # none: the payloads
                # are no_declared_columns, saying so
                unfilled = frozenset(c for c in columns if c not in matched)
                warn_unfilled(table, f"the Connect schema {schema.get('name') or 'struct'}",
                              list(fields), [c for c in columns if c not in matched])
            refused = key_schema_beyond(fields, matched, whole_key) if whole_key else None
            found = field_plan(fields, columns, exact=key)
            if placeholders:
                found = passing_placeholders(found, placeholders)
            return found, None, refused, unfilled, False
        if single is None:
            return (), None, None, none, False
        return (), connect_fixup(schema.get("name"), schema.get("parameters"), schema,
                                 columns[single], exact=key), None, none, True
    plan_for = per_schema(plan)

    def unwrap(obj: dict[str, Any]) -> tuple[Any, frozenset[str], bool]:
        payload = obj["payload"]
        if payload is None:
            return None, none, False
        struct_plan, fix, refused, unfilled, bare = plan_for(obj["schema"])
        if refused is not None:
            raise refused
        if type(payload) is dict and not bare:
            if struct_plan:
                apply_plan(struct_plan, payload)
        elif fix is not None:
            try:
                payload = fix(payload)
            except (TypeError, ValueError, ArithmeticError, OverflowError) as e:
                raise RecordError(f"the Connect payload: {e}", "type_mismatch") from e
        return payload, unfilled, bare
    return unwrap


def _unframe(b: bytes) -> bytes:
    """The JSON text of a JSON_SR message: after the Confluent wire header (magic byte 0,
    4-byte schema id; the id is not looked up). RecordError(truncated | bad_magic)."""
    read_header(b)
    return b[HEADER_SIZE:]


def value_decoder(spec: RelationSpec, framed: bool = False) -> ValueDecoder:
    """JSON value bytes -> field mapping, DELETE for the JSON `null` (a null value, as Kafka
    Connect's JsonConverter and ksqlDB read it), a wrapper with a null payload or a
    `__deleted: "true"` field (`formats.deleted`); `framed`: JSON_SR, the JSON after the
    Confluent wire header. With an `unavailable_value_placeholder` (unwrapped Debezium
    rows), an object holding it is an `UnavailableFields` (`formats.placeholders`)."""
    keys = set(spec.key_columns)
    columns = {c.name: c.type for c in spec.columns if c.name not in keys}
    wrapped = _reads_wrapper(spec)
    single = next(iter(columns)) if len(columns) == 1 else None
    unwrap = _unwrapper(columns, single, spec.name, declared=spec.column_names,
                        placeholders=unavailable_forms(spec, binary=False))
    find = unavailable_finder(spec, binary=False)
    none: frozenset[str] = frozenset()

    check = object_checker("the JSON object", spec.column_names, list(columns), spec.name)
    marker = reads_deleted_marker(spec)  # Debezium's rewritten deletes: formats.deleted

    def decode(b: bytes) -> Mapping[str, Any]:
        try:
            obj = loads(_unframe(b) if framed else b)
            if obj is None:  # the JSON `null`: a null value, as JsonConverter and ksqlDB read it
                return DELETE  # type: ignore[no-any-return]
            if type(obj) is not dict:
                raise RecordError(f"a JSON value must be an object, got "
                                  f"{type(obj).__name__}", "not_an_object")
            schemaless, unfilled = True, none
            if "payload" in obj and wrapped and is_wrapper(obj):
                schemaless = False  # the schema matched its fields to the columns
                obj, unfilled, bare = unwrap(obj)
                if bare and single is not None and obj is not None:
                    return {single: obj}  # a map too is the column's value, not a row
                if type(obj) is not dict:
                    if obj is None:
                        return DELETE  # type: ignore[no-any-return]
                    if single is None:
                        raise RecordError(f"the Connect payload is a {type(obj).__name__}, "
                                          "not an object of the columns", "not_an_object")
                    return {single: obj}
            if marker and DELETED_FIELD in obj and marks_deleted(obj[DELETED_FIELD]):
                return DELETE  # type: ignore[no-any-return]
            check(obj, schemaless, unfilled)
        except RecordError as e:
            raise part_error(VALUE, e) from e
        return obj if find is None else find(obj)

    return decode


def _lacks_columns(obj: dict[str, Any], names: tuple[str, ...], whole: bool) -> RecordError:
    """The rejection of a key object without a field for some key columns `names` (not a
    null key: a key of another shape); `whole`: a table's key, which has no other field."""
    lacking = [repr(n) for n in names if n not in obj]
    message = (f"{KEY}the key object lacks column{'s' if len(lacking) > 1 else ''} "
               f"{', '.join(lacking)}")
    extra = [repr(k) for k in obj if k not in names] if whole else []
    if extra:
        message += (f" and has field(s) {', '.join(extra[:5])}{', ...' if len(extra) > 5 else ''}"
                    f" that are not primary key columns ({', '.join(names)})")
    return RecordError(message, "key_mismatch")


def key_decoder(spec: RelationSpec, framed: bool = False) -> KeyDecoder:
    """JSON key bytes -> stored-form key tuple: an object of the key columns or, for a
    one-column key, the bare value; either may come in Connect's wrapper. `framed`:
    JSON_SR, the JSON after the Confluent wire header."""
    names = spec.key_columns
    types = dict(zip(names, spec.key_types, strict=True))
    convs = tuple(key_storage(t) for t in spec.key_types)
    whole = spec.kind == "table"  # a table's key columns are the whole key: no other field
    wrapped = _reads_wrapper(spec)
    unwrap_types = _unwrapper(types, names[0] if len(names) == 1 else None,
                              whole_key=names if whole else (), key=True)

    def unwrap(obj: dict[str, Any]) -> Any:
        """The payload; its schema's fields are the key's (checked per schema)."""
        try:
            return unwrap_types(obj)[0]
        except RecordError as e:
            message = str(e)
            raise RecordError(message if message.startswith(KEY) else KEY + message,
                              "key_mismatch") from e

    def read(b: bytes) -> Any:
        try:
            return loads(_unframe(b) if framed else b)
        except RecordError as e:
            raise part_error(KEY, e) from e

    if len(names) == 1:
        conv = convs[0]
        name = names[0]

        def one(b: bytes) -> tuple[Any, ...]:
            v = read(b)
            if type(v) is dict:
                plain = True
                if "payload" in v and wrapped and is_wrapper(v):
                    v, plain = unwrap(v), False
                if type(v) is dict:
                    if name not in v:
                        raise RecordError(f"{KEY}the key object lacks column {name!r}",
                                          "key_mismatch")
                    if whole and plain and len(v) != 1:
                        raise extra_key_fields([k for k in v if k != name], names)
                    v = v[name]
            if v is None:
                return (None,)
            try:
                return (conv(v),)
            except (TypeError, ValueError, ArithmeticError) as e:
                raise RecordError(f"{KEY}key column {name!r}: {e}", "key_mismatch") from e
        return one

    columns = tuple(zip(names, convs, strict=True))
    width = len(names)

    def many(b: bytes) -> tuple[Any, ...]:
        obj = read(b)
        plain = True
        if type(obj) is dict and "payload" in obj and wrapped and is_wrapper(obj):
            obj, plain = unwrap(obj), False
        if obj is None:  # JSON null (a Connect null payload too): a null key, as for one column
            return (None,) * width
        if type(obj) is not dict:
            raise RecordError(f"{KEY}a composite key must be a JSON object of the key "
                              "columns", "key_mismatch")
        out: list[Any] = []
        for name, conv in columns:
            v = obj.get(name, _ABSENT)
            if v is None:  # a key column that is there and null: a null key
                out.append(None)
                continue
            if v is _ABSENT:  # not there at all: the key does not fit the columns
                raise _lacks_columns(obj, names, whole and plain)
            try:
                out.append(conv(v))
            except (TypeError, ValueError, ArithmeticError) as e:
                raise RecordError(f"{KEY}key column {name!r}: {e}", "key_mismatch") from e
        if whole and plain and (len(obj) != width or None in out):  # a field of no column?
            extra = [k for k in obj if k not in types]
            if extra:
                raise extra_key_fields(extra, names)
        return tuple(out)
    return many

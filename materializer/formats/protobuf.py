"""Protobuf (Confluent wire format, Schema Registry) input: `value_format: protobuf`.

What confluent-kafka's ProtobufSerializer (and Java's KafkaProtobufSerializer, ksqlDB's
PROTOBUF format) writes: magic byte 0, the 4-byte big-endian schema id, the message
indexes (zigzag varints: a count, then the path of the message in the schema's file;
the single byte 0 means the first message), then the Protobuf message. Each record is
read with the descriptor its schema id names, fetched from the registry in serialized
form (`materializer.formats.protobuf_schemas`; no .proto compiler), cached per schema
id and message path.

Fields are matched to declared columns by name (exactly, else an unambiguous
case-insensitive match, as ksqlDB upper-cases names, else by `json_name`: the one field
whose JSON name, as the descriptor gives it (`userId` for `user_id`, or the `json_name`
option), is the column's name; several such fields refuse every message of the type,
ambiguous_alias); fields that are not columns are ignored, a column the message lacks
is null. Values:
- scalars as they are (int32/64, uint, sint, fixed: int; float, double; bool; string;
  bytes); an enum as its value's name (the first of its aliases; its number if the
  schema does not name it, which a string column refuses), or its number for an int or
  long column (or an array of them);
- a field with presence (proto3 `optional`, a oneof member, a message field) that is
  not set is null; a proto3 scalar without presence that is not set is its default
  (0, "", false), as every Protobuf reader sees it;
- google.protobuf.Timestamp -> timestamp, google.type.Date -> date,
  google.type.TimeOfDay -> time, confluent.type.Decimal (any scale) and
  google.type.Decimal -> decimal (exact), the
  wrappers (Int32Value, StringValue, ...) -> their value, Struct / Value / ListValue ->
  JSON data; another message -> an object of its fields (for a json column);
  repeated -> array, map -> map (keys as text).

Rejection reasons: truncated, bad_magic (wire header), bad_schema (not Protobuf, no
such message index, dependencies that do not resolve), unknown_schema,
protobuf_decode (the bytes do not parse as that message, or carry a field the schema
declares in a form it does not read: another wire type, or a number a closed proto2 enum
does not name, which the parser keeps as an unknown field and reads as unset: the record
was written with another schema than its id names; numbers the schema does not declare
are skipped, as every reader skips them), type_mismatch (a well-known value out of
range). Messages start with `value: `.

Needs the `protobuf` package (`pip install 'materializer[protobuf]'`) and a REST
registry (`schema_registry.url`).
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from collections.abc import Callable, Mapping
from typing import Any

from materializer.columns import ColumnType
from materializer.decimals import scaled
from materializer.errors import ConfigError, RecordError
from materializer.formats.base import VALUE, ValueDecoder, part_error
from materializer.formats.connect_types import text_for_bytes
from materializer.formats.field_match import match_fields, unmatched_schema
from materializer.formats.protobuf_unread import Unread, unread_check
from materializer.formats.wire import HEADER_SIZE, read_header
from materializer.specs import RelationSpec

__all__ = ["message_indexes", "value_decoder"]

INSTALL_HINT = ("value_format protobuf needs the protobuf package: "
                "pip install 'materializer[protobuf]'")
MAX_INDEXES = 64

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MIDNIGHT = dt.datetime(1970, 1, 1)
_MAX_NANOS = 999_999_999
_GOOGLE_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
"""google.type.Decimal's `value`: digits with an optional point and exponent (no
whitespace, underscores, NaN or Infinity, which Python's Decimal would also read)."""
Conv = Callable[[Any], Any]


def message_indexes(b: bytes, pos: int = HEADER_SIZE) -> tuple[tuple[int, ...], int]:
    """(message-index path, position of the message) of a Protobuf wire-format record.
    RecordError(truncated) for varints cut short, bad_schema for an absurd path."""

    def varint(at: int) -> tuple[int, int]:
        value = shift = 0
        n = len(b)
        while True:
            if at >= n:
                raise RecordError("the Protobuf message indexes end early", "truncated")
            byte = b[at]
            at += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return (value >> 1) ^ -(value & 1), at  # zigzag
            shift += 7
            if shift > 63:
                raise RecordError("a Protobuf message index is not a varint", "bad_schema")

    if pos < len(b) and b[pos] == 0:
        return (0,), pos + 1  # the first message: one zero byte
    count, pos = varint(pos)
    if not 0 < count <= MAX_INDEXES:
        raise RecordError(f"{count} Protobuf message indexes: not a message path",
                          "bad_schema")
    out = []
    for _ in range(count):
        i, pos = varint(pos)
        if i < 0:
            raise RecordError(f"Protobuf message index {i} is negative", "bad_schema")
        out.append(i)
    return tuple(out), pos


# --------------------------------------------------------------------------- values


def _repeated(fd: Any) -> bool:
    flag = getattr(fd, "is_repeated", None)
    return bool(flag) if flag is not None else bool(fd.label == fd.LABEL_REPEATED)


def _presence(fd: Any) -> bool:
    if _repeated(fd):
        return False
    flag = getattr(fd, "has_presence", None)
    if flag is not None:
        return bool(flag)
    return fd.message_type is not None or fd.containing_oneof is not None


def _timestamp(m: Any) -> dt.datetime:
    if not 0 <= m.nanos <= _MAX_NANOS:  # a timedelta would carry them into the seconds
        raise ValueError(f"Timestamp nanos {m.nanos} are outside 0..{_MAX_NANOS}: not a "
                         "valid Timestamp")
    try:
        return _EPOCH + dt.timedelta(seconds=m.seconds, microseconds=m.nanos // 1000)
    except OverflowError as e:
        raise ValueError(f"Timestamp {m.seconds} s is outside years 1-9999") from e


def _date(m: Any) -> dt.date:
    return dt.date(m.year, m.month, m.day)  # ValueError for a partial date (year 0, ...)


def _time_of_day(m: Any) -> dt.time:
    return dt.time(m.hours, m.minutes, m.seconds, m.nanos // 1000)


def _decimal(m: Any) -> Any:
    return scaled(int.from_bytes(m.value, "big", signed=True), m.scale)


def _google_decimal(m: Any) -> decimal.Decimal:
    text = m.value
    if _GOOGLE_DECIMAL.fullmatch(text) is None:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise ValueError(f"google.type.Decimal value {shown!r} is not a decimal number")
    return decimal.Decimal(text)


def _json_data(m: Any) -> Any:
    from google.protobuf import json_format  # noqa: PLC0415 - protobuf is optional

    return json_format.MessageToDict(m)


def _wrapped(m: Any) -> Any:
    return m.value


_WELL_KNOWN: dict[str, Conv] = {
    "google.protobuf.Timestamp": _timestamp, "google.type.Date": _date,
    "google.type.TimeOfDay": _time_of_day, "confluent.type.Decimal": _decimal,
    "google.type.Decimal": _google_decimal,
    "google.protobuf.Struct": _json_data, "google.protobuf.Value": _json_data,
    "google.protobuf.ListValue": _json_data,
    **{f"google.protobuf.{w}Value": _wrapped for w in (
        "Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")},
}


def _json_bool(b: bool) -> str:
    """A bool map key as Protobuf's JSON mapping writes it."""
    return "true" if b else "false"


class _Plans:
    """Per message type, how its fields become Python values (made once, lazily, so
    recursive message types are fine)."""

    def __init__(self) -> None:
        self._messages: dict[str, list[tuple[str, bool, Conv | None]]] = {}

    def field(self, fd: Any) -> Conv | None:
        """How one field's value (as the message gives it) becomes a Python value."""
        one = self._single(fd)
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            value_fd = fd.message_type.fields_by_name["value"]
            inner = self._single(value_fd)
            key_fd = fd.message_type.fields_by_name["key"]
            # map keys as Protobuf's JSON mapping writes them: "true"/"false", not "True"
            key: Conv = _json_bool if key_fd.type == key_fd.TYPE_BOOL else str
            if inner is None:
                return lambda m: {key(k): v for k, v in m.items()}
            return lambda m: {key(k): inner(v) for k, v in m.items()}
        if _repeated(fd):
            if one is None:
                return list
            return lambda xs: [one(x) for x in xs]
        return one

    def _single(self, fd: Any) -> Conv | None:
        if fd.enum_type is not None:
            # a number's name is the first declared for it (an alias, allow_alias, is a
            # later name for the same number), as every Protobuf reader names it
            names: dict[int, str] = {}
            for v in fd.enum_type.values:
                names.setdefault(v.number, v.name)
            return lambda n: names.get(n, n)
        msg = fd.message_type
        if msg is None:
            return bytes if fd.type == fd.TYPE_BYTES else None
        known = _WELL_KNOWN.get(msg.full_name)
        if known is not None:
            check = unread_check(msg, msg.fields_by_name)
            value: Conv = known

            def well_known(m: Any) -> Any:
                check(m)
                return value(m)
            return well_known
        return self.message(msg)

    def message(self, desc: Any) -> Conv:
        """A message -> a dict of its fields."""
        name = desc.full_name
        check = unread_check(desc, desc.fields_by_name)

        def to_dict(m: Any) -> dict[str, Any]:
            plan = self._messages.get(name)
            if plan is None:
                plan = [(fd.name, _presence(fd), self.field(fd)) for fd in desc.fields]
                self._messages[name] = plan
            check(m)
            out: dict[str, Any] = {}
            for fname, presence, conv in plan:
                if presence and not m.HasField(fname):
                    out[fname] = None
                    continue
                v = getattr(m, fname)
                out[fname] = v if conv is None else conv(v)
            return out
        return to_dict


def _text_into_bytes(fd: Any, ctype: ColumnType) -> bool:
    """Whether a `string` field feeds a bytes column that declares no `encoding`: its text
    is refused (`text_for_bytes`), never guessed as base64 (hex is valid base64 too)."""
    return (ctype.kind == "bytes" and ctype.encoding is None and fd.type == fd.TYPE_STRING
            and not _repeated(fd))


def _enum_column(fd: Any, ctype: ColumnType, plans: _Plans) -> Conv | None:
    """How an enum field (not a map) fills its column: an int or long column (or an
    array of them) takes its numbers, as Protobuf carries them; a string column its
    names, refusing a number the enum does not name (it is no name); any other column
    (json: names, else numbers) what `_Plans.field` gives."""
    repeated = _repeated(fd)
    kind = ctype.item.kind if repeated and ctype.kind == "array" and ctype.item else ctype.kind
    if kind in ("int", "long"):
        return list if repeated else None
    conv = plans.field(fd)
    if kind != "string" or conv is None:
        return conv
    enum = fd.enum_type.full_name

    def named(n: Any) -> Any:
        if type(n) is int:
            raise ValueError(f"{n} is no value of enum {enum}, so it has no name for a string "
                             "column (the record was written with a later version of the "
                             "enum); declare the column int or long to store enum numbers")
        return n

    if repeated:
        return lambda xs: [named(x) for x in conv(xs)]
    return lambda n: named(conv(n))


def _plan_of(fd: Any, ctype: ColumnType, plans: _Plans) -> Conv | None:
    """How field `fd` becomes the value of a column of type `ctype`."""
    if _text_into_bytes(fd, ctype):
        return text_for_bytes
    if fd.enum_type is not None:
        return _enum_column(fd, ctype, plans)
    return plans.field(fd)


def _row_reader(desc: Any, columns: Mapping[str, ColumnType], spec: RelationSpec
                ) -> Callable[[bytes], Any]:
    """bytes of one message of type `desc` -> {column: value} for the declared columns;
    RecordError(no_declared_columns) for every message of a type none of whose fields is
    a declared column, ambiguous_alias for every message of a type several of whose fields
    have a column's name as `json_name` (and none as its own name)."""
    from google.protobuf.message import DecodeError  # noqa: PLC0415 - protobuf is optional
    from google.protobuf.message_factory import GetMessageClass  # noqa: PLC0415

    fields = desc.fields_by_name
    full_name = desc.full_name
    json_names = [(name, "json_name", fd.json_name) for name, fd in fields.items()
                  if getattr(fd, "json_name", name) != name]  # fill a column none is named
    unmatched = unmatched_schema(f"Protobuf message {full_name}", fields, spec.column_names,
                                 list(columns), spec.name, json_names)
    if unmatched is not None:
        def refuse(body: bytes) -> Any:
            raise RecordError(str(unmatched), unmatched.reason)
        return refuse
    parse = GetMessageClass(desc).FromString
    plans = _Plans()
    matched = match_fields(fields, columns, json_names)
    plan = [(col, src, _presence(fields[src]), _plan_of(fields[src], columns[col], plans))
            for col, src in matched.items()]
    check = unread_check(desc, set(matched.values()))

    def read(body: bytes) -> Any:
        try:
            m = parse(body)
        except (DecodeError, RuntimeError, ValueError) as e:
            raise RecordError(f"the bytes do not parse as Protobuf message {full_name}: {e}",
                              "protobuf_decode") from e
        out: dict[str, Any] = {}
        src = ""
        try:
            check(m)
            for col, src, presence, conv in plan:
                if presence and not m.HasField(src):
                    out[col] = None
                    continue
                v = getattr(m, src)
                out[col] = v if conv is None else conv(v)
        except Unread as e:
            raise RecordError(f"Protobuf message {full_name}: {e}", "protobuf_decode") from e
        except (TypeError, ValueError, ArithmeticError, OverflowError) as e:
            raise RecordError(f"field {src!r}: {e}", "type_mismatch") from e
        return out
    return read


# --------------------------------------------------------------------------- decoders


def value_decoder(spec: RelationSpec, registry: Any) -> ValueDecoder:
    """Protobuf wire-format value -> {column: value}; see the module docstring."""
    try:
        from materializer.formats import protobuf_schemas  # noqa: PLC0415 - optional
    except ImportError as e:
        raise ConfigError(f"{spec.name}: {INSTALL_HINT}") from e
    if registry is None or not hasattr(registry, "schema_text"):
        where = "no schema_registry" if registry is None else "a registry kept as files"
        raise ConfigError(f"{spec.name}: value_format protobuf reads each schema from a "
                          f"Confluent-compatible registry, and the declaration names {where}: "
                          "add `schema_registry: {url: ...}` at the top level")
    keys = set(spec.key_columns)
    columns = {c.name: c.type for c in spec.columns if c.name not in keys}
    files: dict[int, Any] = {}
    readers: dict[tuple[int, tuple[int, ...]], Callable[[bytes], Any]] = {}

    def reader(sid: int, path: tuple[int, ...]) -> Callable[[bytes], Any]:
        file = files.get(sid)
        if file is None:
            try:
                file = protobuf_schemas.load_file(registry, sid)
            except RecordError as e:
                if e.reason != "bad_schema":
                    raise
                file = e  # a broken schema stays broken: not rebuilt for every record
            files[sid] = file
        if isinstance(file, RecordError):
            raise RecordError(str(file), file.reason)
        made = readers[(sid, path)] = _row_reader(
            protobuf_schemas.message_at(file, path, sid), columns, spec)
        return made

    def decode(b: bytes) -> Mapping[str, Any]:
        try:
            sid = read_header(b)
            path, pos = message_indexes(b)
            read = readers.get((sid, path)) or reader(sid, path)
            return read(b[pos:])  # type: ignore[no-any-return]
        except RecordError as e:
            raise part_error(VALUE, e) from e
    return decode

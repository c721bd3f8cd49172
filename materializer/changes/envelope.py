"""Debezium-compatible change-event envelopes: applied changes to Kafka key and value bytes.

An encoder turns a batch of `apply.Change` (stored-form tuples) into the Kafka
messages that represent it, in order: one event per change and, after every
delete, a tombstone (null value) for the same key (SPEC §5).

- Key, `debezium-json`: the primary key as a compact JSON object of JSON-form
  values, e.g. `{"id":1}`.
- Key, `debezium-avro`: an Avro record `<namespace>.Key` of the primary key columns
  (the same field names and Avro types as the envelope's row fields) in the
  Confluent wire format, registered under `<change topic>-key`, so Avro
  converters and deserializers read keys and values alike.
  In both formats equal keys always give equal bytes, so every event of one key
  hashes to one change-topic partition.
- Value, `debezium-json`: `{"before", "after", "op", "ts_ms", "source"}` with rows
  in JSON form (dates ISO 8601, decimals as strings, bytes base64), and with
  `changes: {columns: true}` a `changed` list of column names on `u` events.
- Value, `debezium-avro`: the same envelope as Avro in the Confluent wire format
  (magic 0, 4-byte schema id, body); the schema is registered once, when the
  encoder is built, under `<change topic>-value` (and the key's under `-key`).

`source` (both formats) carries Debezium's required fields and SPEC §5's position:
`version` (the materializer's), `connector` and `name` ("materializer"), `ts_ms` (the
source record's timestamp; for a snapshot event, the time of the snapshot),
`snapshot` ("false" for c/u/d, "true" for r, "last" for the last r of a snapshot),
`db` (the schema part of the table's qualified name), `table` (the qualified name,
as SPEC §5 has it: `shop.users`), `topic`, `partition` and `offset` (the source
record's; for r, the last offset applied in the row's partition).

Encoding is deterministic for a given change except `ts_ms` (the emit time), so a
re-emitted event differs from the first only there.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import io
import json
import json.encoder
import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import fastavro

from materializer import __version__
from materializer.changes import connect
from materializer.changes.event import Change
from materializer.columns import ColumnType
from materializer.errors import ConfigError
from materializer.formats.wire import header
from materializer.protocols import SchemaRegistry
from materializer.specs import TableSpec
from materializer.values import items_converter, to_json_value

Message = tuple[int, bytes, bytes | None]
"""(source partition, key bytes, value bytes or None for a tombstone)."""

def _json_default(o: Any) -> Any:
    """Values a `json` column may hold that JSON has no type for (from Avro sources)."""
    if isinstance(o, decimal.Decimal):
        return str(o)
    if isinstance(o, bytes | bytearray):
        return base64.b64encode(o).decode("ascii")
    if isinstance(o, dt.date | dt.time):
        return o.isoformat()
    if isinstance(o, set | frozenset | tuple):
        return list(o)
    return str(o)


def _make_compact() -> Callable[[Any], str]:
    """Compact ASCII JSON; the C encoder built once (JSONEncoder rebuilds it per call)."""
    c_make = getattr(json.encoder, "c_make_encoder", None)
    if c_make is None:  # no C accelerator in this Python
        return json.JSONEncoder(separators=(",", ":"), default=_json_default).encode
    enc = c_make(None, _json_default, json.encoder.encode_basestring_ascii, None, ":", ",",
                 False, False, True)
    join = "".join
    return lambda obj: join(enc(obj, 0))


_compact = _make_compact()
_quote = json.encoder.encode_basestring_ascii


CONNECTOR = "materializer"
"""`source.connector` and `source.name` of every event."""


def source_db(spec: TableSpec) -> str:
    """`source.db`: the schema part of the table's qualified name `schema.name`."""
    return spec.name.partition(".")[0]


def snapshot_flag(op: str) -> str:
    """`source.snapshot` of an event that is not the last of a snapshot."""
    return "true" if op == "r" else "false"


class EventEncoder(Protocol):
    """Turns applied changes into Kafka messages (events and tombstones), in order.
    With `snapshot_last`, the last change is the last r event of a snapshot
    (`source.snapshot: "last"`)."""

    def encode(self, changes: Sequence[Change], now_ms: int, *,
               snapshot_last: bool = False) -> list[Message]: ...


# ------------------------------------------------------------------------- JSON


def key_encoder(spec: TableSpec) -> Callable[[tuple[Any, ...]], bytes]:
    """Stored-form key tuple -> the event key: a compact JSON object of the key columns.

    Equal keys give equal bytes (the partitioner hashes them)."""
    names = spec.key_columns
    convs = tuple(to_json_value(t) for t in spec.key_types)
    if len(names) == 1 and convs[0] is None:
        head = "{" + _quote(names[0]) + ":"
        kind = spec.key_types[0].kind
        if kind in ("int", "long"):
            return lambda kt: f"{head}{kt[0]:d}}}".encode()
        if kind in ("string", "uuid", "decimal"):
            return lambda kt: f"{head}{_quote(kt[0])}}}".encode()
    if all(c is None for c in convs):
        return lambda kt: _compact(dict(zip(names, kt, strict=False))).encode()
    return lambda kt: _compact({n: v if c is None or v is None else c(v)
                                for n, c, v in zip(names, convs, kt, strict=False)}).encode()


def _connect_key_encoder(spec: TableSpec, namespace: str) -> Callable[[tuple[Any, ...]], bytes]:
    """Stored-form key tuple -> `{"schema": <key struct>, "payload": {...}}` (the schema
    text built once)."""
    head = '{"schema":' + _compact(connect.key_schema(spec, namespace)) + ',"payload":'
    names = spec.key_columns
    convs = tuple(connect.payload_converter(t, _compact) for t in spec.key_types)
    return lambda kt: (head + _compact({n: v if c is None or v is None else c(v)
                                        for n, c, v in zip(names, convs, kt, strict=False)})
                       + "}").encode()


class JsonEnvelope:
    """`format: debezium-json`; with `changes: {schemas: true}` every key and value is
    wrapped as Kafka Connect's JsonConverter writes it (see `materializer.changes.connect`),
    the schema texts computed once, here."""

    __slots__ = ("_names", "_width", "_convs", "_key", "_source_head", "_source_tail",
                 "_columns", "_open", "_close")

    def __init__(self, spec: TableSpec, layout: Sequence[str]) -> None:
        self._names = tuple(layout)
        self._width = len(self._names)
        if spec.changes is not None and spec.changes.schemas:
            namespace = _namespace(spec)
            envelope = connect.envelope_schema(spec, layout, namespace)
            self._open, self._close = '{"schema":' + _compact(envelope) + ',"payload":', "}"
            self._key = _connect_key_encoder(spec, namespace)
            self._convs = tuple((i, n, c) for i, n in enumerate(self._names)
                                if (c := connect.payload_converter(spec.column(n).type,
                                                                   _compact)) is not None)
        else:
            self._open = self._close = ""
            self._key = key_encoder(spec)
            self._convs = tuple((i, n, c) for i, n in enumerate(self._names)
                                if (c := to_json_value(spec.column(n).type)) is not None)
        self._source_head = (f',"source":{{"version":{_quote(__version__)},'
                             f'"connector":"{CONNECTOR}","name":"{CONNECTOR}","ts_ms":')
        self._source_tail = (f',"db":{_quote(source_db(spec))},"table":{_quote(spec.name)},'
                             f'"topic":{_quote(spec.topic)},"partition":')
        self._columns = spec.changes is not None and spec.changes.columns

    def _row(self, t: tuple[Any, ...] | None) -> str:
        """A stored row tuple as a JSON object text (`null` for none)."""
        if t is None:
            return "null"
        if len(t) < self._width:
            t = t + (None,) * (self._width - len(t))
        row = dict(zip(self._names, t, strict=False))
        for i, name, conv in self._convs:
            v = t[i]
            if v is not None:
                row[name] = conv(v)
        return _compact(row)

    def encode(self, changes: Sequence[Change], now_ms: int, *,
               snapshot_last: bool = False) -> list[Message]:
        if snapshot_last and changes:
            return (self._encode(changes[:-1], now_ms, "")
                    + self._encode(changes[-1:], now_ms, "last"))
        return self._encode(changes, now_ms, "")

    def _encode(self, changes: Sequence[Change], now_ms: int, flag: str) -> list[Message]:
        """`flag`, if not empty, is the `source.snapshot` of every change."""
        out: list[Message] = []
        append = out.append
        row = self._row
        names = self._names
        key_of = self._key
        head = self._source_head
        tail = self._source_tail
        columns = self._columns
        wrap, unwrap = self._open, self._close
        for ch in changes:
            key = key_of(ch.key)
            op = ch.op
            extra = (f',"changed":{_compact(_changed(names, ch.before, ch.after))}'
                     if columns and op == "u" else "")
            snap = flag or snapshot_flag(op)
            value = (f'{wrap}{{"before":{row(ch.before)},"after":{row(ch.after)},"op":"{op}",'
                     f'"ts_ms":{now_ms:d}{extra}{head}{ch.timestamp_ms:d},"snapshot":"{snap}"'
                     f'{tail}{ch.partition:d},"offset":{ch.offset:d}}}}}{unwrap}')
            append((ch.partition, key, value.encode()))
            if op == "d":
                append((ch.partition, key, None))
        return out


def _changed(names: Sequence[str], before: tuple[Any, ...] | None,
             after: tuple[Any, ...] | None) -> list[str]:
    """Names of the columns whose stored values differ (Dolt's cell-wise diff)."""
    b = before or ()
    a = after or ()
    return [n for i, n in enumerate(names)
            if (b[i] if i < len(b) else None) != (a[i] if i < len(a) else None)]


# ------------------------------------------------------------------------- Avro

_AVRO_NAME = re.compile(r"[^A-Za-z0-9_]")


def avro_name(name: str) -> str:
    """A valid Avro name for a column or namespace part (`[A-Za-z_][A-Za-z0-9_]*`)."""
    clean = _AVRO_NAME.sub("_", name) or "_"
    return "_" + clean if clean[0].isdigit() else clean


def avro_type(t: ColumnType) -> Any:
    """The Avro type of a column type (without the null union)."""
    k = t.kind
    if k in ("int", "long", "float", "double", "boolean", "string", "bytes"):
        return k
    if k == "decimal":
        return {"type": "bytes", "logicalType": "decimal", "precision": t.precision,
                "scale": t.scale}
    if k == "date":
        return {"type": "int", "logicalType": "date"}
    if k == "time":
        return {"type": "long", "logicalType": "time-micros"}
    if k == "timestamp":
        return {"type": "long", "logicalType": "timestamp-micros"}
    if k == "uuid":
        return {"type": "string", "logicalType": "uuid"}
    if k == "json":
        return {"type": "string", "connect.name": "io.debezium.data.Json"}
    assert t.item is not None
    inner = ["null", avro_type(t.item)]
    if k == "array":
        return {"type": "array", "items": inner}
    return {"type": "map", "values": inner}


def _avro_value(t: ColumnType) -> Callable[[Any], Any] | None:
    """A converter from the stored form to what fastavro writes for `avro_type(t)`."""
    k = t.kind
    if k == "decimal":
        return decimal.Decimal
    if k == "json":
        return _compact
    if k in ("array", "map"):
        return items_converter(t, _avro_value)
    return None  # date, time, timestamp are stored as the Avro logical types' numbers


def _namespace(spec: TableSpec) -> str:
    """`materializer.<schema>.<table>`: the namespace of the table's Avro records."""
    return ".".join(["materializer", *(avro_name(p) for p in spec.name.split("."))])


def _field_names(layout: Sequence[str]) -> dict[str, str]:
    """Column -> its Avro field name (valid, unique within the row record)."""
    out: dict[str, str] = {}
    seen: set[str] = set()
    for name in layout:
        fname = avro_name(name)
        while fname in seen:
            fname += "_"
        seen.add(fname)
        out[name] = fname
    return out


def key_schema(spec: TableSpec, layout: Sequence[str]) -> dict[str, Any]:
    """The Avro key record: the primary key columns, named and typed as the envelope's
    row fields of those columns."""
    namespace = _namespace(spec)
    names = _field_names(layout)
    fields: list[dict[str, Any]] = []
    for name in spec.key_columns:
        field: dict[str, Any] = {"name": names[name],
                                 "type": avro_type(spec.column(name).type)}
        if names[name] != name:
            field["doc"] = f"column {name}"
        fields.append(field)
    return {"type": "record", "name": "Key", "namespace": namespace,
            "connect.name": f"{namespace}.Key", "fields": fields}


def envelope_schema(spec: TableSpec, layout: Sequence[str]) -> dict[str, Any]:
    """The per-table Debezium envelope: before/after as nullable unions of the row record."""
    namespace = _namespace(spec)
    key_set = set(spec.key_columns)
    fields: list[dict[str, Any]] = []
    for name, fname in _field_names(layout).items():
        col = spec.column(name)
        field: dict[str, Any] = {"name": fname}
        if col.not_null or name in key_set:
            field["type"] = avro_type(col.type)
        else:
            field["type"] = ["null", avro_type(col.type)]
            field["default"] = None
        if fname != name:
            field["doc"] = f"column {name}"
        fields.append(field)
    # fields added after the first envelope have defaults: events written with an older
    # envelope stay readable (a registry's BACKWARD check passes)
    source = {"type": "record", "name": "Source", "fields": [
        {"name": "version", "type": "string", "default": ""},
        {"name": "connector", "type": "string", "default": CONNECTOR},
        {"name": "name", "type": "string"},
        {"name": "ts_ms", "type": "long"},
        {"name": "snapshot", "type": {
            "type": "string", "connect.version": 1, "connect.name": "io.debezium.data.Enum",
            "connect.parameters": {"allowed": "true,last,false"}, "connect.default": "false"},
         "default": "false"},
        {"name": "db", "type": "string", "default": ""},
        {"name": "table", "type": "string"},
        {"name": "topic", "type": "string"},
        {"name": "partition", "type": "int"},
        {"name": "offset", "type": "long"}]}
    env_fields: list[dict[str, Any]] = [
        {"name": "before", "type": ["null", {"type": "record", "name": "Value",
                                             "fields": fields}], "default": None},
        {"name": "after", "type": ["null", "Value"], "default": None},
        {"name": "source", "type": source},
        {"name": "op", "type": "string"},
        {"name": "ts_ms", "type": ["null", "long"], "default": None},
    ]
    if spec.changes is not None and spec.changes.columns:
        env_fields.append({"name": "changed", "type": ["null", {"type": "array",
                                                                "items": "string"}],
                           "default": None})
    return {"type": "record", "name": "Envelope", "namespace": namespace,
            "connect.name": f"{namespace}.Envelope", "fields": env_fields}


class AvroEnvelope:
    """`format: debezium-avro`: the envelope in the Confluent wire format."""

    __slots__ = ("schema_id", "key_schema_id", "_schema", "_prefix", "_key", "_fields",
                 "_names", "_width", "_convs", "_source", "_columns")

    def __init__(self, spec: TableSpec, layout: Sequence[str], registry: SchemaRegistry
                 ) -> None:
        assert spec.changes is not None
        schema = envelope_schema(spec, layout)
        kschema = key_schema(spec, layout)
        # the registry raises InfrastructureError (unreachable) or SchemaRejected (refused)
        self.schema_id = int(registry.register(f"{spec.changes.topic}-value", schema))
        self.key_schema_id = int(registry.register(f"{spec.changes.topic}-key", kschema))
        self._schema = fastavro.parse_schema(schema)
        self._prefix = header(self.schema_id)
        self._key = _avro_key_encoder(spec, kschema, self.key_schema_id)
        self._fields = tuple(f["name"] for f in schema["fields"][0]["type"][1]["fields"])
        self._names = tuple(layout)
        self._width = len(self._fields)
        self._convs = tuple((i, c) for i, n in enumerate(layout)
                            if (c := _avro_value(spec.column(n).type)) is not None)
        self._source = (source_db(spec), spec.name, spec.topic)
        self._columns = spec.changes.columns

    def _row(self, t: tuple[Any, ...] | None) -> dict[str, Any] | None:
        if t is None:
            return None
        if len(t) < self._width:
            t = t + (None,) * (self._width - len(t))
        if self._convs:
            vals = list(t)
            for i, conv in self._convs:
                v = vals[i]
                if v is not None:
                    vals[i] = conv(v)
            return dict(zip(self._fields, vals, strict=False))
        return dict(zip(self._fields, t, strict=False))

    def encode(self, changes: Sequence[Change], now_ms: int, *,
               snapshot_last: bool = False) -> list[Message]:
        if snapshot_last and changes:
            return (self._encode(changes[:-1], now_ms, "")
                    + self._encode(changes[-1:], now_ms, "last"))
        return self._encode(changes, now_ms, "")

    def _encode(self, changes: Sequence[Change], now_ms: int, flag: str) -> list[Message]:
        """`flag`, if not empty, is the `source.snapshot` of every change."""
        out: list[Message] = []
        append = out.append
        row = self._row
        key_of = self._key
        write = fastavro.schemaless_writer
        schema = self._schema
        prefix = self._prefix
        names = self._names
        db, table, topic = self._source
        columns = self._columns
        for ch in changes:
            key = key_of(ch.key)
            record: dict[str, Any] = {
                "before": row(ch.before), "after": row(ch.after), "op": ch.op,
                "ts_ms": now_ms,
                "source": {"version": __version__, "connector": CONNECTOR,
                           "name": CONNECTOR, "ts_ms": ch.timestamp_ms,
                           "snapshot": flag or snapshot_flag(ch.op), "db": db, "table": table,
                           "topic": topic, "partition": ch.partition, "offset": ch.offset}}
            if columns:
                record["changed"] = (_changed(names, ch.before, ch.after)
                                     if ch.op == "u" else None)
            buf = io.BytesIO(prefix)
            buf.seek(5)
            write(buf, schema, record)
            append((ch.partition, key, buf.getvalue()))
            if ch.op == "d":
                append((ch.partition, key, None))
        return out


def _avro_key_encoder(spec: TableSpec, schema: dict[str, Any], schema_id: int
                      ) -> Callable[[tuple[Any, ...]], bytes]:
    """Stored-form key tuple -> the key record in the wire format (deterministic bytes)."""
    parsed = fastavro.parse_schema(schema)
    fields = tuple(f["name"] for f in schema["fields"])
    convs = tuple(_avro_value(t) for t in spec.key_types)
    prefix = header(schema_id)
    write = fastavro.schemaless_writer

    def encode(kt: tuple[Any, ...]) -> bytes:
        buf = io.BytesIO(prefix)
        buf.seek(5)
        write(buf, parsed, {f: v if c is None or v is None else c(v)
                            for f, c, v in zip(fields, convs, kt, strict=False)})
        return buf.getvalue()
    return encode


def encoder_for(spec: TableSpec, layout: Sequence[str], registry: SchemaRegistry | None
                ) -> EventEncoder:
    """The encoder for `spec.changes.format`. Raises ConfigError for debezium-avro without
    a registry, InfrastructureError if the registry refuses or is unreachable."""
    fmt = spec.changes.format if spec.changes is not None else "debezium-json"
    if fmt == "debezium-json":
        return JsonEnvelope(spec, layout)
    if fmt == "debezium-avro":
        if registry is None:
            raise ConfigError(f"{spec.name}: change events in debezium-avro need a "
                              "schema_registry (url or path) that can register schemas")
        return AvroEnvelope(spec, layout, registry)
    raise ConfigError(f"{spec.name}: unknown change-event format {fmt!r}")

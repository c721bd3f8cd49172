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

from collections.abc import Callable, Sequence
from typing import Any

from materializer import __version__
from materializer.changes import connect
from materializer.changes.avro_envelope import AvroEnvelope, avro_namespace
from materializer.changes.envelope_base import (
    CONNECTOR,
    BatchRows,
    EventEncoder,
    Message,
    SnapshotAware,
    _changed,
    _compact,
    _quote,
    batch_keys,
    event_time,
    json_bytes,
    row_json,
    snapshot_flag,
    source_db,
)
from materializer.changes.event import Change
from materializer.errors import ConfigError
from materializer.protocols import SchemaRegistry
from materializer.specs import TableSpec
from materializer.stored import to_json_value


def key_encoder(spec: TableSpec) -> Callable[[tuple[Any, ...]], bytes]:
    """Stored-form key tuple -> the event key: a compact JSON object of the key columns.

    Equal keys give equal bytes (the partitioner hashes them)."""
    names = spec.key_columns
    convs = tuple(to_json_value(t) for t in spec.key_types)
    if len(names) == 1 and convs[0] is None:
        head = "{" + _quote(names[0]) + ":"
        kind = spec.key_types[0].kind
        if kind in ("int", "long"):  # one bytes template, filled in C
            return (head.replace("%", "%%") + "%d}").encode().__mod__
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


class JsonEnvelope(SnapshotAware):
    """`format: debezium-json`; with `changes: {schemas: true}` every key and value is
    wrapped as Kafka Connect's JsonConverter writes it (see `materializer.changes.connect`),
    the schema texts computed once, here."""

    __slots__ = ("_names", "_width", "_convs", "_keys", "_source_head", "_source_tail",
                 "_columns", "_open", "_close", "_time_of", "_row_json")

    def __init__(self, spec: TableSpec, layout: Sequence[str]) -> None:
        self._names = tuple(layout)
        self._width = len(self._names)
        if spec.changes is not None and spec.changes.schemas:
            namespace = avro_namespace(spec)
            envelope = connect.envelope_schema(spec, layout, namespace)
            self._open, self._close = '{"schema":' + _compact(envelope) + ',"payload":', "}"
            self._keys = batch_keys(_connect_key_encoder(spec, namespace), spec)
            self._convs = tuple((i, n, c) for i, n in enumerate(self._names)
                                if (c := connect.payload_converter(spec.column(n).type,
                                                                   _compact)) is not None)
        else:
            self._open = self._close = ""
            # an integer key is formatted faster than it is looked up (`key_encoder`)
            integer = len(spec.key_types) == 1 and spec.key_types[0].kind in ("int", "long")
            self._keys = batch_keys(key_encoder(spec), spec, remember=not integer)
            self._convs = tuple((i, n, c) for i, n in enumerate(self._names)
                                if (c := to_json_value(spec.column(n).type)) is not None)
        self._source_head = (f',"source":{{"version":{_quote(__version__)},'
                             f'"connector":"{CONNECTOR}","name":"{CONNECTOR}","ts_ms":'
                             ).encode()
        self._source_tail = (f',"db":{_quote(source_db(spec))},"table":{_quote(spec.name)},'
                             f'"topic":{_quote(spec.topic)},"partition":').encode()
        self._columns = spec.changes is not None and spec.changes.columns
        self._time_of = event_time(spec, layout)
        self._row_json = row_json(self._names)

    def _row(self, t: tuple[Any, ...]) -> bytes:
        """A stored row tuple as compact JSON object bytes."""
        if len(t) < self._width:
            t = t + (None,) * (self._width - len(t))
        if not self._convs:
            return self._row_json(t)
        values = list(t)
        for i, _, conv in self._convs:
            v = values[i]
            if v is not None:
                values[i] = conv(v)
        return self._row_json(values)

    def _templates(self, now_ms: int, flag: str) -> dict[str, bytes]:
        """Per op, the bytes template of an event's value with what every event of the batch
        shares filled in (the op, `ts_ms`, `source.snapshot`, the Connect wrapping); left
        (`%`): before, after, changed (with its comma, or nothing), `source.ts_ms`,
        partition and offset."""
        def lit(b: bytes) -> bytes:
            return b.replace(b"%", b"%%")
        out = {}
        for op in ("c", "u", "d", "r"):
            snapshot = (flag or snapshot_flag(op)).encode()
            out[op] = (lit(self._open.encode()) + b'{"before":%s,"after":%s,"op":"'
                       + op.encode() + b'","ts_ms":' + b"%d" % now_ms + b"%s"
                       + lit(self._source_head) + b'%d,"snapshot":"' + lit(snapshot) + b'"'
                       + lit(self._source_tail) + b'%d,"offset":%d}}'
                       + lit(self._close.encode()))
        return out

    def _encode(self, changes: Sequence[Change], now_ms: int, flag: str) -> list[Message]:
        """`flag`, if not empty, is the `source.snapshot` of every change. Each value is
        one bytes template filled in (`%`), the rows encoded by msgspec: no text step."""
        out: list[Message] = []
        append = out.append
        rows = BatchRows(self._row, b"null")
        before_of, after_of = rows.before, rows.after
        names = self._names
        key_of = self._keys()
        columns = self._columns
        time_of = self._time_of
        templates = self._templates(now_ms, flag)
        for ch in changes:
            key = key_of(ch.key)
            op = ch.op
            extra = (b',"changed":' + json_bytes(_changed(names, ch.before, ch.after))
                     if columns and op == "u" else b"")
            p = ch.partition
            value = templates[op] % (before_of(ch.before), after_of(ch.after), extra,
                                     ch.timestamp_ms if time_of is None else time_of(ch),
                                     p, ch.offset)
            append((p, key, value))
            if op == "d":
                append((p, key, None))
        return out


# ------------------------------------------------------------------------- Avro

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

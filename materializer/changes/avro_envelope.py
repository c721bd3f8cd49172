"""The `debezium-avro` change-event envelope: Avro key and value in the Confluent wire format,
schemas registered under `<topic>-key` and `<topic>-value` (see `schemas/change-envelope.avsc`)."""

from __future__ import annotations

import decimal
import re
from collections.abc import Callable, Sequence
from typing import Any

from materializer import __version__
from materializer.changes.avro_rows import record_writer, zigzag
from materializer.changes.envelope_base import (
    CONNECTOR,
    BatchRows,
    Message,
    SnapshotAware,
    _changed,
    _compact,
    batch_keys,
    event_time,
    snapshot_flag,
    source_db,
)
from materializer.changes.event import Change
from materializer.columns import ColumnType
from materializer.formats.wire import header
from materializer.protocols import SchemaRegistry
from materializer.specs import TableSpec
from materializer.stored import items_converter

_AVRO_NAME = re.compile(r"[^A-Za-z0-9_]")


def avro_name(name: str) -> str:
    """A valid Avro name for a column or namespace part (`[A-Za-z_][A-Za-z0-9_]*`)."""
    clean = _AVRO_NAME.sub("_", name) or "_"
    return "_" + clean if clean[0].isdigit() else clean


def avro_type(t: ColumnType) -> Any:
    """The Avro type of a column type (without the null union). A float column's is
    `double`: its values are stored as read, doubles (see `values`), and an Avro float
    would round them."""
    k = t.kind
    if k == "float":
        return "double"
    if k in ("int", "long", "double", "boolean", "string", "bytes"):
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


def decimal_bytes(scale: int) -> Callable[[str], Any]:
    """A stored decimal (text at `scale`) -> the bytes fastavro writes for it (its
    `prepare_bytes_decimal`: the unscaled integer, big-endian two's complement, in
    (bit length of its magnitude + 8) // 8 bytes), computed from the text without a
    Decimal; text in another shape (exponent notation) goes to fastavro as a Decimal."""
    def conv(v: str) -> Any:
        neg = v[:1] == "-"
        whole, _, frac = (v[1:] if neg else v).partition(".")
        digits = whole + frac
        if len(frac) != scale or not (digits.isascii() and digits.isdigit()):
            return decimal.Decimal(v)
        mag = int(digits)
        return (-mag if neg else mag).to_bytes((mag.bit_length() + 8) // 8, "big",
                                               signed=True)
    return conv


def _avro_value(t: ColumnType) -> Callable[[Any], Any] | None:
    """A converter from the stored form to what fastavro writes for `avro_type(t)`."""
    k = t.kind
    if k == "decimal":
        return decimal_bytes(t.scale)
    if k == "json":
        return _compact
    if k in ("array", "map"):
        return items_converter(t, _avro_value)
    return None  # date, time, timestamp are stored as the Avro logical types' numbers


def avro_namespace(spec: TableSpec) -> str:
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
    namespace = avro_namespace(spec)
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
    namespace = avro_namespace(spec)
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


SOURCE_FIELDS = ("version", "connector", "name", "ts_ms", "snapshot", "db", "table", "topic",
                 "partition", "offset")
"""The fields of the envelope's `source` record, in order (`envelope_schema`)."""


class _Tail:
    """The envelope's bytes after `before` and `after` (source, op, ts_ms, changed), as a
    template: the fields that are the same for every event of a table (`source.version`,
    `connector`, `name`, `db`, `table`, `topic`) are encoded once, by the same generated
    writers, and an event only writes its `source.ts_ms`, `partition` and `offset`."""

    __slots__ = ("head", "middle", "op_field", "write_changed")

    def __init__(self, schema: dict[str, Any], spec: TableSpec) -> None:
        source = schema["fields"][2]["type"]
        # the template is laid out for these fields: a new one must be placed in it
        assert tuple(f["name"] for f in source["fields"]) == SOURCE_FIELDS, source
        assert [f["name"] for f in schema["fields"][3:5]] == ["op", "ts_ms"], schema
        self.head = record_writer(["string"] * 3)((__version__, CONNECTOR, CONNECTOR))
        strings = record_writer(["string"] * 4)
        # source.snapshot, db, table, topic per snapshot flag
        self.middle = {f: strings((f, source_db(spec), spec.name, spec.topic))
                       for f in ("true", "false", "last")}
        self.op_field = record_writer(["string"])
        changed = schema["fields"][5:]
        self.write_changed = record_writer([changed[0]["type"]]) if changed else None

    def ends(self, now_ms: int) -> dict[str, bytes]:
        """Per op: `op`, `ts_ms` (`now_ms`, branch 1 of ["null", "long"]) and, with
        `changes: {columns: true}`, a null `changed` (a `u` event writes its own)."""
        ts = record_writer(["long"])((now_ms,))
        none = b"" if self.write_changed is None else b"\x00"
        return {op: self.op_field((op,)) + b"\x02" + ts + none for op in ("c", "u", "d", "r")}


class AvroEnvelope(SnapshotAware):
    """`format: debezium-avro`: the envelope in the Confluent wire format.

    An Avro record's bytes are its fields' bytes in order, so an event is written in
    parts: `before` and `after` (a union branch byte, then the row record, by writers
    generated for the table's schema: `avro_rows`) and the rest of the envelope (source,
    op, ts_ms, changed) from a template (`_Tail`). Rows are encoded once per batch
    (`BatchRows`); the bytes are those fastavro writes for the whole envelope
    (tests/changes/test_envelope_bytes.py)."""

    __slots__ = ("schema_id", "key_schema_id", "_write_row", "_tail",
                 "_prefix", "_keys", "_names", "_columns", "_time_of")

    def __init__(self, spec: TableSpec, layout: Sequence[str], registry: SchemaRegistry
                 ) -> None:
        assert spec.changes is not None
        schema = envelope_schema(spec, layout)
        kschema = key_schema(spec, layout)
        # the registry raises InfrastructureError (unreachable) or SchemaRejected (refused)
        self.schema_id = int(registry.register(f"{spec.changes.topic}-value", schema))
        self.key_schema_id = int(registry.register(f"{spec.changes.topic}-key", kschema))
        row_record = schema["fields"][0]["type"][1]
        self._write_row = record_writer(
            [f["type"] for f in row_record["fields"]],
            [_avro_value(spec.column(n).type) for n in layout])
        self._tail = _Tail(schema, spec)
        self._prefix = header(self.schema_id)
        self._keys = batch_keys(_avro_key_encoder(spec, kschema, self.key_schema_id), spec)
        self._names = tuple(layout)
        self._columns = spec.changes.columns
        self._time_of = event_time(spec, layout)

    def _row(self, t: tuple[Any, ...]) -> bytes:
        """A stored row as `before` / `after` bytes: branch 1 of ["null", Value], the row."""
        return b"\x02" + self._write_row(t)

    def _encode(self, changes: Sequence[Change], now_ms: int, flag: str) -> list[Message]:
        """`flag`, if not empty, is the `source.snapshot` of every change."""
        out: list[Message] = []
        append = out.append
        rows = BatchRows(self._row, b"\x00")  # branch 0 of ["null", Value]: no row
        before_of, after_of = rows.before, rows.after
        key_of = self._keys()
        prefix = self._prefix
        names = self._names
        tail = self._tail
        head, ends, write_changed = tail.head, tail.ends(now_ms), tail.write_changed
        middle = {op: tail.middle[flag or snapshot_flag(op)] for op in ends}
        columns = self._columns
        time_of = self._time_of
        # a batch's changes mostly share their partition and often their timestamp
        last_ts, ts_bytes, last_p, p_bytes = None, b"", None, b""
        join = b"".join
        for ch in changes:
            ts = ch.timestamp_ms if time_of is None else time_of(ch)
            if ts != last_ts:
                last_ts, ts_bytes = ts, zigzag(ts)
            p = ch.partition
            if p != last_p:
                last_p, p_bytes = p, zigzag(p)
            op = ch.op
            end = ends[op]
            if columns and op == "u":  # its own `changed` in place of the null one
                assert write_changed is not None
                end = end[:-1] + write_changed((_changed(names, ch.before, ch.after),))
            value = join((prefix, before_of(ch.before), after_of(ch.after), head, ts_bytes,
                          middle[op], p_bytes, zigzag(ch.offset), end))
            key = key_of(ch.key)
            append((p, key, value))
            if op == "d":
                append((p, key, None))
        return out


def _avro_key_encoder(spec: TableSpec, schema: dict[str, Any], schema_id: int
                      ) -> Callable[[tuple[Any, ...]], bytes]:
    """Stored-form key tuple -> the key record in the wire format (deterministic bytes)."""
    write = record_writer([f["type"] for f in schema["fields"]],
                          [_avro_value(t) for t in spec.key_types])
    prefix = header(schema_id)

    def encode(kt: tuple[Any, ...]) -> bytes:
        return prefix + write(kt)
    return encode

"""Kafka Connect schemas for `debezium-json` with `changes: {schemas: true}`.

Kafka Connect's JsonConverter (`schemas.enable=true`) writes every key and value as
`{"schema": <Connect schema>, "payload": <value>}`; a Connect sink configured that
way reads our events unchanged. Column types map to Connect types as Debezium's
connectors emit them (its default `time.precision.mode=adaptive`):

  int int32, long int64, float float32, double float64, boolean, string,
  bytes (payload: base64 text, as JsonConverter writes bytes)
  decimal(p,s)  bytes named org.apache.kafka.connect.data.Decimal, parameters
                scale (and connect.decimal.precision); payload: base64 of the
                big-endian two's-complement unscaled value
  date          int32 org.apache.kafka.connect.data.Date (days since 1970-01-01)
  time          int64 io.debezium.time.MicroTime (µs since midnight)
  timestamp     int64 io.debezium.time.MicroTimestamp (µs since the epoch, UTC)
  uuid          string io.debezium.data.Uuid
  json          string io.debezium.data.Json (the JSON text)
  array<T>, map<string,T>  Connect array / map of T (items and values optional)

Time and timestamp are microseconds, not Connect's own Time/Timestamp (int32 / int64
milliseconds), so an event carries the table's full precision, as the Avro envelope's
time-micros / timestamp-micros do; Debezium's sinks, Flink, Materialize and
RisingWave read these names, and a sink that knows only Connect's logical types
sees the plain int64.

A column is `optional` unless it is NOT NULL or part of the primary key. Struct
names follow the Avro envelope: `<namespace>.Envelope`, `.Value`, `.Key`,
`.Source` with namespace `materializer.<schema>.<table>`.
"""

from __future__ import annotations

import base64
import decimal
from collections.abc import Callable, Sequence
from typing import Any

from materializer.columns import ColumnType
from materializer.specs import TableSpec
from materializer.stored import items_converter

DECIMAL = "org.apache.kafka.connect.data.Decimal"
DATE = "org.apache.kafka.connect.data.Date"
MICRO_TIME = "io.debezium.time.MicroTime"
MICRO_TIMESTAMP = "io.debezium.time.MicroTimestamp"
UUID = "io.debezium.data.Uuid"
JSON = "io.debezium.data.Json"

# float: float64, as the value is stored (a double; float32 would round it)
_PLAIN = {"int": "int32", "long": "int64", "float": "float64", "double": "float64",
          "boolean": "boolean", "string": "string", "bytes": "bytes"}
_NAMED = {"date": ("int32", DATE), "time": ("int64", MICRO_TIME),
          "timestamp": ("int64", MICRO_TIMESTAMP), "uuid": ("string", UUID),
          "json": ("string", JSON)}


def connect_type(t: ColumnType, optional: bool) -> dict[str, Any]:
    """The Connect schema of a column type."""
    k = t.kind
    if k in _PLAIN:
        return {"type": _PLAIN[k], "optional": optional}
    if k in _NAMED:
        base, name = _NAMED[k]
        return {"type": base, "optional": optional, "name": name, "version": 1}
    if k == "decimal":
        return {"type": "bytes", "optional": optional, "name": DECIMAL, "version": 1,
                "parameters": {"scale": str(t.scale),
                               "connect.decimal.precision": str(t.precision)}}
    assert t.item is not None
    if k == "array":
        return {"type": "array", "optional": optional, "items": connect_type(t.item, True)}
    return {"type": "map", "optional": optional, "keys": {"type": "string", "optional": False},
            "values": connect_type(t.item, True)}


def _field(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"field": name, **schema}


def _unscaled_base64(scale: int) -> Callable[[Any], str]:
    """A stored decimal (text quantized to `scale`) -> base64 of its unscaled value."""
    def conv(v: Any) -> str:
        sign, digits, exp = decimal.Decimal(v).as_tuple()
        n = int("".join(map(str, digits)) or "0")
        shift = int(exp) + scale  # 0 for a stored value; exact integer arithmetic anyway
        n = n * 10**shift if shift >= 0 else n // 10**-shift
        if sign:
            n = -n
        size = (n if n >= 0 else ~n).bit_length() // 8 + 1
        return base64.b64encode(n.to_bytes(size, "big", signed=True)).decode("ascii")
    return conv


def _bytes_base64(v: Any) -> str:
    return base64.b64encode(v).decode("ascii")


def payload_converter(t: ColumnType, json_text: Callable[[Any], str]
                      ) -> Callable[[Any], Any] | None:
    """A converter from the stored form to the payload value of `connect_type(t)`, or
    None when the stored value is already it (`json_text` renders a json column)."""
    k = t.kind
    if k == "bytes":
        return _bytes_base64
    if k == "decimal":
        return _unscaled_base64(t.scale)
    if k == "json":
        return json_text
    if k in ("array", "map"):
        return items_converter(t, lambda it: payload_converter(it, json_text))
    return None  # numbers, strings, and date/time/timestamp: stored as the payload's ints


def key_schema(spec: TableSpec, namespace: str) -> dict[str, Any]:
    """The Connect schema of the event key: a struct of the primary key columns."""
    return {"type": "struct", "optional": False, "name": f"{namespace}.Key",
            "fields": [_field(n, connect_type(spec.column(n).type, False))
                       for n in spec.key_columns]}


SOURCE_FIELDS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("version", {"type": "string", "optional": False}),
    ("connector", {"type": "string", "optional": False}),
    ("name", {"type": "string", "optional": False}),
    ("ts_ms", {"type": "int64", "optional": False}),
    ("snapshot", {"type": "string", "optional": True, "name": "io.debezium.data.Enum",
                  "version": 1, "parameters": {"allowed": "true,last,false"},
                  "default": "false"}),
    ("db", {"type": "string", "optional": False}),
    ("table", {"type": "string", "optional": False}),
    ("topic", {"type": "string", "optional": False}),
    ("partition", {"type": "int32", "optional": False}),
    ("offset", {"type": "int64", "optional": False}),
)
"""The `source` struct, in the order the events write it (see `envelope`)."""


def envelope_schema(spec: TableSpec, layout: Sequence[str], namespace: str
                    ) -> dict[str, Any]:
    """The Connect schema of the event value: Debezium's envelope."""
    keys = set(spec.key_columns)
    row = {"type": "struct", "name": f"{namespace}.Value", "fields": [
        _field(n, connect_type(spec.column(n).type,
                               not (spec.column(n).not_null or n in keys)))
        for n in layout]}
    fields = [
        _field("before", {**row, "optional": True}),
        _field("after", {**row, "optional": True}),
        _field("source", {"type": "struct", "optional": False, "name": f"{namespace}.Source",
                          "fields": [_field(n, s) for n, s in SOURCE_FIELDS]}),
        _field("op", {"type": "string", "optional": False}),
        _field("ts_ms", {"type": "int64", "optional": True}),
    ]
    if spec.changes is not None and spec.changes.columns:
        fields.append(_field("changed", {"type": "array", "optional": True,
                                         "items": {"type": "string", "optional": False}}))
    return {"type": "struct", "optional": False, "name": f"{namespace}.Envelope",
            "fields": fields}

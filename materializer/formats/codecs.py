"""Decoder dispatch by declared format, and the scalar formats themselves.

`key_decoder(spec, registry)` and `value_decoder(spec, registry)` return decoders with
the interface of `materializer.formats.base`; JSON (`json`, `json_sr`) lives in
`materializer.formats.jsonformat`, Avro and Debezium in their own modules, imported
only when a relation uses them.

Every RecordError a decoder raises says which part of the record failed: its message
starts with `key: ` or `value: ` (`base.KEY`, `base.VALUE`).

Scalar formats: `int` (4-byte big-endian), `long` (8-byte big-endian), `string`
(UTF-8), `bytes` (as they are); and `kafka`, ksqlDB's KAFKA key format, which is
Kafka's own serializers chosen by the one key column's type: int -> IntegerSerializer
(4-byte big-endian), long -> LongSerializer (8-byte), double -> DoubleSerializer
(8-byte IEEE 754 big-endian), string -> StringSerializer (UTF-8), bytes ->
ByteArraySerializer (as they are). ksqlDB's KAFKA format has no other types (and
the catalog refuses them).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any

from materializer.errors import RecordError
from materializer.formats import jsonformat
from materializer.formats.base import KEY, VALUE, KeyDecoder, ValueDecoder, part_error
from materializer.protocols import SchemaRegistry
from materializer.specs import DEBEZIUM_VALUE_FORMATS, RelationSpec
from materializer.values import key_storage

KAFKA_KEY_KINDS = {"int": "int", "long": "long", "double": "double", "string": "string",
                   "bytes": "bytes"}
"""Column kind -> scalar format of ksqlDB's KAFKA key format (Kafka's serializers)."""
_unpack_double = struct.Struct(">d").unpack


def _scalar_decoder(fmt: str) -> Callable[[bytes], Any]:
    """Decoder of a one-value key or value in a primitive format."""
    if fmt in ("int", "long"):
        size = 4 if fmt == "int" else 8

        def dec_int(b: bytes) -> Any:
            if len(b) != size:
                raise RecordError(f"{fmt} format needs {size} bytes, got {len(b)}", "bad_length")
            return int.from_bytes(b, "big", signed=True)
        return dec_int
    if fmt == "double":
        def dec_double(b: bytes) -> Any:
            if len(b) != 8:
                raise RecordError(f"a double needs 8 bytes, got {len(b)}", "bad_length")
            return _unpack_double(b)[0]
        return dec_double
    if fmt == "string":
        def dec_str(b: bytes) -> Any:
            try:
                return b.decode("utf-8")
            except UnicodeDecodeError as e:
                raise RecordError(f"string is not UTF-8: {e}", "bad_utf8") from e
        return dec_str
    if fmt == "bytes":
        return bytes
    raise ValueError(f"no scalar decoder for format {fmt!r}")


def key_decoder(spec: RelationSpec, registry: SchemaRegistry | None = None) -> KeyDecoder:
    """Bytes of a Kafka key to the stored-form key tuple of `spec`."""
    names = spec.key_columns
    fmt = spec.key_format
    if fmt == "avro":
        from materializer.formats import avro  # noqa: PLC0415 - optional path

        return avro.key_decoder(spec, registry)
    if fmt in ("json", "json_sr"):
        return jsonformat.key_decoder(spec, framed=fmt == "json_sr")
    if len(names) != 1:
        raise ValueError(f"a composite key needs key_format json, json_sr or avro, not {fmt}")
    kind = spec.key_types[0].kind
    scalar: str = fmt
    if fmt == "kafka":
        if kind not in KAFKA_KEY_KINDS:
            raise ValueError(f"key_format kafka cannot read a {kind} key column")
        scalar = KAFKA_KEY_KINDS[kind]
    raw = _scalar_decoder(scalar)
    conv = key_storage(spec.key_types[0])
    name = names[0]

    def one(b: bytes) -> tuple[Any, ...]:
        try:
            v = raw(b)
        except RecordError as e:
            raise part_error(KEY, e) from e
        try:
            return (conv(v),)
        except (TypeError, ValueError, ArithmeticError) as e:
            raise RecordError(f"{KEY}key column {name!r}: {e}", "key_mismatch") from e
    return one


def value_decoder(spec: RelationSpec, registry: SchemaRegistry | None = None) -> ValueDecoder:
    """Bytes of a Kafka value to a field mapping (or `DELETE`)."""
    fmt = spec.value_format
    if fmt == "avro":
        from materializer.formats import avro  # noqa: PLC0415 - optional path

        return avro.value_decoder(spec, registry)
    if fmt in DEBEZIUM_VALUE_FORMATS:
        from materializer.formats import debezium  # noqa: PLC0415 - optional path

        if fmt == "debezium-json":
            return debezium.json_decoder(spec)
        return debezium.avro_decoder(spec, registry)
    if fmt in ("json", "json_sr"):
        return jsonformat.value_decoder(spec, framed=fmt == "json_sr")
    if fmt == "protobuf":
        from materializer.formats import protobuf  # noqa: PLC0415 - optional path

        return protobuf.value_decoder(spec, registry)
    value_columns = [c.name for c in spec.columns if c.name not in spec.key_columns]
    if len(value_columns) != 1:
        raise ValueError(f"value_format {fmt} needs exactly one non-key column")
    raw = _scalar_decoder(fmt)
    column = value_columns[0]

    def one(b: bytes) -> Mapping[str, Any]:
        try:
            return {column: raw(b)}
        except RecordError as e:
            raise part_error(VALUE, e) from e
    return one

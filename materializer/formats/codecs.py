"""Decoder dispatch by declared format, and the JSON and scalar formats themselves.

`key_decoder(spec, registry)` and `value_decoder(spec, registry)` return decoders with
the interface of `materializer.formats.base`; Avro and Debezium live in their own
modules and are imported only when a relation uses them. JSON is read by
`materializer.formats.jsonread` (RecordError malformed_json, too_deep, bad_unicode).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from materializer.errors import RecordError
from materializer.formats import jsonformat
from materializer.formats.base import KeyDecoder, ValueDecoder
from materializer.protocols import SchemaRegistry
from materializer.specs import RelationSpec
from materializer.values import to_storage


def _scalar_decoder(fmt: str) -> Callable[[bytes], Any]:
    """Decoder of a one-value key or value in a primitive format."""
    if fmt in ("int", "long"):
        size = 4 if fmt == "int" else 8

        def dec_int(b: bytes) -> Any:
            if len(b) != size:
                raise RecordError(f"{fmt} format needs {size} bytes, got {len(b)}", "bad_length")
            return int.from_bytes(b, "big", signed=True)
        return dec_int
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
    convs = tuple(to_storage(t) for t in spec.key_types)
    fmt = spec.key_format
    if fmt == "avro":
        from materializer.formats import avro  # noqa: PLC0415 - optional path

        return avro.key_decoder(spec, registry)
    if fmt == "json":
        return jsonformat.key_decoder(spec)
    if len(names) != 1:
        raise ValueError(f"a composite key needs key_format json or avro, not {fmt}")
    raw = _scalar_decoder(fmt)
    conv = convs[0]
    name = names[0]

    def one(b: bytes) -> tuple[Any, ...]:
        v = raw(b)
        try:
            return (conv(v),)
        except (TypeError, ValueError, ArithmeticError) as e:
            raise RecordError(f"key column {name!r}: {e}", "key_mismatch") from e
    return one


def value_decoder(spec: RelationSpec, registry: SchemaRegistry | None = None) -> ValueDecoder:
    """Bytes of a Kafka value to a field mapping (or `DELETE`)."""
    fmt = spec.value_format
    if fmt == "avro":
        from materializer.formats import avro  # noqa: PLC0415 - optional path

        return avro.value_decoder(spec, registry)
    if fmt in ("debezium-avro", "debezium-json"):
        from materializer.formats import debezium  # noqa: PLC0415 - optional path

        if fmt == "debezium-json":
            return debezium.json_decoder(spec)
        return debezium.avro_decoder(spec, registry)
    if fmt == "json":
        return jsonformat.value_decoder(spec)
    value_columns = [c.name for c in spec.columns if c.name not in spec.key_columns]
    if len(value_columns) != 1:
        raise ValueError(f"value_format {fmt} needs exactly one non-key column")
    raw = _scalar_decoder(fmt)
    column = value_columns[0]
    return lambda b: {column: raw(b)}

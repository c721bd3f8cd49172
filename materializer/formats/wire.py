"""The Confluent wire format: magic byte 0, a 4-byte big-endian schema id, the body.

The one owner of that header: decoders read it with `read_header`, the change-event
encoders (and tests) write it with `wire_encode` / `avro_encoder`.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from typing import Any

from fastavro import schemaless_writer

from materializer.errors import RecordError
from materializer.protocols import SchemaRegistry

MAGIC = 0
HEADER_SIZE = 5
_schema_id = struct.Struct(">I").unpack_from


def header(schema_id: int) -> bytes:
    """The 5-byte header naming `schema_id`."""
    return b"\x00" + schema_id.to_bytes(4, "big")


def read_header(b: bytes) -> int:
    """The schema id of a wire-format message; RecordError(truncated | bad_magic)."""
    n = len(b)
    if n == 0:
        raise RecordError("empty message: no wire-format header", "truncated")
    if b[0] != MAGIC:
        hint = " (it looks like JSON)" if b[0] in b"{[" else ""
        raise RecordError(f"first byte is 0x{b[0]:02x}, not the Confluent wire-format "
                          f"magic byte 0{hint}", "bad_magic")
    if n < HEADER_SIZE:
        raise RecordError(f"{n} bytes: shorter than the 5-byte wire-format header",
                          "truncated")
    sid: int = _schema_id(b, 1)[0]  # int.from_bytes(b[1:5], "big"), without the slice
    return sid


def wire_encode(schema_id: int, schema: Any, datum: Any) -> bytes:
    """One datum in Confluent wire format (magic 0, big-endian id, Avro body)."""
    out = io.BytesIO()
    out.write(header(schema_id))
    schemaless_writer(out, schema, datum)
    return out.getvalue()


def avro_encoder(registry: SchemaRegistry, subject: str, schema: Any) -> Callable[[Any], bytes]:
    """Register `schema` under `subject` once and return datum -> wire-format bytes."""
    schema_id = registry.register(subject, schema)
    parsed = registry.schema(schema_id)

    def encode(datum: Any) -> bytes:
        return wire_encode(schema_id, parsed, datum)
    return encode

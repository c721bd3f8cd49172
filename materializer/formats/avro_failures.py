"""Why an Avro body was refused: the RecordError (and its reason) of a body that ends early
(truncated), of bytes no writer writes (avro_decode), and of a value its logical type's
converter refuses (type_mismatch); for fastavro's reader, which fails alike on all three,
`fallback_failure` tells them apart on the record's error path only."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from materializer.errors import RecordError
from materializer.formats.avro_compiled import NotTimeOfDay
from materializer.formats.avro_schema import without_logical_types
from materializer.formats.wire import HEADER_SIZE


def ends_early(sid: int) -> RecordError:
    return RecordError(f"Avro body (schema {sid}) ends early", "truncated")


def not_time_of_day(e: NotTimeOfDay) -> RecordError:
    """As a JSON integer that is no time of day is refused (type_mismatch)."""
    return RecordError(str(e), "type_mismatch")


class ShortReads(io.BytesIO):
    """Bytes that note a read that came back short (fastavro's readers read through
    `read`): on a record's error path only, to tell a body that ends early from one whose
    last value does not convert, both of which fail with every byte read."""

    short = False

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        if size is not None and size >= 0 and len(data) < size:
            self.short = True
        return data


def fallback_failure(sid: int, b: bytes, reader: Callable[..., Any], schema: Any,
                      plain: dict[int, Any], e: Exception) -> RecordError:
    """The rejection of a body fastavro's reader failed on with `e` (where no reader is
    generated): read again without logical types (`without_logical_types`), the bytes
    noting a short read. Read so, the body is whole: a logical type's converter refused
    its value (type_mismatch, as the generated reader reports it: a date past 9999, a
    uuid string that is no uuid); a read came back short: the body ends early
    (truncated); else it is bytes no writer writes (avro_decode: an enum index out of
    range, bytes that are not UTF-8). Before, any failure with every byte read counted as
    `truncated`, so a converter failing on the last field was reported as a body that
    ends early."""
    if sid not in plain:
        plain[sid] = without_logical_types(schema)
    bio = ShortReads(b)
    bio.seek(HEADER_SIZE)
    try:
        reader(bio, plain[sid], None)
    except Exception:  # noqa: BLE001 - the same bytes, as the first read saw them
        return ends_early(sid) if bio.short else undecodable(sid, e)
    return unconvertible(sid, e)


def unconvertible(sid: int, e: Exception) -> RecordError:
    """A value its Avro logical type's converter refuses (type_mismatch, as a time outside
    years 1-9999 is from any format)."""
    return RecordError(f"an Avro logical value (schema {sid}) does not convert: "
                       f"{type(e).__name__}: {e}", "type_mismatch")


def undecodable(sid: int, e: Exception) -> RecordError:
    return RecordError(f"Avro body does not decode with schema {sid}: {type(e).__name__}: "
                       f"{e}", "avro_decode")

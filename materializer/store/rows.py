"""Stored rows and stream events: the one owner of their byte formats.

A row is a marshalled tuple in the relation's layout order (stored form values, see
`materializer.values`). Rows written before a nullable column was added are shorter
than the layout: every reader pads them with None (`decode_row`, `RowLayout`).
A stream event's value is an 8-byte big-endian timestamp (ms) followed by the row,
or nothing for a null value.
"""

from __future__ import annotations

import marshal
import struct
from collections.abc import Sequence
from typing import Any

from materializer.columns import ColumnType
from materializer.values import Converter, from_storage, to_json_value

_dumps = marshal.dumps
_loads = marshal.loads
_TS = struct.Struct(">q")


def encode_row(row: tuple[Any, ...]) -> bytes:
    """The stored bytes of a row tuple (layout order, stored form values)."""
    return _dumps(row)


def decode_row(raw: bytes, width: int) -> tuple[Any, ...]:
    """A stored row as a tuple of `width` values (short rows padded with None)."""
    t: tuple[Any, ...] = _loads(raw)
    if len(t) < width:
        t = t + (None,) * (width - len(t))
    return t


def encode_event(timestamp_ms: int, row: tuple[Any, ...] | None) -> bytes:
    """A stream event's stored value: timestamp + row (nothing for a null value)."""
    return _TS.pack(timestamp_ms) + (b"" if row is None else _dumps(row))


def split_event(raw: bytes) -> tuple[int, bytes]:
    """(timestamp ms, stored row bytes or b"" for a null value) of a stream event."""
    return _TS.unpack_from(raw)[0], bytes(raw[8:])


class RowLayout:
    """Turns stored row tuples into dicts (Python form or JSON form) and back.

    `layout` is the column order of stored tuples; tuples written before a nullable
    column was added are shorter and read as null in the new column.
    """

    __slots__ = ("names", "types", "_py", "_js", "_width")

    def __init__(self, names: Sequence[str], types: Sequence[ColumnType]) -> None:
        self.names = tuple(names)
        self.types = tuple(types)
        self._width = len(self.names)
        pairs = tuple(enumerate(zip(self.names, self.types, strict=True)))
        self._py = tuple((i, n, c) for i, (n, t) in pairs if (c := from_storage(t)) is not None)
        self._js = tuple((i, n, c) for i, (n, t) in pairs if (c := to_json_value(t)) is not None)

    def _dict(self, raw: bytes, convs: tuple[tuple[int, str, Converter], ...]) -> dict[str, Any]:
        t: tuple[Any, ...] = _loads(raw)  # decode_row inlined: this runs once per row read
        if len(t) < self._width:
            t = t + (None,) * (self._width - len(t))
        # no strict=: on 3.11 a keyword makes zip() ~150 ns slower, per row here
        row = dict(zip(self.names, t))  # noqa: B905 - t is padded to the layout width
        for i, name, conv in convs:
            v = t[i]
            if v is not None:
                row[name] = conv(v)
        return row

    def to_python(self, raw: bytes) -> dict[str, Any]:
        return self._dict(raw, self._py)

    def to_json(self, raw: bytes) -> dict[str, Any]:
        return self._dict(raw, self._js)

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
from collections.abc import Callable, Sequence
from typing import Any

from materializer.columns import ColumnType
from materializer.stored import Converter, from_storage, to_json_value

_loads = marshal.loads
_TS = struct.Struct(">q")


encode_row: Callable[[tuple[Any, ...]], bytes] = marshal.dumps
"""The stored bytes of a row tuple (layout order, stored form values): marshal's, called
directly (no Python frame per row)."""


def decode_row(raw: bytes, width: int) -> tuple[Any, ...]:
    """A stored row as a tuple of `width` values (short rows padded with None)."""
    t: tuple[Any, ...] = _loads(raw)
    if len(t) < width:
        t = t + (None,) * (width - len(t))
    return t


def encode_event(timestamp_ms: int, row: tuple[Any, ...] | None) -> bytes:
    """A stream event's stored value: timestamp + row (nothing for a null value)."""
    return _TS.pack(timestamp_ms) + (b"" if row is None else encode_row(row))


def split_event(raw: bytes) -> tuple[int, bytes]:
    """(timestamp ms, stored row bytes or b"" for a null value) of a stream event."""
    return _TS.unpack_from(raw)[0], bytes(raw[8:])


class RowLayout:
    """Turns stored row tuples into dicts (Python form or JSON form) and back.

    `layout` is the column order of stored tuples; tuples written before a nullable
    column was added are shorter and read as null in the new column.

    Each form's decoder is one function generated for the layout (unpack the tuple,
    build the dict in one display, convert the columns that need it): about twice
    as fast as `dict(zip(...))` plus a loop, and it runs once per row read.
    """

    __slots__ = ("names", "types", "_width", "to_python", "to_json")

    def __init__(self, names: Sequence[str], types: Sequence[ColumnType]) -> None:
        self.names = tuple(names)
        self.types = tuple(types)
        self._width = len(self.names)
        self.to_python: Callable[[bytes], dict[str, Any]] = _row_decoder(
            self.names, [from_storage(t) for t in self.types])
        self.to_json: Callable[[bytes], dict[str, Any]] = _row_decoder(
            self.names, [to_json_value(t) for t in self.types])


def _row_decoder(names: Sequence[str], convs: Sequence[Converter | None]
                 ) -> Callable[[bytes], dict[str, Any]]:
    """`raw -> {name: value}` for one layout, generated as Python source. Names and
    converters are closure values (`n<i>`, `c<i>`), never spliced into the text."""
    width = len(names)
    if width == 0:
        return lambda raw: {}
    values = ", ".join(f"v{i}" for i in range(width))
    items = ", ".join(f"n{i}: v{i}" if c is None else f"n{i}: None if v{i} is None else c{i}(v{i})"
                      for i, c in enumerate(convs))
    params = ", ".join([f"n{i}" for i in range(width)]
                       + [f"c{i}" for i, c in enumerate(convs) if c is not None])
    src = (f"def make(loads, pad, {params}):\n"
           f"    def decode(raw):\n"
           f"        t = loads(raw)\n"
           f"        if len(t) != {width}:\n"
           f"            t = (t + pad)[:{width}]\n"
           f"        {values}, = t\n"
           f"        return {{{items}}}\n"
           f"    return decode\n")
    scope: dict[str, Any] = {}
    exec(compile(src, f"<row decoder of {width} columns>", "exec"), scope)  # noqa: S102
    args = list(names) + [c for c in convs if c is not None]
    decode: Callable[[bytes], dict[str, Any]] = scope["make"](_loads, (None,) * width, *args)
    return decode

"""Stored rows: marshalled tuples in the relation's layout order, and their dict forms."""

from __future__ import annotations

import marshal
from collections.abc import Sequence
from typing import Any

from materializer.columns import ColumnType
from materializer.values import Converter, from_storage, to_json_value

# ----------------------------------------------------------------------------- rows


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

    def _tuple(self, raw: bytes) -> tuple[Any, ...]:
        t: tuple[Any, ...] = marshal.loads(raw)
        if len(t) < self._width:
            t = t + (None,) * (self._width - len(t))
        return t

    def _dict(self, raw: bytes, convs: tuple[tuple[int, str, Converter], ...]) -> dict[str, Any]:
        t: tuple[Any, ...] = marshal.loads(raw)  # _tuple inlined: this runs once per row read
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

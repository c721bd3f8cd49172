"""The decoder interface every format implements.

- A `KeyDecoder` turns Kafka key bytes into the key tuple in *stored form* (see
  `materializer.values`), in key-column order; a missing or null key column is None.
- A `ValueDecoder` turns value bytes into a mapping of field name to decoded value
  (not yet converted to stored form: the applier's row shaper does that), or the
  `DELETE` sentinel when the value itself says "delete" (Debezium `op: d`).
Both raise `RecordError` (and only that) for bytes they cannot decode; a registry
that cannot be reached raises `InfrastructureError` (the record is fine).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


class _Delete:
    __slots__ = ()

    def __repr__(self) -> str:
        return "DELETE"


DELETE: Any = _Delete()
"""A decoded value that means "delete this key" (differs from an absent value)."""

KeyDecoder = Callable[[bytes], tuple[Any, ...]]
ValueDecoder = Callable[[bytes], Mapping[str, Any]]

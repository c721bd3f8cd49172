"""The decoder interface every format implements.

- A `KeyDecoder` turns Kafka key bytes into the key tuple in *stored form* (see
  `materializer.values`), in key-column order; a missing or null key column is None.
- A `ValueDecoder` turns value bytes into a mapping of field name to decoded value
  (not yet converted to stored form: the applier's row shaper does that), or the
  `DELETE` sentinel when the value itself says "delete" (Debezium `op: d`).
Both raise `RecordError` (and only that) for bytes they cannot decode, its message
starting with `key: ` or `value: ` (KEY, VALUE: see `part_error`); a registry that
cannot be reached raises `InfrastructureError` (the record is fine).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from materializer.errors import RecordError


class _Delete:
    __slots__ = ()

    def __repr__(self) -> str:
        return "DELETE"


DELETE: Any = _Delete()
"""A decoded value that means "delete this key" (differs from an absent value)."""

KeyDecoder = Callable[[bytes], tuple[Any, ...]]
ValueDecoder = Callable[[bytes], Mapping[str, Any]]

class TypedValueDecoder:
    """A `ValueDecoder` that can also tell, per record, which columns' values arrive
    already in stored form (the writer's schema guarantees it: an Avro string for a
    string column, ...), so the row shaper need not test them: `typed(bytes)` gives
    (fields or DELETE, those column names), the same frozenset object for records of
    one schema. Calling it gives the fields alone."""

    __slots__ = ("typed",)

    def __init__(self, typed: Callable[[bytes], tuple[Any, frozenset[str]]]) -> None:
        self.typed = typed

    def __call__(self, b: bytes) -> Mapping[str, Any]:
        fields: Mapping[str, Any] = self.typed(b)[0]
        return fields


KEY = "key: "
VALUE = "value: "
"""How a decoder's RecordError message starts: which part of the record failed."""


def part_error(part: str, e: RecordError) -> RecordError:
    """A RecordError like `e` whose message starts with `part` (KEY or VALUE), for a
    decoder to raise `from e`; a message that already names its part keeps it."""
    message = str(e)
    return RecordError(message if message.startswith((KEY, VALUE)) else part + message,
                       e.reason)


def extra_key_fields(extra: list[str], key_columns: tuple[str, ...]) -> RecordError:
    """The rejection of a table's key (object or record) that has fields other than the
    key columns: keys differing only there would share one row, each overwriting the
    other's, where the topic holds both."""
    shown = ", ".join(repr(f) for f in extra[:5]) + (", ..." if len(extra) > 5 else "")
    return RecordError(
        f"{KEY}the key has field(s) {shown} that are not primary key columns "
        f"({', '.join(key_columns)}): keys that differ there would share one row; declare "
        "every field of the topic's keys in the primary key", "key_mismatch")


def key_schema_beyond(fields: Iterable[str], matched: Mapping[str, str],
                      key_columns: tuple[str, ...]) -> RecordError | None:
    """For a table's key schema (an Avro record, a Connect struct) whose `fields` feed the
    key columns as `matched` (column -> field) says: the rejection of every key it writes
    if it has any other field (`extra_key_fields`), else None."""
    used = set(matched.values())
    extra = [f for f in fields if f not in used]
    return extra_key_fields(extra, key_columns) if extra else None

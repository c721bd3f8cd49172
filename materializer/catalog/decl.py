"""Declarations in a neutral form: every setting with the place it was written.

Both front ends, the YAML reader (`materializer.catalog`) and the DDL parser
(`materializer.ddl`), produce `RelationDecl` objects; `materializer.validate`
checks them against SPEC §3 and builds the specs, so a declaration means the
same thing whichever way it was written. Also here: the naming rules and the
messages both front ends share (KLIP-23, misplaced and unknown keys).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from materializer.columns import ColumnType
from materializer.errors import Diagnostic
from materializer.specs import (
    Location,
)

T = TypeVar("T")
Locate = Callable[[int], Location]

COMMON_FIELDS = ("name", "topic", "columns", "key_format", "value_format", "on_error",
                 "dead_letter_topic", "on_reset", "partitions", "replicas", "timestamp_column",
                 "partitioner", "standby_replicas", "unavailable_value_placeholder")
TABLE_FIELDS = (*COMMON_FIELDS, "primary_key", "soft_primary_key", "on_existing",
                "version_column", "partial_update", "shard_key", "replicated", "null_key",
                "changes")
STREAM_FIELDS = (*COMMON_FIELDS, "key", "retention")
CHANGES_FIELDS = ("topic", "format", "columns", "schemas")
RETENTION_FIELDS = ("max_events_per_key",)

RELATION_NAME_RULE = ("a table or stream name is 1-200 characters, starts with a letter, digit "
                      "or `_`, and uses letters, digits, spaces and `_ # { } [ ] ( ) : -` "
                      "(ASCII letters and digits)")
COLUMN_NAME_RULE = ("a column name is 1-200 characters, starts with a letter, digit or `_`, "
                    "and uses letters, digits and `_ { } [ ] : .` (ASCII letters and digits)")
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_"
_RELATION_CHARS = frozenset(_ALNUM + " #{}[]():-")
_COLUMN_CHARS = frozenset(_ALNUM + "{}[]:.")

KLIP23_TAIL = ("Tables have PRIMARY KEYs, which are unique and NON NULL.\n"
               "Streams have KEYs, which have no uniqueness or NON NULL constraints.")
_PASS_STRINGS = ("name", "topic", "key_format", "value_format", "on_existing",
                 "version_column", "null_key", "on_error", "dead_letter_topic", "on_reset",
                 "timestamp_column", "partitioner", "unavailable_value_placeholder")


@dataclass(frozen=True, slots=True)
class At(Generic[T]):
    """A value and where it is written; `sub(i)` locates its i-th character, if known."""

    value: T
    loc: Location
    sub: Locate | None = field(default=None, compare=False)

    def at(self, offset: int) -> Location:
        """Where character `offset` of the value is (the value's start if not known)."""
        return self.sub(offset) if self.sub is not None else self.loc


@dataclass(frozen=True, slots=True)
class Field:
    """One setting of a declaration: its value (`value.value`) and where its key is."""

    value: At[Any]
    key_loc: Location


@dataclass(frozen=True, slots=True)
class ColumnDecl:
    """A declared column; the front end has already parsed its type. `encoding` is how
    input values are read (`materializer.columns.ENCODINGS`), checked by the rules."""

    name: At[str]
    type: ColumnType
    not_null: bool
    encoding: At[str] | None = None


@dataclass(frozen=True, slots=True)
class ChangesDecl:
    """`changes: {topic, format, columns, schemas}` as written."""

    topic: At[str] | None
    format: At[str] | None
    columns: bool = False
    schemas: At[bool] | None = None


@dataclass(slots=True)
class RelationDecl:
    """A TABLE or STREAM as written, before the rules are checked.

    `fields` maps the YAML field name to its setting. Value types by field:
    strings for name, topic, formats and policies; `tuple[At[str], ...]` for
    primary_key, soft_primary_key, key, shard_key and partial_update;
    `tuple[ColumnDecl, ...]` for columns; bool for replicated; `ChangesDecl` for
    changes; int (max_events_per_key) for retention. The front end checks these
    shapes; `build_relations` checks the meaning.
    """

    kind: str  # "table" | "stream"
    loc: Location
    fields: dict[str, Field] = field(default_factory=dict)
    syntax: str = "yaml"  # "yaml" | "sql": how fixes are spelled in messages


@dataclass(slots=True)
class Context:
    """What the rules need from the rest of the file, and where problems go."""

    default_schema: str = "public"
    has_registry: bool = False
    standby_replicas: int = 0  # the top-level `standby_replicas` (relations may override it)
    registry_is_files: bool = False  # `schema_registry.path`: Avro only (no Protobuf)
    group: str = "materializer"  # the consumer group (its `<group>.members` topic is taken)
    diags: list[Diagnostic] = field(default_factory=list)

    def error(self, loc: Location, message: str) -> None:
        """Record one problem at `loc`."""
        self.diags.append(Diagnostic(loc.file, loc.line, loc.column, message))


# ----------------------------------------------------------------------------- names


def name_problem(name: str, column: bool) -> tuple[int, str] | None:
    """(offset, message) of the first thing wrong with a name, or None if it is valid."""
    rule = COLUMN_NAME_RULE if column else RELATION_NAME_RULE
    allowed = _COLUMN_CHARS if column else _RELATION_CHARS
    what = "column name" if column else "name"
    if not name:
        return 0, f"empty {what}: {rule}"
    if len(name) > 200:
        return 200, f"{what} `{name[:20]}...` is {len(name)} characters long: {rule}"
    if name[0] not in _ALNUM:
        return 0, f"{what} `{name}` starts with `{name[0]}`: {rule}"
    for i, ch in enumerate(name):
        if ch not in allowed:
            return i, f"{what} `{name}` contains `{ch}`: {rule}"
    if name.endswith(" "):  # `users ` would be another table than `users`, looking the same
        end = len(name.rstrip(" "))
        return end, (f"{what} `{name}` ends with a blank: it would be another name than "
                     f"`{name[:end]}`, looking the same; remove the blank")
    return None


_TOPIC_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
TOPIC_RULE = ("a Kafka topic name is 1-249 characters of ASCII letters, digits, `.`, `_` "
              "and `-`, and not `.` or `..`")


def topic_problem(topic: str) -> tuple[int, str] | None:
    """(offset, message) of what Kafka would refuse in a topic name (only once a worker
    asks the broker, far from the file), or None if it is valid."""
    if "${" in topic:  # a reference left unsubstituted: its own error was reported
        return None
    if topic in ("", ".", ".."):
        return 0, f"topic `{topic}` is not a valid name: {TOPIC_RULE}"
    if len(topic) > 249:
        return 249, f"topic `{topic[:20]}...` is {len(topic)} characters long: {TOPIC_RULE}"
    for i, ch in enumerate(topic):
        if ch not in _TOPIC_CHARS:
            return i, f"topic `{topic}` contains {ch!r}: {TOPIC_RULE}"
    return None


def klip23_message(kind: str, written: str, wanted: str,
                   columns: tuple[str, ...] = ()) -> str:
    """The KLIP-23 message: a table declared with KEY, or a stream with PRIMARY KEY.

    With `columns` (the DDL form) the message names them, as KLIP-23's example does:
    "Column `VIN` is a `KEY` column: please use `PRIMARY KEY` for tables."; without
    them (the YAML form) it names the setting: "`key` declares KEY columns: ...".
    """
    use = f"please use `{wanted}` for {'tables' if kind == 'table' else 'streams'}."
    if len(columns) == 1:
        head = f"Column `{columns[0]}` is a `{written}` column: {use}"
    elif columns:
        names = ", ".join(f"`{c}`" for c in columns)
        head = f"Columns {names} are `{written}` columns: {use}"
    else:
        declares = "KEY" if kind == "table" else "PRIMARY KEY"
        head = f"`{written}` declares {declares} columns: {use}"
    return f"{head}\n{KLIP23_TAIL}"


def misplaced_message(kind: str, key: str) -> str:
    """Why a setting that belongs to the other kind of relation is not accepted here."""
    if kind == "table" and key == "key":
        return klip23_message("table", "key", "primary_key")
    if kind == "stream" and key in ("primary_key", "soft_primary_key"):
        return klip23_message("stream", key, "key")
    if kind == "table":
        return (f"`{key}` applies to streams only: a table keeps one row per primary key; "
                f"remove `{key}`")
    if key == "null_key":
        return ("`null_key` applies to tables only: a stream keeps records with a null key; "
                "remove `null_key`")
    return (f"`{key}` applies to tables only: a stream keeps every event; remove `{key}`, "
            "or declare a table with `primary_key`")


def suggest(word: str, valid: tuple[str, ...] | list[str]) -> str:
    """` Did you mean `x`?` for the closest valid word, or an empty string."""
    import difflib  # noqa: PLC0415 - only on the error path

    close = difflib.get_close_matches(word, list(valid), n=1, cutoff=0.6)
    return f" Did you mean `{close[0]}`?" if close else ""


def unknown_key_message(key: str, where: str, valid: tuple[str, ...] | list[str]) -> str:
    """An unknown key, the closest valid one, and the full list."""
    return (f"unknown key `{key}` in {where}.{suggest(key, valid)} Valid keys: "
            f"{', '.join(valid)}")


def is_pass_string(key: str) -> bool:
    """Whether a relation field holds a plain string value."""
    return key in _PASS_STRINGS

"""The DDL's words: tokens, type names and WITH properties (what `ddl.py` parses)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from materializer.catalog.decl import At, Locate
from materializer.specs import Location

_TOKEN = re.compile(r"""
    (?P<ws>\s+|--[^\n]*|/\*.*?\*/)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<qident>`(?:[^`]|``)*`)
  | (?P<string>'(?:[^']|'')*')
  | (?P<number>-?[0-9]+(?:\.[0-9]+)?)
  | (?P<punct>[(),;<>=.])
""", re.VERBOSE | re.DOTALL)

SIMPLE_TYPES = {
    "int": "int", "integer": "int", "bigint": "long", "long": "long", "double": "double",
    "float": "float", "varchar": "string", "string": "string", "boolean": "boolean",
    "bytes": "bytes", "date": "date", "time": "time", "timestamp": "timestamp",
    "uuid": "uuid", "json": "json",
}
TYPE_NAMES = ("INT", "INTEGER", "BIGINT", "LONG", "DOUBLE", "FLOAT", "VARCHAR", "STRING",
              "BOOLEAN", "DECIMAL(p, s)", "BYTES", "DATE", "TIME", "TIMESTAMP", "UUID", "JSON",
              "ARRAY<T>", "MAP<STRING, T>")
# WITH property -> (YAML field, how its value is read)
PROPERTIES = {
    "kafka_topic": ("topic", "text"), "key_format": ("key_format", "lower"),
    "value_format": ("value_format", "lower"), "format": ("format", "lower"),
    "on_existing": ("on_existing", "lower"), "version_column": ("version_column", "text"),
    "null_key": ("null_key", "lower"), "on_error": ("on_error", "lower"),
    "on_reset": ("on_reset", "lower"),
    "dead_letter_topic": ("dead_letter_topic", "text"), "shard_key": ("shard_key", "names"),
    "partial_update": ("partial_update", "names"), "replicated": ("replicated", "bool"),
    "soft_primary_key": ("soft_primary_key", "bool"), "changes_topic": ("changes", "text"),
    "changes_format": ("changes", "lower"), "changes_columns": ("changes", "bool"),
    "changes_schemas": ("changes", "bool"),
    "max_events_per_key": ("retention", "int"),
    "partitions": ("partitions", "int"), "replicas": ("replicas", "int"),
    "timestamp": ("timestamp_column", "text"),
    "partitioner": ("partitioner", "lower"), "standby_replicas": ("standby_replicas", "int"),
    "unavailable_value_placeholder": ("unavailable_value_placeholder", "text"),
}
TABLE_PROPERTIES = tuple(p for p in PROPERTIES if p != "max_events_per_key")
STREAM_PROPERTIES = ("kafka_topic", "key_format", "value_format", "format", "on_error",
                     "dead_letter_topic", "max_events_per_key", "partitions", "replicas",
                     "timestamp", "partitioner", "standby_replicas",
                     "unavailable_value_placeholder")


@dataclass(frozen=True, slots=True)
class Token:
    """One lexical token; `start` is its offset in the sql text."""

    kind: str  # ident | qident | string | number | punct | eof
    text: str
    start: int

    @property
    def word(self) -> str:
        """The token as a keyword (lower case), or '' if it is not a bare word."""
        return self.text.lower() if self.kind == "ident" else ""


class DdlSyntaxError(Exception):
    """A statement that does not parse; `offset` is where in the sql text."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


_UNQUOTED_RUN = re.compile(r"[^\s,;()'`]*")


def _quote_hint(sql: str, pos: int, before: list[Token]) -> str:
    """For a character glued to the word before it (`ENCODING base64-url-safe`): how to
    write the whole run, as text or as a name. '' otherwise."""
    last = before[-1] if before else None
    if last is None or last.kind not in ("ident", "number") or \
            last.start + len(last.text) != pos:
        return ""
    glued = _UNQUOTED_RUN.match(sql, pos)
    run = sql[last.start:glued.end() if glued else pos + 1]
    return (f" in `{run}`: write text in single quotes ('{run}') or a name in backquotes "
            f"(`{run}`)")


def tokenize(sql: str) -> list[Token]:
    """The tokens of `sql`, comments and whitespace dropped, ending with an `eof` token."""
    out: list[Token] = []
    pos = 0
    while pos < len(sql):
        m = _TOKEN.match(sql, pos)
        if m is None:
            ch = sql[pos]
            if ch in "'`":
                raise DdlSyntaxError(f"this {ch} is never closed: end the "
                                     f"{'string' if ch == chr(39) else 'name'} with {ch}", pos)
            if ch == '"':
                raise DdlSyntaxError('unexpected character `"`: quote a name with backquotes '
                                     "(`Users`), text with single quotes ('text')", pos)
            raise DdlSyntaxError(f"unexpected character `{ch}`{_quote_hint(sql, pos, out)}", pos)
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append(Token(kind, m.group(), pos))
        pos = m.end()
    out.append(Token("eof", "", len(sql)))
    return out


class TokenStream(Protocol):
    """What a clause reader asks of the statement parser (`ddl.Parser` fits)."""

    @property
    def tok(self) -> Token: ...
    def advance(self) -> Token: ...
    def fail(self, message: str, tok: Token | None = None) -> DdlSyntaxError: ...
    def keyword(self, *words: str) -> Token: ...
    def punct(self, ch: str) -> Token: ...
    def accept_punct(self, ch: str) -> bool: ...
    def loc(self, tok: Token | int) -> Location: ...
    def sub(self, start: int) -> Locate: ...
    def ident(self, what: str) -> At[str]: ...

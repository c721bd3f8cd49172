"""From URL text to store arguments: relation names, typed keys, prefixes and page cursors.

Everything a client sends is checked here before it reaches LMDB:
- a relation name must look like a SPEC §3 name (`[schema.]name`, at most 401
  characters, no `/`) and exist in the data directory, else `NotFound`;
- path segments and prefix values become key components by the key column types,
  by the same rule as the command line (`materializer.keytext.text_converter`:
  int/long: decimal integers; float/double: decimal numbers a double holds exactly,
  or its shortest text; decimal: plain ASCII decimal text; boolean: `true`/`false`;
  string, uuid, date, time, timestamp: the text as it is, checked by the store's own
  key converters; bytes: standard base64, or the column's declared `encoding`), else
  `UsageError`;
- a cursor is the base64url text (no padding) of the last encoded key a page
  returned: stateless, so it stays valid across pages, restarts and workers (the key's
  row may be gone since: the next page starts after it all the same). A cursor that
  does not decode as a key of the table under the page's prefix (forged, truncated, of
  another table or prefix) is a UsageError (400), never a page: an empty one would read
  as the end of the rows, the first one again as more rows.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from materializer.errors import NotFound, UsageError
from materializer.keytext import KeyTextParser, key_text_parser
from materializer.store import Store, StreamView, TableView

MAX_KEY_BYTES = 511  # LMDB's key size limit: no stored key is longer
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_ #{}\[\]():.\-]{0,400}")
_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,700}")

@dataclass(frozen=True, slots=True)
class ApiRelation:
    """A table or stream as the API addresses it, with its key parsers."""

    view: TableView | StreamView
    parse: KeyTextParser  # `materializer.values.key_text_parser` of the key columns

    @property
    def kind(self) -> str:
        return "table" if isinstance(self.view, TableView) else "stream"

    @property
    def table(self) -> TableView:
        """The view as a table (`RelationIndex.table` only hands out tables)."""
        view = self.view
        assert isinstance(view, TableView)
        return view

    @property
    def stream(self) -> StreamView:
        """The view as a stream (`RelationIndex.stream` only hands out streams)."""
        view = self.view
        assert isinstance(view, StreamView)
        return view

    def key_from_text(self, segments: Sequence[str]) -> tuple[Any, ...]:
        """A full key from path segments; UsageError if it does not fit the key columns."""
        n = len(self.view.key_columns)
        if len(segments) != n:
            raise UsageError(f"{self.view.name} has key ({', '.join(self.view.key_columns)}): "
                             f"expected {n} value(s), got {len(segments)}")
        return self.parse(segments)

    def page_start(self, cursor: str | None, prefix: tuple[Any, ...]) -> bytes | None:
        """The position a page `cursor` names under `prefix` (None: the first page);
        UsageError for a cursor that is not one (see the module doc)."""
        if cursor is None:
            return None
        start = decode_cursor(cursor)
        self.table.check_position(start, prefix)
        return start

    def prefix_from_text(self, segments: Sequence[str]) -> tuple[Any, ...]:
        """A key prefix (0..n leading key columns) from query values."""
        n = len(self.view.key_columns)
        if len(segments) > n:
            raise UsageError(f"{self.view.name} has key ({', '.join(self.view.key_columns)}): "
                             f"a prefix has at most {n} value(s), got {len(segments)}")
        return self.parse(segments)


def check_relation_name(name: str) -> str:
    """`name` if it looks like a relation name (SPEC §3, see the module doc), else NotFound:
    what no relation is named (a NUL, a lone surrogate, a leading `-`) never goes further."""
    if not _NAME.fullmatch(name):
        raise NotFound(f"no table or stream named {name!r}")
    return name


class RelationIndex:
    """Resolves names the API is asked for to views, caching each resolved name.

    A relation that does not exist yet (or has no metadata yet) is looked up again on
    the next request, so tables the worker creates later become visible.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[str, ApiRelation] = {}

    def get(self, name: str) -> ApiRelation:
        rel = self._cache.get(name)
        if rel is not None:
            return rel
        check_relation_name(name)
        try:
            view = self.store.relation(name)
        except NotFound:  # the store's message names the data directory: keep that private
            raise NotFound(f"no table or stream named {name!r}") from None
        if not isinstance(view, TableView | StreamView):
            raise NotFound(f"no table or stream named {name!r}")
        rel = ApiRelation(view, key_text_parser(view.key_columns, view.key_types))
        if len(self._cache) < 10_000:
            self._cache[name] = rel
        return rel

    def table(self, name: str) -> ApiRelation:
        rel = self.get(name)
        if rel.kind != "table":
            raise NotFound(f"{rel.view.name} is a stream: read it at /streams/{name}/keys/...")
        return rel

    def stream(self, name: str) -> ApiRelation:
        rel = self.get(name)
        if rel.kind != "stream":
            raise NotFound(f"{rel.view.name} is a table: read it at /tables/{name}/rows/...")
        return rel


def raw_path(scope: Mapping[str, Any]) -> bytes:
    """The request path as sent (percent-encoded), without the query string."""
    raw = scope.get("raw_path")
    return raw if isinstance(raw, bytes) else quote(scope["path"]).encode()


def path_segments(raw_path: bytes, first: int, last: int | None = None) -> list[str]:
    """Percent-decoded segments `first:last` of a raw request path.

    Splitting the raw path (before decoding) keeps `%2F` inside one segment, so
    string keys may contain `/`. Raises UsageError for text that is not UTF-8.
    """
    parts = raw_path.split(b"/")[first:last]
    try:
        return [(unquote_to_bytes(p) if b"%" in p else p).decode("utf-8") for p in parts]
    except UnicodeDecodeError:
        raise UsageError("a key segment is not UTF-8 after percent-decoding") from None


def encode_cursor(encoded_key: bytes) -> str:
    return base64.urlsafe_b64encode(encoded_key).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> bytes:
    """The encoded key a cursor names; UsageError if it is not a cursor."""
    if not _CURSOR.fullmatch(cursor):
        raise UsageError("malformed cursor: pass back the `next` value of the previous page")
    try:
        key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise UsageError("malformed cursor: pass back the `next` value of the previous page") \
            from None
    if not key or len(key) > MAX_KEY_BYTES:
        raise UsageError("malformed cursor: pass back the `next` value of the previous page")
    return key

"""`FaustTableView`: a faust table kept by `lmdb://`, read from outside faust.

`materializer.Store` hands it out for relations whose identity says `view: faust`
(the `materializer.views` entry point), so `Store.open(dir).table("counts")` and
`materializer serve DIR` read faust tables with the same calls as materializer's own.
It needs faust installed (for its codecs), not the faust app or its models.

Keys and rows:
- a key is the faust key (`"word"`, `42`); a windowed table's key is
  `(key, window_start, window_end)` (or faust's own `(key, (start, end))`);
- a row is `{"key": k, "value": v}` (windowed: plus `window_start`, `window_end`),
  decoded with the table's faust codecs; in JSON form (HTTP) JSON values are JSON
  documents and any other bytes base64 text;
- key order is the byte order of the keys as faust serialized them; a windowed table
  scans by `prefix=(key,)` (every window of a key).

Over HTTP a key's text is typed by the table's `key_type` (str: the text; int: an
integer; float: a number; bytes: base64); a table without a key_type reads it as a
string, so declare `key_type=int` on tables looked up by integer keys over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from connectors.faust_codec import FaustCodec
from materializer.columns import ColumnType
from materializer.errors import UsageError
from materializer.store import RelationMeta, TableView
from materializer.store.keys import KeyCodec

_SCAN_CHUNK = 1000


class _FaustRows:
    """The `layout` of a faust view: a stored row (key bytes, value bytes) to a row dict."""

    __slots__ = ("_codec", "_layout")

    def __init__(self, codec: FaustCodec, layout: Any) -> None:
        self._codec = codec
        self._layout = layout

    def to_python(self, raw: bytes) -> dict[str, Any]:
        row = self._layout.to_python(raw)
        return self._codec.row(row["key"], row["value"], json_form=False)

    def to_json(self, raw: bytes) -> dict[str, Any]:
        row = self._layout.to_python(raw)
        return self._codec.row(row["key"], row["value"], json_form=True)


class FirstFoundView(TableView):
    """The faust app's own reads of its table (`connectors.faust`): a key held by several
    partitions answers the first partition's row and is iterated from each, as faust's
    RocksDB store does (`FaustTableView`, the API's view, refuses such a key instead:
    `TableView.unique_keys`)."""

    unique_keys = False

    def partitions_holding(self, kb: bytes) -> list[int]:
        """The served partitions whose committed rows hold encoded key `kb`."""
        g = self._gen()
        txn, parts = g.begin()
        with txn:
            return [p for p, db in parts if txn.get(kb, None, db) is not None]


class FaustTableView(TableView):
    """Read-only view of a faust table (see the module docstring for keys and rows)."""

    def __init__(self, data_dir: Path, generation: Any) -> None:
        super().__init__(data_dir, generation)
        self.codec = FaustCodec(generation.meta.identity.get("faust", {}))

    @property
    def key_columns(self) -> tuple[str, ...]:
        return self.codec.key_columns

    @property
    def key_types(self) -> tuple[ColumnType, ...]:
        return self.codec.key_types

    @property
    def meta(self) -> RelationMeta:
        """The identity as a faust table shows it: its logical columns and key."""
        stored = super().meta
        ident = dict(stored.identity)
        faust = ident.get("faust", {})
        ident["columns"] = ([[c, str(t), True] for c, t in zip(self.key_columns, self.key_types,
                                                               strict=True)]
                            + [["value", "json" if "json" in str(faust.get("value_serializer"))
                                else "bytes", False]])
        ident["key"] = list(self.key_columns)
        return RelationMeta(ident, stored.layout)

    @property
    def layout(self) -> Any:
        return _FaustRows(self.codec, super().layout)

    def _stored_key(self, key: Any) -> bytes:
        return self.codec.encode_key(key)

    def get(self, key: Any, *, json_form: bool = False, held_only: bool = False
            ) -> dict[str, Any] | None:
        row = super().get(self._stored_key(key), held_only=held_only)
        if row is None:
            return None
        return self.codec.row(row["key"], row["value"], json_form)

    def get_many(self, keys: Iterable[Any], *, json_form: bool = False,
                 held_only: bool = False) -> list[dict[str, Any] | None]:
        rows = super().get_many([self._stored_key(k) for k in keys], held_only=held_only)
        return [None if r is None else self.codec.row(r["key"], r["value"], json_form)
                for r in rows]

    def scan_raw(self, prefix: Sequence[Any] = (), limit: int | None = None,
                 after: bytes | None = None, *, every_copy: bool = False
                 ) -> list[tuple[bytes, bytes]]:
        """(stored key, stored row) pairs in key order whose faust key starts with
        `prefix` (leading key columns)."""
        start = self._start(prefix)
        if after is None or after < start:
            after_key: bytes | None = start if start else None
        else:
            after_key = after
        out: list[tuple[bytes, bytes]] = []
        while limit is None or len(out) < limit:
            chunk = _SCAN_CHUNK if limit is None else min(_SCAN_CHUNK, limit - len(out))
            pairs = super().scan_raw((), chunk, after=after_key, every_copy=every_copy)
            for k, v in pairs:
                if not k.startswith(start):
                    return out
                out.append((k, v))
            if len(pairs) < chunk:
                break
            after_key = pairs[-1][0]
        return out

    def _start(self, prefix: Any) -> bytes:
        """The byte prefix of the stored keys whose faust key starts with `prefix`."""
        if isinstance(prefix, str | bytes) or not isinstance(prefix, Sequence):
            prefix = (prefix,)
        if len(prefix) > len(self.key_columns):
            raise UsageError(f"prefix {tuple(prefix)!r} is longer than the key "
                             f"({', '.join(self.key_columns)})")
        raw = self.codec.key_prefix(tuple(prefix))
        # the stored key is the faust key as one bytes component: a byte prefix of the
        # faust key (windowed: `["word",`) is a byte prefix of the stored key less the
        # component's 2-byte terminator; a whole key selects that key alone
        start = KeyCodec(super().key_types).encode_prefix([raw]) if raw else b""
        if raw and len(prefix) < len(self.key_columns):
            start = start[:-2]
        return start

    def check_position(self, after: bytes, prefix: Sequence[Any] = ()) -> None:
        """As `TableView.check_position`, with the faust key's prefix."""
        super().check_position(after)
        if not after.startswith(self._start(prefix)):
            raise UsageError(f"the cursor is not a position under prefix {tuple(prefix)!r}: "
                             "pass the prefix of the page that gave it")

    def scan(self, prefix: Any = (), limit: int | None = None, *, json_form: bool = False,
             held_only: bool = False) -> list[dict[str, Any]]:
        """Rows whose key starts with `prefix`, in key order, at most `limit` (as
        `TableView.scan`: PartitionsNotHeld while partitions are revoked)."""
        conv = self.layout.to_json if json_form else self.layout.to_python
        self.require_current()
        pairs = self.scan_raw(prefix, limit)
        if not held_only:
            self.require_held()
        return [conv(v) for _, v in pairs]

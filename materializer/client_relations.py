"""The per-relation half of `materializer.Client`: one table or stream of the cluster as the
client asks it (`ClientTable.get / get_many / scan`, `ClientStream.events`): keys turned into
the stored form, the JSON the API reads and key text for paths; the rows that come back turned
into Python values as `Store` gives them. Requests go through the `Client` (`call`,
`owner_url`, `any_url`), which owns the membership, routing and retries.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from materializer.binary_text import bytes_text
from materializer.columns import ColumnType
from materializer.errors import NO_ROW, NotFound, UsageError
from materializer.lookup_args import check_limit, refuse_one_key
from materializer.stored import from_storage, to_json_value
from materializer.values import key_storage, to_storage

if TYPE_CHECKING:
    from materializer.client import Client

MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Schema:
    """A relation as `GET /tables` describes it."""

    name: str
    kind: str
    columns: dict[str, ColumnType | None]
    key: tuple[str, ...]

    def key_types(self) -> list[ColumnType]:
        out = []
        for c in self.key:
            t = self.columns.get(c)
            if t is None:
                raise UsageError(f"{self.name}: key column {c!r} has a type this client "
                                 "cannot read")
            out.append(t)
        return out


def _segment(text: str) -> str:
    """One path segment of a key: percent-encoded, with `/` as `%2F` and a `.` or `..`
    segment as `%2E` or `%2E%2E` (the API decodes them back)."""
    return "%2E" * len(text) if text in (".", "..") else quote(text, safe="")


class _Relation:
    def __init__(self, client: Client, schema: Schema) -> None:
        self.client = client
        self.schema = schema
        self.name = schema.name
        types = schema.key_types()
        self._store = [key_storage(t) for t in types]
        # a key is sent as the workers read it: bytes in the column's encoding (key_unit)
        self._json = [bytes_text(t.encoding) if t.kind == "bytes" and t.encoding else
                      to_json_value(t) for t in types]
        self._types = types
        # rows come back in JSON form, whatever the columns' input encodings: bytes as base64
        self._rows = {c: (to_storage(replace(t, encoding=None)), from_storage(t))
                      for c, t in schema.columns.items() if t is not None}

    def stored_key(self, key: Any) -> tuple[Any, ...]:
        values = key if isinstance(key, tuple | list) else (key,)
        if len(values) != len(self._store):
            raise UsageError(f"{self.name} has key ({', '.join(self.schema.key)}): expected "
                             f"{len(self._store)} value(s), got {len(values)}")
        try:
            stored = tuple(None if v is None else conv(v) for conv, v in
                           zip(self._store, values, strict=True))
            for v in stored:
                if isinstance(v, str):
                    v.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError(f"key {key!r} does not fit ({', '.join(self.schema.key)}): a "
                             "string that is not valid Unicode (a lone surrogate, such as "
                             "bytes that are not UTF-8 read as text)") from None
        except (TypeError, ValueError) as e:
            raise UsageError(f"key {key!r} does not fit ({', '.join(self.schema.key)}): "
                             f"{e}") from None
        return stored

    def json_key(self, stored: tuple[Any, ...]) -> list[Any]:
        return [v if conv is None or v is None else conv(v)
                for conv, v in zip(self._json, stored, strict=False)]

    def texts(self, stored: tuple[Any, ...]) -> list[str]:
        """Key values as the API reads them in paths and `prefix=` (keytext rules).
        UsageError for a null component: key text has none (`null` is the string "null")."""
        out = []
        for t, v in zip(self._types, self.json_key(stored), strict=False):
            if v is None:
                raise UsageError(f"{self.name}: a null key value cannot be asked over HTTP "
                                 "(key text has no null: the text `null` is the string "
                                 "\"null\")")
            if t.kind == "boolean":
                out.append("true" if v else "false")
            elif t.kind == "bytes" and isinstance(v, bytes):
                out.append(base64.b64encode(v).decode("ascii"))
            else:
                out.append(str(v))
        return out

    def path_key(self, stored: tuple[Any, ...]) -> str:
        """The key's path segments, percent-encoded; `.` and `..` as `%2E` and `%2E%2E`
        (sent as they are, the HTTP client removes them as dot segments)."""
        return "/".join(_segment(t) for t in self.texts(stored))

    def python_row(self, row: dict[str, Any] | None, json_form: bool) -> dict[str, Any] | None:
        if row is None or json_form:
            return row
        out = {}
        for c, v in row.items():
            conv = self._rows.get(c)
            if conv is None or v is None:
                out[c] = v
                continue
            try:
                stored = conv[0](v)
                out[c] = stored if conv[1] is None else conv[1](stored)
            except (TypeError, ValueError):
                out[c] = v
        return out


class ClientTable(_Relation):
    """A table of the cluster: `get`, `get_many`, `scan` as `TableView` has them."""

    def get(self, key: Any, *, json_form: bool = False) -> dict[str, Any] | None:
        stored = self.stored_key(key)
        if None in stored:  # no key text for null: asked as JSON, as Store.get answers it
            return self.get_many([key], json_form=json_form)[0]
        r = self.client.call(lambda: self.client.owner_url(self.schema, stored), "GET",
                             f"/tables/{quote(self.name, safe='')}/rows/"
                             f"{self.path_key(stored)}")
        if r.status_code == 404:  # absent, or a worker of another declaration: said
            detail = str(r.json().get("detail", "not found"))
            if not detail.startswith(NO_ROW):
                raise NotFound(detail)
            return None
        return self.python_row(r.json(), json_form)

    def get_many(self, keys: Iterable[Any], *, json_form: bool = False
                 ) -> list[dict[str, Any] | None]:
        refuse_one_key(keys)
        stored = [self.stored_key(k) for k in keys]
        groups: dict[str, list[int]] = {}
        for i, kt in enumerate(stored):
            groups.setdefault(self.client.owner_url(self.schema, kt), []).append(i)
        out: list[dict[str, Any] | None] = [None] * len(stored)
        for idx in groups.values():
            for start in range(0, len(idx), MAX_PAGE):
                chunk = idx[start:start + MAX_PAGE]
                # (after a rebalance the first key's new owner forwards the others)
                r = self.client.call(
                    lambda k=stored[chunk[0]]: self.client.owner_url(self.schema, k), "POST",
                                     f"/tables/{quote(self.name, safe='')}/lookup",
                                     json={"keys": [self.json_key(stored[i]) for i in chunk]})
                if r.status_code == 404:
                    raise NotFound(str(r.json().get("detail", "not found")))
                for i, row in zip(chunk, r.json()["rows"], strict=True):
                    out[i] = self.python_row(row, json_form)
        return out

    def scan(self, prefix: Any = (), limit: int | None = None, *, json_form: bool = False
             ) -> list[dict[str, Any]]:
        """Rows whose key starts with `prefix`, in key order, at most `limit` (any worker
        merges the owners' rows; pages are followed by cursor)."""
        if limit is not None:
            check_limit(limit, "row", "no limit: None")
        values = prefix if isinstance(prefix, tuple | list) else (prefix,)
        if len(values) > len(self._store):
            raise UsageError(f"prefix {tuple(values)!r} is longer than the key "
                             f"({', '.join(self.schema.key)})")
        try:
            stored = tuple(conv(v) for conv, v in zip(self._store, values, strict=False))
        except (TypeError, ValueError) as e:
            raise UsageError(f"prefix {prefix!r} does not fit the key: {e}") from None
        texts = self.texts(stored)
        rows: list[dict[str, Any]] = []
        after: str | None = None
        while limit is None or len(rows) < limit:
            page = MAX_PAGE if limit is None else min(MAX_PAGE, limit - len(rows))
            params: list[tuple[str, Any]] = [("prefix", t) for t in texts] + [("limit", page)]
            if after is not None:
                params.append(("after", after))
            r = self.client.call(self.client.any_url, "GET",
                                 f"/tables/{quote(self.name, safe='')}/rows", params=params)
            if r.status_code == 404:
                raise NotFound(str(r.json().get("detail", "not found")))
            body = r.json()
            rows += [row for row in (self.python_row(x, json_form) for x in body["rows"])
                     if row is not None]
            after = body.get("next")
            if after is None:
                break
        return rows


class ClientStream(_Relation):
    """A stream of the cluster: `events` as `StreamView` has it."""

    def events(self, key: Any, limit: int = 10, *, json_form: bool = False
               ) -> list[dict[str, Any] | None]:
        check_limit(limit, "event")
        stored = self.stored_key(key)
        r = self.client.call(lambda: self.client.owner_url(self.schema, stored), "GET",
                             f"/streams/{quote(self.name, safe='')}/keys/"
                             f"{self.path_key(stored)}/events", params={"limit": limit})
        if r.status_code == 404:
            raise NotFound(str(r.json().get("detail", "not found")))
        return [self.python_row(e, json_form) for e in r.json()["events"]]

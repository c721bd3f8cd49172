"""Request bodies (`POST .../lookup`, `POST /snapshots`), read as they arrive.

Starlette's `request.body()` buffers a body whole before anyone can look at its size: a
chunked body (no Content-Length) of any size was held in memory before the 413, and one
that never finished held its connection and coroutine for ever. `read_body` refuses a
body as soon as it passes the limit (413), one that has not arrived whole within
`BODY_TIMEOUT_S` (408), and one cut short by the client (400).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from starlette.requests import ClientDisconnect, Request

from materializer.columns import ColumnType
from materializer.errors import UsageError

BODY_TIMEOUT_S = 30.0


class BodyRefused(Exception):
    """A request body not read: `status` and `detail` say why (the answer to send)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


async def read_body(request: Request, limit: int, timeout: float | None = None) -> bytes:
    """The body, at most `limit` bytes, within `timeout` seconds (`BODY_TIMEOUT_S`); see
    the module doc (BodyRefused otherwise)."""
    timeout = BODY_TIMEOUT_S if timeout is None else timeout
    too_large = BodyRefused(413, f"body larger than {limit} bytes")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large

    async def collect() -> bytes:
        parts: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            parts.append(chunk)
        return b"".join(parts)

    try:
        return await asyncio.wait_for(collect(), timeout)
    except TimeoutError:
        raise BodyRefused(408, f"the body did not arrive whole within {timeout:.0f} s"
                          ) from None
    except ClientDisconnect:  # cut short or malformed: the client is gone
        raise BodyRefused(400, "the body did not arrive whole") from None


_MEMBER_END = re.compile(rb'"[ \t\n\r]*:')
"""The end of an object member's name (its closing quote and colon): at least one per
member of any object at any depth (more only where a string holds `\\":`)."""


class _Duplicate(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) < len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise _Duplicate(name)
            seen.add(name)
    return obj


def _may_repeat_members(body: bytes) -> bool:
    """Whether the JSON `body` may name a member twice: it has two or more member names
    (at any depth). A count of `:` for a body with at most one (`{"keys": [[1], ...]}` of
    numbers or strings without `:`), else a search for a second member name (a few
    microseconds a kilobyte)."""
    if body.count(b":") < 2:
        return False
    first = _MEMBER_END.search(body)
    return first is not None and _MEMBER_END.search(body, first.end()) is not None


def _refused_duplicate(e: _Duplicate) -> BodyRefused:
    name = json.dumps(e.args[0], ensure_ascii=False)
    return BodyRefused(400, f"the body names member {name[:200]} twice in one object: send "
                            "each member once")


def refuse_duplicate_members(body: bytes) -> None:
    """BodyRefused (400) if an object anywhere in the JSON `body` names a member twice
    (`{"keys": [[1]], "keys": [[2]]}`): the JSON readers keep the last one silently, so
    the answer would be to a question the client may not have meant. Only a body that may
    (`_may_repeat_members`) is read again, by the standard library. For a body already
    read as JSON (its errors said first): ValueError or RecursionError as `json.loads`."""
    if not _may_repeat_members(body):
        return
    try:
        json.loads(body, object_pairs_hook=_no_duplicates)
    except _Duplicate as e:
        raise _refused_duplicate(e) from None


class JsonNumber(str):
    """The text of a JSON number with a fraction or exponent whose double is not its
    shortest text (`1.50`, `0.10000000000000001`, `1e-999`): what the client wrote, kept
    until the key column's type says how to read it (`typed_numbers`)."""


def _json_number(text: str) -> float | JsonNumber:
    f = float(text)
    return f if repr(f) == text else JsonNumber(text)


def _float_key(obj: Any) -> bool:
    """Whether the lookup body `obj` holds a float among its keys (or their values)."""
    keys = obj.get("keys") if isinstance(obj, dict) else None
    return isinstance(keys, list) and any(
        type(k) is float or (isinstance(k, list) and any(type(v) is float for v in k))
        for k in keys)


def lookup_json(body: bytes, loads: Callable[[bytes], Any]) -> Any:
    """The lookup body `body` read by `loads`, its numbers exact; else BodyRefused (400):
    not JSON, or a member named twice (`refuse_duplicate_members`).

    Exact numbers: when a key holds a float, the body is read again by the standard
    library: orjson reads an integer past 64 bits as a float (`18446744073709551616` as
    `1.8446744073709552e+19`), so its column's check said "got float" of what the client
    sent as an integer; and a number with a fraction or exponent as the double nearest to
    it (`1.5000000000000001` as 1.5, `1e-999` as 0.0), so a decimal or double key was
    rounded to another key and answered its row. `json` keeps integers integers, and
    numbers that are not their double's shortest text as `JsonNumber` text
    (`typed_numbers` reads them by the key's column types). A body orjson read is strict
    JSON, so `json` reads it alike otherwise. That one reading also looks for members
    named twice, when the body may have some."""
    try:
        obj = loads(body)
        exact = loads is not json.loads and _float_key(obj)  # 2**64, 1.5000000000000001
        if exact or _may_repeat_members(body):  # {"keys": [[1]], "keys": [[2]]}: which?
            again = json.loads(body, parse_float=_json_number, object_pairs_hook=_no_duplicates)
            obj = again if exact else obj
    except _Duplicate as e:
        raise _refused_duplicate(e) from None
    except (ValueError, RecursionError):
        raise BodyRefused(400, 'the body is not JSON: send {"keys": [[k1, ...], ...]}'
                          ) from None
    return obj


def typed_numbers(keys: list[Any], types: Sequence[ColumnType]) -> list[Any]:
    """`keys` with each `JsonNumber` read by its key column's type: a decimal column takes
    the number's text (exact: digits past its scale are refused, never rounded to another
    key); a float or double column its double when that is the number exactly or the
    number is that double's text with more digits (`1.50`, `1e3`), else UsageError (it
    would be read as another key, as key text would: `0.10000000000000001`, `1e-999`);
    any other column the float (whose check refuses a float), and so do values past the
    key's columns."""
    if not any(isinstance(v, JsonNumber) for k in keys
               for v in (k if isinstance(k, list) else [k])):
        return keys
    one = len(types) == 1
    out = []
    for k in keys:
        if isinstance(k, list):
            out.append([_typed(v, types[i] if i < len(types) else None)
                        for i, v in enumerate(k)])
        else:
            out.append(_typed(k, types[0] if one else None))
    return out


def _typed(v: Any, t: ColumnType | None) -> Any:
    if not isinstance(v, JsonNumber):  # a list or object is refused by the column check
        return v
    kind = None if t is None else t.kind
    if kind == "decimal":
        return str(v)
    f = float(v)
    if kind in ("float", "double"):
        if not math.isfinite(f):
            raise UsageError(f"key value {v} is beyond the range of a double")
        d = Decimal(v)
        if d != Decimal(f) and d != Decimal(repr(f)):
            raise UsageError(f"key value {v} is not exactly a double: it would be read as "
                             f"{f!r} (give a double's exact value or its shortest text)")
    return f

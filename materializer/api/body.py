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
from collections.abc import Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request

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


def exact_integers(body: bytes, obj: Any, loads: Callable[[bytes], Any]) -> Any:
    """`obj` (the lookup body `body` as `loads` read it), read again by the standard
    library when a key holds a float: orjson reads an integer past 64 bits as a float
    (`18446744073709551616` as `1.8446744073709552e+19`), so its column's check said "got
    float" of what the client sent as an integer, and a `decimal` or `double` key took an
    inexact value; `json` keeps it an integer, whose check says it is out of range. A body
    orjson read is strict JSON, so `json` reads it alike otherwise (floats, NaN refused)."""
    keys = obj.get("keys") if isinstance(obj, dict) else None
    if not isinstance(keys, list) or loads is json.loads:
        return obj
    if any(type(k) is float or (isinstance(k, list) and any(type(v) is float for v in k))
           for k in keys):
        return json.loads(body)
    return obj

"""Request bodies (`POST .../lookup`, `POST /snapshots`), read as they arrive.

Starlette's `request.body()` buffers a body whole before anyone can look at its size: a
chunked body (no Content-Length) of any size was held in memory before the 413, and one
that never finished held its connection and coroutine for ever. `read_body` refuses a
body as soon as it passes the limit (413), one that has not arrived whole within
`BODY_TIMEOUT_S` (408), and one cut short by the client (400).
"""

from __future__ import annotations

import asyncio

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

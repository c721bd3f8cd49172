"""The outermost layer of the lookup API: bearer token, request latency, fast paths.

One plain ASGI layer in front of the framework (`EdgeApi.__call__`, outside even
FastAPI's own middleware), so every request pays for it once and nothing else:
- with a token, a request for any path outside `open_paths` needs
  `Authorization: Bearer <token>` (compared in constant time), else 401 before any
  routing or reading happens;
- every request's latency and status are recorded per endpoint (the route template,
  e.g. `/tables/{table}/rows/{key}`; `unmatched` for paths no route serves);
- `GET /tables/{table}/rows/{k...}` of a key another worker owns goes to
  `routed_rows(table, scope)` (cluster routing, asynchronous), also before the framework;
- `GET /tables/{table}/rows/{k...}`, `GET /healthz` and `GET /readyz` are answered
  here (`rows(table, raw_path)`, `HEALTHY`, `ready()`: the same functions and bytes the
  routed endpoints answer with), without the framework's per-request machinery
  (routing, its middleware stack, telemetry hooks, a Response object): most of the
  cost of a lookup that is not the HTTP server's own. Everything else, the OpenAPI
  description included, goes to the framework;
- `HEAD` of any path is its `GET` without the body (`Content-Length` and every other
  header as `GET` would send them): load balancers and uptime checkers probe
  `/healthz` with it, and the framework's routes take `GET` only (405).
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from fastapi import FastAPI
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from materializer.api.keys import path_segments, raw_path
from materializer.api.metrics import LatencyRecorder
from materializer.api.readiness import HEALTHY
from materializer.errors import UsageError

RowAnswer = Callable[[str, bytes], "tuple[int, bytes] | None"]  # None: the routed endpoint
RoutedRowAnswer = Callable[[str, Scope], Awaitable["Response | None"]]
ReadyAnswer = Callable[[], tuple[int, bytes]]

ROW_ENDPOINT = "/tables/{table}/rows/{key}"
_ROW_PATH = re.compile(rb"/tables/[^/]+/rows/.*", re.S)
"""A point lookup's raw path (as sent, percent-encoded): its name and key segments are read
from it, never from the decoded path, where a `%2F` inside the name would move them."""
_JSON_HEADERS = (b"content-type", b"application/json")
SERVER = (b"server", b"materializer")
"""Every answer names the product, not the HTTP server under it (which would otherwise add
its own name: Granian cannot leave the header out)."""
_UNAUTHORIZED = b'{"detail":"missing or wrong bearer token (Authorization: Bearer <token>)"}'


def endpoint_label(route: Any) -> str:
    """A route's path template without converters (`{key:path}` -> `{key}`)."""
    path = getattr(route, "path", None)
    return "unmatched" if not path else path.replace(":path}", "}")


class EdgeApi(FastAPI):
    """FastAPI with an `Edge` in front of everything, its own middleware included.

    Set `edge` to an `Edge` whose `app` is `framework(api)`; until then (or with None)
    requests go to FastAPI directly."""

    edge: Edge | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        edge = self.edge
        if edge is None:
            await super().__call__(scope, receive, send)
        else:
            await edge(scope, receive, send)


def framework(api: EdgeApi) -> ASGIApp:
    """The FastAPI application itself, behind the edge of `api`."""
    call = super(EdgeApi, api).__call__

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await call(scope, receive, send)

    return app


class Edge:
    """Token check, latency recording and the fast paths (see module doc)."""

    def __init__(self, app: ASGIApp, token: str | None, recorder: LatencyRecorder,
                 open_paths: Collection[str], rows: RowAnswer | None = None,
                 ready: ReadyAnswer | None = None,
                 routed_rows: RoutedRowAnswer | None = None) -> None:
        self.app = app
        self.token = None if token is None else token.encode()
        self.recorder = recorder
        self.open_paths = frozenset(open_paths)
        self.rows = rows
        self.ready = ready
        self.routed_rows = routed_rows  # cluster: rows another worker answers

    def _authorized(self, scope: Scope) -> bool:
        assert self.token is not None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, cred = bytes(value).partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(cred.strip(),
                                                                           self.token)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        if scope["method"] == "HEAD":  # GET without the body, fast paths and routes alike
            scope, send = {**scope, "method": "GET"}, _without_body(send)
        path = scope["path"]
        if self.token is not None and path not in self.open_paths \
                and not self._authorized(scope):
            await _send(send, 401, _UNAUTHORIZED, (b"www-authenticate", b"Bearer"))
            self.recorder.observe("unauthorized", 401, time.perf_counter() - t0)
            return
        if self.rows is not None and scope["method"] == "GET":
            if path.startswith("/tables/"):
                # a query string (?as_of=...) goes to the routed endpoint, which reads it
                raw = raw_path(scope)
                table = None if scope.get("query_string") else _row_table(raw)
                answer = None if table is None else self.rows(table, raw)
                if answer is not None:
                    status, body = answer
                    await _send(send, status, body)
                    self.recorder.observe(ROW_ENDPOINT, status, time.perf_counter() - t0)
                    return
                if table is not None and self.routed_rows is not None:
                    routed = await self.routed_rows(table, scope)
                    if routed is not None:
                        await routed(scope, receive, send)
                        self.recorder.observe(ROW_ENDPOINT, routed.status_code,
                                              time.perf_counter() - t0)
                        return
            elif path == "/healthz":
                await _send(send, 200, HEALTHY)
                self.recorder.observe(path, 200, time.perf_counter() - t0)
                return
            elif path == "/readyz" and self.ready is not None:
                status, body = self.ready()
                await _send(send, status, body)
                self.recorder.observe(path, status, time.perf_counter() - t0)
                return
        code = 500

        async def send_status(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
                message["headers"] = [*message.get("headers", ()), SERVER]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.recorder.observe(endpoint_label(scope.get("route")), code,
                                  time.perf_counter() - t0)


def _row_table(raw: bytes) -> str | None:
    """The table of a point lookup's raw path (its percent-decoded name segment), else None
    (not a point lookup, or a name that is not UTF-8: the framework answers it)."""
    if not _ROW_PATH.fullmatch(raw):
        return None
    try:
        return path_segments(raw, 2, 3)[0]
    except UsageError:  # not UTF-8
        return None


async def _send(send: Send, status: int, body: bytes, *extra: tuple[bytes, bytes]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [_JSON_HEADERS, (b"content-length", b"%d" % len(body)), SERVER,
                            *extra]})
    await send({"type": "http.response.body", "body": body})


def _without_body(send: Send) -> Send:
    """`send` dropping the bytes of the answer's body (a HEAD's answer: its headers, the
    `Content-Length` of the GET's body included, and no body)."""

    async def head(message: Message) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            message = {**message, "body": b""}
        await send(message)

    return head

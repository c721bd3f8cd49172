"""The HTTP lookup API (SPEC §7): read-only, in its own process, beside the worker.

Entry points:
- `serve(catalog, token)`: blocking; what `materializer serve` calls (and `run`
  starts as a child process). Refuses a non-loopback `api.listen` without a token.
- `check_listen(catalog, token)`: that refusal alone, as `ConfigError` (exit 2).
- `create_app(store_path, token, max_lookup_keys, default_schema)`: the ASGI app,
  for in-process use (tests, embedding).

Guarantees:
- Every answer comes from one short LMDB read transaction over committed state:
  a row is always one the worker wrote for that key at some point (never torn),
  and the API never blocks the worker (nor the other way round).
- Paging (`GET /tables/{t}/rows`) is by cursor, the last key returned: under
  concurrent writes no row is returned twice, and every row present during the
  whole walk is returned exactly once, in key order.
- Client input (names, keys, prefixes, cursors, bodies) is validated before it
  reaches LMDB; bad input is a 4xx, never a 5xx.
- With a token, every endpoint except `/healthz`, `/readyz` and the OpenAPI
  description needs `Authorization: Bearer <token>` (constant-time comparison),
  else 401. Neither values nor the token are logged; there is no access log.

Handlers are `async` and read LMDB inline on the event loop: a read is a few
microseconds of memory-mapped access, cheaper than a hop to a thread pool.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response

from materializer import __version__
from materializer.api.edge import Edge
from materializer.api.keys import (
    RelationIndex,
    decode_cursor,
    encode_cursor,
    path_segments,
    raw_path,
)
from materializer.api.metrics import (
    CONTENT_TYPE,
    Exposition,
    LatencyRecorder,
    add_latency_metrics,
    add_store_metrics,
    add_worker_metrics,
    read_status,
    readiness,
)
from materializer.api.models import (
    ErrorBody,
    EventsResponse,
    Health,
    LookupRequest,
    LookupResponse,
    Readiness,
    Row,
    RowsPage,
    TablesResponse,
)
from materializer.errors import ConfigError, MaterializerError, NotFound, StoreError, UsageError
from materializer.specs import Catalog
from materializer.store import Store

log = logging.getLogger("materializer.api")

DEFAULT_PAGE, MAX_PAGE = 100, 1000
DEFAULT_EVENTS, MAX_EVENTS = 10, 1000
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect",
                        "/redoc"})

# --------------------------------------------------------------------------- JSON


def _std_dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


try:
    import orjson

    def dumps(obj: Any) -> bytes:
        try:
            return orjson.dumps(obj)
        except TypeError:  # e.g. an integer beyond 64 bits inside a json column
            return _std_dumps(obj)

    _loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - orjson is optional
    dumps = _std_dumps
    _loads = json.loads


def _json(body: Any, status: int = 200) -> Response:
    return Response(dumps(body), status, media_type="application/json")


def _error(status: int, detail: str) -> Response:
    return _json({"detail": detail}, status)


def _failure(e: Exception) -> tuple[int, bytes]:
    """Status and body for an error raised while serving a request (anything else is a bug)."""
    if isinstance(e, NotFound):
        return 404, dumps({"detail": str(e)})
    if isinstance(e, UsageError | ValueError):
        return 400, dumps({"detail": str(e)})
    if isinstance(e, StoreError):
        return 503, dumps({"detail": str(e)})
    raise e


def _fail(e: Exception) -> Response:
    status, body = _failure(e)
    return Response(body, status, media_type="application/json")


def row_answer(index: RelationIndex, table: str, raw_path: bytes) -> tuple[int, bytes]:
    """`GET /tables/{table}/rows/{k1}/...`: status and JSON body (the row, or why not)."""
    try:
        rel = index.table(table)
        kt = rel.key_from_text(path_segments(raw_path, 4))
        row = rel.table.get(kt, json_form=True)
    except (MaterializerError, ValueError) as e:
        return _failure(e)
    if row is None:
        return 404, dumps({"detail": f"no row with that key in {rel.view.name}"})
    return 200, dumps(row)


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The key, prefix, cursor or body does not fit."},
    401: {"model": ErrorBody, "description": "Missing or wrong bearer token."},
    404: {"model": ErrorBody, "description": "No such table or stream (or row)."},
}


# ------------------------------------------------------------------------ the app


def create_app(store_path: str, token: str | None, max_lookup_keys: int = 1000,
               default_schema: str = "public", *, fast_path: bool = True) -> FastAPI:
    """The lookup API over the data directory `store_path` (which may not exist yet).

    `fast_path` answers `GET /tables/{t}/rows/{k...}` in the edge middleware with the
    same function as the routed endpoint (`row_answer`), skipping the framework's
    per-request machinery; it changes speed, never answers.
    """
    store = Store(store_path, default_schema)
    index = RelationIndex(store)
    latency = LatencyRecorder()
    max_body = 65536 + 4096 * max_lookup_keys

    app = FastAPI(
        title="materializer lookup API", version=__version__,
        description="Latest row per primary key of materialized Kafka changelogs, and "
                    "events per key of streams. Read-only; see SPEC §7.")

    @app.get("/tables", response_model=TablesResponse, responses=_ERRORS, tags=["lookup"],
             summary="The tables and streams, with columns and keys")
    async def list_tables() -> Response:
        out = []
        for name in store.names():
            try:
                view = store.relation(name)
            except MaterializerError:
                continue
            ident = view.meta.identity
            out.append({"name": view.name, "kind": ident.get("kind"),
                        "columns": [{"name": c[0], "type": c[1], "not_null": bool(c[2])}
                                    for c in ident.get("columns", [])],
                        "key": list(view.key_columns)})
        return _json({"tables": out})

    @app.get("/tables/{table}/rows/{key:path}", response_model=Row, tags=["lookup"],
             summary="One row by primary key",
             description="One path segment per primary key column, in key order, typed by "
                         "the column (`/tables/shop.orders/rows/7/1001`). Percent-encode `/` "
                         "inside a string key as `%2F`.",
             responses={**_ERRORS, 404: {"model": ErrorBody,
                                         "description": "No such table, or no row with that "
                                                        "key."}})
    async def get_row(table: str, key: str, request: Request) -> Response:
        status, body = row_answer(index, table, raw_path(request.scope))
        return Response(body, status, media_type="application/json")

    @app.post("/tables/{table}/lookup", response_model=LookupResponse, tags=["lookup"],
              summary="Many rows by primary key, in the order asked",
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": LookupRequest.model_json_schema()}}}},
              responses={**_ERRORS, 413: {"model": ErrorBody,
                                          "description": "More keys than api.max_lookup_keys."}})
    async def lookup(table: str, request: Request) -> Response:
        try:
            rel = index.table(table)
        except MaterializerError as e:
            return _fail(e)
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > max_body:
            return _error(413, f"body larger than {max_body} bytes")
        body = await request.body()
        if len(body) > max_body:
            return _error(413, f"body larger than {max_body} bytes")
        try:
            obj = _loads(body)
        except (ValueError, RecursionError):
            return _error(400, 'the body is not JSON: send {"keys": [[k1, ...], ...]}')
        keys = obj.get("keys") if isinstance(obj, dict) else None
        if not isinstance(keys, list):
            return _error(400, 'send {"keys": [[k1, ...], ...]}: a list of keys')
        if len(keys) > max_lookup_keys:
            return _error(413, f"{len(keys)} keys asked, at most {max_lookup_keys} per request "
                               "(api.max_lookup_keys)")
        try:
            rows = rel.table.get_many(keys, json_form=True)
        except (MaterializerError, ValueError) as e:
            return _fail(e)
        return _json({"rows": rows})

    @app.get("/tables/{table}/rows", response_model=RowsPage, tags=["lookup"],
             summary="A page of rows in key order, optionally under a key prefix",
             description="`prefix` repeats, one value per leading key column. Pass the "
                         "`next` of a page as `after` to get the following page.")
    async def scan_rows(
            table: str,
            prefix: Annotated[list[str], Query(description="Leading key column values.")] = [],  # noqa: B006
            limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
            after: Annotated[str | None, Query(max_length=700,
                                               description="Cursor from `next`.")] = None,
    ) -> Response:
        try:
            rel = index.table(table)
            start = None if after is None else decode_cursor(after)
            view = rel.table
            pairs = view.scan_raw(rel.prefix_from_text(prefix), limit + 1, after=start)
        except (MaterializerError, ValueError) as e:
            return _fail(e)
        conv = view.layout.to_json
        nxt = encode_cursor(pairs[limit - 1][0]) if len(pairs) > limit else None
        return _json({"rows": [conv(v) for _, v in pairs[:limit]], "next": nxt})

    @app.get("/streams/{stream}/keys/{key:path}/events", response_model=EventsResponse,
             tags=["lookup"], summary="The newest events of a stream key",
             responses=_ERRORS)
    async def stream_events(
            stream: str, key: str, request: Request,
            limit: Annotated[int, Query(ge=1, le=MAX_EVENTS)] = DEFAULT_EVENTS) -> Response:
        try:
            rel = index.stream(stream)
            kt = rel.key_from_text(path_segments(raw_path(request.scope), 4, -1))
            events = rel.stream.events(kt, limit, json_form=True)
        except (MaterializerError, ValueError) as e:
            return _fail(e)
        return _json({"events": events})

    @app.get("/healthz", response_model=Health, tags=["operations"], summary="Alive")
    async def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/readyz", response_model=Readiness, tags=["operations"],
             summary="Caught up with every assigned partition",
             responses={503: {"model": Readiness, "description": "Not ready."}})
    async def readyz() -> Response:
        ready, reason = readiness(read_status(store_path))
        return _json({"ready": ready, "reason": reason}, 200 if ready else 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus text exposition",
             response_class=Response,
             responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}},
                              "description": "Prometheus text format 0.0.4."}})
    async def metrics() -> Response:
        exp = Exposition()
        stats = {}
        for name in store.names():
            try:
                stats[name] = store.relation(name).partition_stats()
            except MaterializerError:
                continue
        add_store_metrics(exp, stats)
        add_worker_metrics(exp, read_status(store_path))
        add_latency_metrics(exp, latency)
        return Response(exp.text(), media_type=CONTENT_TYPE)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err.get("loc", ()) if x not in ("query", "path"))
            parts.append(f"{loc}: {err.get('msg', 'invalid')}")
        return _error(400, "; ".join(parts) or "invalid request")

    app.openapi = _openapi_with_security(app, token is not None)  # type: ignore[method-assign]
    app.add_middleware(Edge, token=token, recorder=latency, open_paths=OPEN_PATHS,
                       rows=partial(row_answer, index) if fast_path else None)
    app.state.relations = index
    return app


def _openapi_with_security(app: FastAPI, secured: bool) -> Callable[[], dict[str, Any]]:
    """OpenAPI generation that also states the bearer token scheme when one is required."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version,
                             description=app.description, routes=app.routes)
        if secured:
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"}}
            for path, ops in schema.get("paths", {}).items():
                if path not in OPEN_PATHS:
                    for op in ops.values():
                        op["security"] = [{"bearer": []}]
        app.openapi_schema = schema
        return schema

    return openapi


# -------------------------------------------------------------------------- serving


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` to (host, port); ConfigError if it is neither."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"api.listen {listen!r} is not host:port (e.g. 127.0.0.1:8080)")
    return host.strip("[]") or "0.0.0.0", int(port)


def is_loopback(host: str) -> bool:
    """Whether `host` names only this machine (127.0.0.0/8, ::1 or localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen(catalog: Catalog, token: str | None) -> None:
    """Refuse (ConfigError, exit 2) to listen beyond loopback without a bearer token."""
    host, _ = parse_listen(catalog.api.listen)
    if token is None and not is_loopback(host):
        var = catalog.api.token_env
        why = (f"the environment variable {var} (api.token_env) is unset or empty" if var
               else "api.token_env is not set")
        raise ConfigError(
            f"api.listen {catalog.api.listen} is not a loopback address and no bearer token is "
            f"configured ({why}): set api.token_env to the name of an environment variable "
            "holding the token and export it, or listen on 127.0.0.1")


def serve(catalog: Catalog, token: str | None) -> None:
    """Serve the lookup API for `catalog` until SIGINT/SIGTERM (blocking, one process)."""
    import uvicorn  # noqa: PLC0415 - only the serving process needs it

    check_listen(catalog, token)
    host, port = parse_listen(catalog.api.listen)
    app = create_app(catalog.store_path, token, catalog.api.max_lookup_keys,
                     catalog.default_schema)
    log.info("lookup API on http://%s:%d (%s)", host, port,
             "bearer token required" if token else "no token")
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            server_header=False, proxy_headers=False, lifespan="off",
                            backlog=2048)
    uvicorn.Server(config).run()

"""The HTTP lookup API (SPEC §7): read-only, in its own process, beside the worker.

Entry points:
- `create_app(store_path, token, max_lookup_keys, default_schema)`: the ASGI app,
  for in-process use (tests, embedding);
- `materializer.api.serve.serve(catalog, token)`: blocking; what `materializer
  serve` calls (and `run` starts as a child process), with `check_listen` refusing a
  non-loopback `api.listen` without a token.

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
- `HEAD` of a path answers as its `GET` without the body (`materializer.api.edge`).

Handlers (`materializer.api.routes`) are `async` and read LMDB inline on the event
loop: a read is a few microseconds of memory-mapped access, cheaper than a hop to a
thread pool.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from materializer import __version__
from materializer.api.edge import Edge, EdgeApi, framework
from materializer.api.keys import RelationIndex
from materializer.api.metrics import LatencyRecorder
from materializer.api.operations import router as operations_router
from materializer.api.readiness import ready_answer
from materializer.api.routes import ApiState, bad_request, router
from materializer.cluster.router import ClusterRouter
from materializer.cluster.view import ClusterView
from materializer.store import Store
from materializer.versions.http import router as versions_router

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect",
                        "/redoc"})


def create_app(store_path: str, token: str | None, max_lookup_keys: int = 1000,
               default_schema: str = "public", *, fast_path: bool = True,
               api_process: str | None = None) -> FastAPI:
    """The lookup API over the data directory `store_path` (which may not exist yet).

    `fast_path` answers `GET /tables/{t}/rows/{k...}`, `/healthz` and `/readyz` in the
    edge (`materializer.api.edge`, in front of FastAPI and its middleware) with the same
    functions as the routed endpoints (`row_answer`, `ready_answer`), skipping the
    framework's per-request machinery; it changes speed, never answers. `api_process`
    labels this process's own series in `/metrics` (one of `api.processes` > 1: a scrape
    reaches any of them, whose counters would otherwise read as resets).
    """
    store = Store(store_path, default_schema)
    relations = RelationIndex(store)
    cluster = ClusterRouter(ClusterView(store_path), relations, token)  # materializer.cluster
    state = ApiState(store_path=store_path, store=store, relations=relations,
                     latency=LatencyRecorder(), token=token, max_lookup_keys=max_lookup_keys,
                     cluster=cluster, api_process=api_process)
    app = EdgeApi(
        title="materializer lookup API", version=__version__,
        description="Latest row per primary key of materialized Kafka changelogs, and "
                    "events per key of streams. Read-only; see SPEC §7.")
    app.state.api = state
    app.include_router(router)
    app.include_router(operations_router)  # healthz, readyz, metrics, cluster
    app.include_router(versions_router)  # snapshots and diffs (materializer.versions)
    app.add_exception_handler(RequestValidationError, bad_request)
    app.add_exception_handler(StarletteHTTPException, _allow_every_method)
    app.openapi = _openapi_with_security(app, token is not None)  # type: ignore[method-assign]
    app.edge = Edge(framework(app), token=token, recorder=state.latency, open_paths=OPEN_PATHS,
                    rows=cluster.fast_row if fast_path else None,
                    routed_rows=cluster.edge_row if fast_path else None,
                    ready=partial(ready_answer, store_path) if fast_path else None)
    return app


async def _allow_every_method(request: Request, exc: Exception) -> Response:
    """Starlette's HTTP errors, with a 405's `Allow` listing every method the path takes:
    Starlette names those of the first route matching the path only (`OPTIONS /snapshots`
    said `Allow: GET`, though POST is taken)."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        allowed: set[str] = set()
        routes = list(request.app.router.routes)
        while routes:
            route = routes.pop()
            included = getattr(route, "original_router", None)  # include_router's (0.165)
            if included is not None:
                routes.extend(included.routes)
                continue
            methods = getattr(route, "methods", None)
            if methods and route.matches(request.scope)[0] is not Match.NONE:
                allowed |= methods
        if "GET" in allowed:
            allowed.add("HEAD")  # answered as GET without the body (api.edge)
        if allowed:
            exc.headers = {**(exc.headers or {}), "Allow": ", ".join(sorted(allowed))}
    return await http_exception_handler(request, exc)


_ERROR_ANSWER = {"content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/ErrorBody"}}}}


def _openapi_with_security(app: FastAPI, secured: bool) -> Callable[[], dict[str, Any]]:
    """OpenAPI generation that also states the bearer token scheme when one is required
    (and its 401 on every endpoint that needs it), invalid input as the 400 it is
    (`bad_request`), not FastAPI's 422, and the JSON body (`ErrorBody`) of every error
    answer that does not state one (those of versions' endpoints)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version,
                             description=app.description, routes=app.routes)
        components = schema.setdefault("components", {})
        for path, ops in schema.get("paths", {}).items():
            for op in ops.values():
                answers = op.setdefault("responses", {})
                if answers.pop("422", None) is not None:  # invalid input: 400 (bad_request)
                    answers.setdefault("400", _ERROR_ANSWER | {"description": "Invalid input."})
                for code, answer in answers.items():  # every error is {"detail": ...}
                    if not code.startswith("2") and "content" not in answer:
                        answer.update(_ERROR_ANSWER)
                if secured and path not in OPEN_PATHS:
                    op["security"] = [{"bearer": []}]
                    answers.setdefault("401", _ERROR_ANSWER | {
                        "description": "Missing or wrong bearer token."})
        for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 body
            components.get("schemas", {}).pop(unused, None)
        if secured:
            components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        app.openapi_schema = schema
        return schema

    return openapi

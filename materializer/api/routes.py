"""The endpoints of the lookup API (SPEC §7), as module-level handlers on one router.

Each handler reads what it serves through the `ApiState` that `create_app` puts on
`app.state.api` (the store, the relation index, the latency recorder, the limits);
nothing here holds state of its own. Answers are JSON bytes built directly (no
per-request model validation); the response models only describe them in the
OpenAPI document.

Errors raised while serving map to statuses in one place (`failure`): `NotFound`
404, `UsageError` and `ValueError` 400, `AmbiguousKeyError` 409, `StoreError`,
`PartitionsNotHeld` and `MemberNotRunning` 503;
anything else is a bug and propagates (500).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from materializer.api.body import BodyRefused, lookup_json, read_body, typed_numbers
from materializer.api.keys import (
    RelationIndex,
    encode_cursor,
    path_segments,
    raw_path,
)
from materializer.api.metrics import (
    LatencyRecorder,
)
from materializer.api.models import (
    AsOf,
    ErrorBody,
    EventsResponse,
    LookupRequest,
    LookupResponse,
    Row,
    RowsPage,
    Stale,
    TablesResponse,
)
from materializer.errors import (
    AmbiguousKeyError,
    MaterializerError,
    MemberNotRunning,
    NotFound,
    PartitionsNotHeld,
    StoreError,
    UsageError,
    no_row_detail,
)
from materializer.store import Store

DEFAULT_PAGE, MAX_PAGE = 100, 1000
DEFAULT_EVENTS, MAX_EVENTS = 10, 1000


@dataclass(frozen=True, slots=True)
class ApiState:
    """What the handlers of one app serve from (`app.state.api`), built by `create_app`."""

    store_path: str
    store: Store
    relations: RelationIndex
    latency: LatencyRecorder
    token: str | None
    max_lookup_keys: int
    snapshot_indexes: dict[str, RelationIndex] = field(default_factory=dict)  # per as_of
    cluster: Any = None  # materializer.cluster.router.ClusterRouter: routing to other workers
    api_process: str | None = None  # with `api.processes` > 1: this process's metrics label

    @property
    def max_body(self) -> int:
        """The largest `POST .../lookup` body accepted (bytes), from `max_lookup_keys`."""
        return 65536 + 4096 * self.max_lookup_keys


def api_state(request: Request) -> ApiState:
    """The state of the app serving `request`."""
    state: ApiState = request.app.state.api
    return state


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


def failure(e: Exception) -> tuple[int, bytes]:
    """Status and body for an error raised while serving a request (anything else is a bug)."""
    if isinstance(e, NotFound):
        names = getattr(e, "snapshots", None)  # an absent snapshot: say which there are
        return 404, dumps({"detail": str(e)} if names is None else
                          {"detail": str(e), "snapshots": names})
    if isinstance(e, UsageError | ValueError):
        return 400, dumps({"detail": str(e)})
    if isinstance(e, StoreError | PartitionsNotHeld | MemberNotRunning):
        return 503, dumps({"detail": str(e)})
    if isinstance(e, AmbiguousKeyError):
        return 409, dumps({"detail": str(e)})
    raise e


def error_response(e: Exception) -> Response:
    """`failure` as a JSON response (the handlers here, the cluster router, versions)."""
    status, body = failure(e)
    return Response(body, status, media_type="application/json")


def relations_as_of(state: ApiState, as_of: str | None) -> RelationIndex:
    """The relation index of the live store, or of snapshot `as_of` (`?as_of=`; a
    NotFound that lists the snapshots if there is none). See `materializer.versions`."""
    if as_of is None:
        return state.relations
    indexes = state.snapshot_indexes
    try:
        store = state.store.at(as_of)
    finally:  # let go of the views of snapshots dropped since, as the store did: their
        if indexes:  # files stay mapped (their disk space in use) while a view holds them
            held = state.store.open_snapshots()
            for name in [n for n, i in indexes.items() if held.get(n) is not i.store]:
                del indexes[name]
    index = indexes.get(as_of)
    if index is None:
        if len(indexes) >= 1000:
            indexes.clear()
        index = indexes[as_of] = RelationIndex(store)
    return index


def sent_name(request: Request, name: str) -> None:
    """NotFound unless the request path as sent (percent-encoded) names relation `name` in
    its third segment: the framework matches the decoded path, where a `%2F` inside the name
    moves the segments (`/tables/t%2Frows%2F5/rows/1` names table `t/rows/5`, not `t`)."""
    try:
        sent = path_segments(raw_path(request.scope), 2, 3)
    except UsageError:
        sent = []
    if sent != [name]:
        raise NotFound(f"no table or stream named {(sent or [name])[0]!r}")


def strict_prefix(request: Request, prefix: list[str]) -> list[str]:
    """The `prefix=` values read again from the raw query string, decoded as UTF-8 strictly
    (the framework replaces what is not UTF-8 by U+FFFD, a key that may exist); UsageError
    for a value that is not UTF-8 after percent-decoding, as for path segments."""
    query = request.scope.get("query_string") or b""
    if not prefix or (query.isascii() and b"%" not in query):
        return prefix
    out = []
    for part in query.split(b"&"):
        name, _, value = part.partition(b"=")
        if unquote_to_bytes(name.replace(b"+", b" ")) != b"prefix":
            continue
        try:
            out.append(unquote_to_bytes(value.replace(b"+", b" ")).decode("utf-8"))
        except UnicodeDecodeError:
            raise UsageError("a prefix value is not UTF-8 after percent-decoding") from None
    return out


def row_answer(index: RelationIndex, table: str, raw_path: bytes, whole: bool = True
               ) -> tuple[int, bytes]:
    """`GET /tables/{table}/rows/{k1}/...`: status and JSON body (the row, or why not).

    The routed endpoint and the edge fast path both answer with this function. `whole`:
    the answer speaks for the whole table (not, as a forwarded one, for the partitions
    it covered), so a miss while partitions are not held here is 503 (PartitionsNotHeld).
    """
    try:
        rel = index.table(table)
        kt = rel.key_from_text(path_segments(raw_path, 4))
        row = rel.table.get(kt, json_form=True, held_only=not whole)
    except (MaterializerError, ValueError) as e:
        return failure(e)
    if row is None:
        return 404, dumps({"detail": no_row_detail(rel.view.name)})
    return 200, dumps(row)


# ------------------------------------------------------------------------ handlers

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The key, prefix, cursor or body does not fit."},
    401: {"model": ErrorBody, "description": "Missing or wrong bearer token."},
    404: {"model": ErrorBody, "description": "No such table or stream (or row)."},
    409: {"model": ErrorBody, "description": "A key asked for is held by more than one "
          "partition of the table: which row is the latest cannot be told."},
    503: {"model": ErrorBody, "description": "The store cannot be read, or partitions of "
          "the relation are not held here (yet)."},
}

router = APIRouter()


def _column_info(column: list[Any], encoding: str | None) -> dict[str, Any]:
    """A column as `GET /tables` lists it: name, type text, NOT NULL, and the input
    `encoding` it declares (the type text leaves it out) unless it is the default or is
    its items' (an array's or map's)."""
    info = {"name": column[0], "type": column[1], "not_null": bool(column[2])}
    if encoding and "<" not in encoding:
        info["encoding"] = encoding
    return info


@router.get("/tables", response_model=TablesResponse, responses=_ERRORS, tags=["lookup"],
            summary="The tables and streams, with columns and keys")
async def list_tables(request: Request) -> Response:
    store = api_state(request).store
    out = []
    for name in store.names():
        try:
            view = store.relation(name)
        except MaterializerError:
            continue
        ident = view.meta.identity
        encodings = (ident.get("rules") or {}).get("encodings") or {}
        out.append({"name": view.name, "kind": ident.get("kind"),
                    "columns": [_column_info(c, encodings.get(c[0]))
                                for c in ident.get("columns", [])],
                    "key": list(view.key_columns)})
    return _json({"tables": out})


@router.get("/tables/{table}/rows/{key:path}", response_model=Row, tags=["lookup"],
            summary="One row by primary key",
            description="One path segment per primary key column, in key order, typed by "
                        "the column (`/tables/shop.orders/rows/7/1001`). Percent-encode `/` "
                        "inside a string key as `%2F`.",
            responses={**_ERRORS, 404: {"model": ErrorBody,
                                        "description": "No such table, or no row with that "
                                                       "key."}})
async def get_row(table: str, key: str, request: Request, as_of: AsOf = None,
                  stale: Stale = None) -> Response:
    try:
        sent_name(request, table)
        index = relations_as_of(api_state(request), as_of)
    except MaterializerError as e:
        return error_response(e)
    cluster = api_state(request).cluster
    if cluster is not None and as_of is None:  # another worker may own the key
        routed: Response | None = await cluster.row(request, table)
        if routed is not None:
            return routed
    status, body = row_answer(index, table, raw_path(request.scope))
    return Response(body, status, media_type="application/json")


@router.post("/tables/{table}/lookup", response_model=LookupResponse, tags=["lookup"],
             summary="Many rows by primary key, in the order asked",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": LookupRequest.model_json_schema()}}}},
             responses={**_ERRORS, 413: {"model": ErrorBody, "description": "More keys than "
                                         "api.max_lookup_keys, or a body larger than they "
                                         "take."},
                        408: {"model": ErrorBody, "description": "The body did not arrive "
                                                                 "whole within 30 s."}})
async def lookup(table: str, request: Request, as_of: AsOf = None,
                 stale: Stale = None) -> Response:
    state = api_state(request)
    max_body, max_keys = state.max_body, state.max_lookup_keys
    try:
        sent_name(request, table)
        rel = relations_as_of(state, as_of).table(table)
    except MaterializerError as e:
        return error_response(e)
    try:
        obj = lookup_json(await read_body(request, max_body), _loads)
    except BodyRefused as e:  # too large, late, cut short, not JSON, a member twice
        return _error(e.status, e.detail)
    keys = obj.get("keys") if isinstance(obj, dict) else None
    if not isinstance(keys, list):
        return _error(400, 'send {"keys": [[k1, ...], ...]}: a list of keys')
    if len(keys) > max_keys:
        return _error(413, f"{len(keys)} keys asked, at most {max_keys} per request "
                           "(api.max_lookup_keys)")
    try:
        keys = typed_numbers(keys, rel.view.key_types)  # never rounded to another key
    except UsageError as e:
        return error_response(e)
    if state.cluster is not None and as_of is None:  # split by owner, merged in order
        routed: Response | None = await state.cluster.lookup(request, rel, keys)
        if routed is not None:
            return routed
    try:
        rows = rel.table.get_many(keys, json_form=True)  # a miss while not all held: 503
    except (MaterializerError, ValueError) as e:
        return error_response(e)
    return _json({"rows": rows})


@router.get("/tables/{table}/rows", response_model=RowsPage, tags=["lookup"],
            summary="A page of rows in key order, optionally under a key prefix",
            responses=_ERRORS,
            description="`prefix` repeats, one value per leading key column. Pass the "
                        "`next` of a page as `after` to get the following page.")
async def scan_rows(
        table: str,
        request: Request,
        prefix: Annotated[list[str], Query(description="Leading key column values.")] = [],  # noqa: B006
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
        after: Annotated[str | None, Query(max_length=700,
                                           description="Cursor from `next`.")] = None,
        as_of: AsOf = None,
) -> Response:
    try:
        sent_name(request, table)
        prefix = strict_prefix(request, prefix)
    except MaterializerError as e:
        return error_response(e)
    cluster = api_state(request).cluster
    if cluster is not None and as_of is None:  # merged in key order across the owners
        routed: Response | None = await cluster.scan(request, table, prefix, limit, after)
        if routed is not None:
            return routed
    try:
        rel = relations_as_of(api_state(request), as_of).table(table)
        typed = rel.prefix_from_text(prefix)
        start = rel.page_start(after, typed)
        view = rel.table
        pairs = view.scan_raw(typed, limit + 1, after=start)
        view.require_held()  # not a page without their rows: 503
    except (MaterializerError, ValueError) as e:
        return error_response(e)
    conv = view.layout.to_json
    nxt = encode_cursor(pairs[limit - 1][0]) if len(pairs) > limit else None
    return _json({"rows": [conv(v) for _, v in pairs[:limit]], "next": nxt})


@router.get("/streams/{stream}/keys/{key:path}/events", response_model=EventsResponse,
            tags=["lookup"], summary="The newest events of a stream key",
            responses=_ERRORS)
async def stream_events(
        stream: str, key: str, request: Request,
        limit: Annotated[int, Query(ge=1, le=MAX_EVENTS)] = DEFAULT_EVENTS,
        as_of: AsOf = None) -> Response:
    try:
        sent_name(request, stream)
    except MaterializerError as e:
        return error_response(e)
    cluster = api_state(request).cluster
    if cluster is not None and as_of is None:  # the key's owner, or every owner
        routed: Response | None = await cluster.events(request, stream, limit)
        if routed is not None:
            return routed
    try:
        rel = relations_as_of(api_state(request), as_of).stream(stream)
        kt = rel.key_from_text(path_segments(raw_path(request.scope), 4, -1))
        events = rel.stream.events(kt, limit, json_form=True)  # none while not all held: 503
    except (MaterializerError, ValueError) as e:
        return error_response(e)
    return _json({"events": events})


async def bad_request(request: Request, exc: Exception) -> Response:
    """Request validation errors (path, query) as 400 with every problem, not FastAPI's 422."""
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err.get("loc", ()) if x not in ("query", "path"))
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return _error(400, "; ".join(parts) or "invalid request")

"""The HTTP endpoints of versions (SPEC §7 conventions: JSON, cursor paging, 4xx for bad input).

    GET    /snapshots                         the snapshots (manifests), oldest first
    POST   /snapshots {"name", "tables"?}     take one: 201 its manifest, 409 name taken
    DELETE /snapshots/{name}                  drop one
    GET    /tables/{table}/diff?from=A&to=B   a page of the keyed diff (TO: live if absent)
    GET    /streams/{stream}/diff?from=A&to=B the same for a stream's events

`?as_of=NAME` on the row, lookup, scan and events endpoints is in `materializer.api.routes`
(`relations_as_of`). An absent snapshot is 404 with `{"detail": ..., "snapshots": [names]}`.

Paging is as for scans: `limit` (default 100, at most 1000), `next` is the cursor of the
last change returned, passed back as `after`; null on the last page. A page reads both
versions in one read transaction each, and walks them until it has `limit` changes (or
the end), so a page of a sparse diff may read many unchanged rows.

A snapshot is taken by a child process (`materializer.versions.child`), awaited without
blocking the event loop: this process keeps answering lookups meanwhile.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from materializer.api.body import BodyRefused, read_body, refuse_duplicate_members
from materializer.api.keys import check_relation_name
from materializer.api.models import DiffPage, Dropped, Snapshot, SnapshotsResponse
from materializer.api.routes import (
    DEFAULT_PAGE,
    MAX_PAGE,
    api_state,
    dumps,
    error_response,
    sent_name,
)
from materializer.errors import MaterializerError, NotFound, UsageError
from materializer.versions.child import command, run_async
from materializer.versions.diff import RelationDiff
from materializer.versions.paths import check_name, drop_snapshot, list_snapshots

router = APIRouter()


def _json(body: Any, status: int = 200) -> Response:
    return Response(dumps(body), status, media_type="application/json")



_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,700}")
_CURSOR_BYTES = 520  # a stream's position: its stored key (at most 511) + partition + index
_ERROR_STATUS = {"exists": 409, "not_found": 404, "usage": 400, "failed": 503}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "A malformed name, body, limit or cursor."},
    401: {"description": "Missing or wrong bearer token."},
    404: {"description": "No such snapshot (the body lists the snapshots), table or stream."},
    503: {"description": "The store cannot be read."},
}
_DIFF_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS, 409: {"description": "A key is held by more than one partition of the table."}}


def encode_position(pos: bytes) -> str:
    return base64.urlsafe_b64encode(pos).rstrip(b"=").decode("ascii")


def decode_position(cursor: str) -> bytes:
    """The diff position a cursor names; UsageError if it is not one."""
    bad = "malformed cursor: pass back the `next` value of the previous page"
    if not _CURSOR.fullmatch(cursor):
        raise UsageError(bad)
    try:
        pos = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise UsageError(bad) from None
    if not pos or len(pos) > _CURSOR_BYTES:
        raise UsageError(bad)
    return pos


# ----------------------------------------------------------------------- snapshots


@router.get("/snapshots", response_model=SnapshotsResponse, tags=["versions"],
            summary="The snapshots, oldest first",
            description="Each with its time, the tables and streams it holds, per partition "
                        "the next offset to apply (every record below it is in the snapshot), "
                        "rows and bytes.", responses=_ERRORS)
async def get_snapshots(request: Request) -> Response:
    try:
        manifests = list_snapshots(api_state(request).store_path)
    except MaterializerError as e:
        return error_response(e)
    return _json({"snapshots": [m.to_json() for m in manifests]})


@router.post("/snapshots", status_code=201, response_model=Snapshot, tags=["versions"],
             summary="Take a consistent snapshot of every table (or of `tables`)",
             description="Every table at one instant, with the applied offset of every "
                         "partition, while the worker keeps ingesting. Answers when the "
                         "snapshot is listed.",
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": {"type": "object", "required": ["name"], "properties": {
                     "name": {"type": "string"},
                     "tables": {"type": "array", "items": {"type": "string"}}}}}}}},
             responses={**_ERRORS, 409: {"description": "A snapshot of that name exists."},
                        413: {"description": "A body larger than 65536 bytes."},
                        408: {"description": "The body did not arrive whole within 30 s."},
                        503: {"description": "The snapshot could not be taken."}})
async def post_snapshot(request: Request) -> Response:
    state = api_state(request)
    try:
        body = await read_body(request, 65536)
    except BodyRefused as e:
        return _json({"detail": e.detail}, e.status)
    try:
        obj = json.loads(body)
        refuse_duplicate_members(body)  # {"name": "a", "name": "b"}: which one?
    except (ValueError, RecursionError):
        obj = None
    except BodyRefused as e:
        return _json({"detail": e.detail}, e.status)
    name = obj.get("name") if isinstance(obj, dict) else None
    tables = obj.get("tables", ()) if isinstance(obj, dict) else None
    unknown = sorted(set(obj) - {"name", "tables"}) if isinstance(obj, dict) else []
    if not isinstance(name, str) or unknown or not (tables == () or (
            isinstance(tables, list) and tables and all(isinstance(t, str) for t in tables))):
        # "tables": null or [] would be every table, a misspelt key ignored likewise
        told = f" (unknown: {', '.join(map(repr, unknown))[:200]})" if unknown else ""
        return _json({"detail": 'send {"name": "<snapshot name>"} and optionally "tables": '
                                f'["<table>", ...] (one or more; leave it out for all){told}'},
                     400)
    tables = tables or None
    try:
        check_name(name)
        for table in tables or ():  # arguments of the snapshot process: names, never options
            check_relation_name(table)
    except (UsageError, NotFound) as e:
        return error_response(e)
    outcome = await run_async(command(state.store_path, name, tables,
                                      default_schema=state.store.default_schema))
    if outcome.result is not None:
        return _json(outcome.result["snapshot"], 201)
    status = _ERROR_STATUS.get(outcome.error or "failed", 503)
    answer: dict[str, Any] = {"detail": outcome.detail}
    if outcome.snapshots:
        answer["snapshots"] = list(outcome.snapshots)
    return _json(answer, status)


@router.delete("/snapshots/{name}", response_model=Dropped, tags=["versions"],
               summary="Drop a snapshot", responses=_ERRORS)
async def delete_snapshot(name: str, request: Request) -> Response:
    try:
        drop_snapshot(api_state(request).store_path, name)
    except MaterializerError as e:
        return error_response(e)
    return _json({"dropped": name})


# -------------------------------------------------------------------------- diffs


async def _diff_page(kind: str, name: str, request: Request, from_: str, to: str | None,
                     limit: int, after: str | None) -> Response:
    state = api_state(request)
    try:
        sent_name(request, name)
        start = None if after is None else decode_position(after)
        with RelationDiff(state.store_path, name, from_, to,
                          state.store.default_schema) as diff:
            if diff.kind != kind:
                where = "tables" if diff.kind == "table" else "streams"
                raise NotFound(f"{diff.name} is a {diff.kind}: its diff is at "
                               f"/{where}/{name}/diff")
            if start is not None:
                diff.check_position(start)  # 400, never an empty page that reads as the end
            page = []
            for ch in diff.changes(start):
                page.append(ch)
                if len(page) > limit:
                    break
            entries = [diff.entry(ch) for ch in page[:limit]]
    except (MaterializerError, ValueError) as e:
        return error_response(e)
    nxt = encode_position(page[limit - 1].pos) if len(page) > limit else None
    return _json({"diff": entries, "next": nxt})


_FROM = Query(alias="from", max_length=128, description="A snapshot name.")
_TO = Query(max_length=128, description="A snapshot name; the live table if absent.")
_LIMIT = Query(ge=1, le=MAX_PAGE)
_AFTER = Query(max_length=700, description="Cursor from `next`.")


@router.get("/tables/{table}/diff", response_model=DiffPage, tags=["versions"],
            summary="A page of the keyed diff of a table between two versions",
            description="One entry per key whose row differs, in key order: `diff_type` "
                        "`added` | `removed` | `modified`, `key`, `from` and `to` rows, and "
                        "`changed` (the columns that differ) for `modified`.",
            responses=_DIFF_ERRORS)
async def table_diff(table: str, request: Request,
                     from_: Annotated[str, _FROM],
                     to: Annotated[str | None, _TO] = None,
                     limit: Annotated[int, _LIMIT] = DEFAULT_PAGE,
                     after: Annotated[str | None, _AFTER] = None) -> Response:
    return await _diff_page("table", table, request, from_, to, limit, after)


@router.get("/streams/{stream}/diff", response_model=DiffPage, tags=["versions"],
            summary="A page of the events added and removed between two versions of a stream",
            description="Events in one version only, by (key, partition, offset): "
                        "`diff_type` `added` | `removed`, `key`, `partition`, `offset`, "
                        "`timestamp`, `value`.", responses=_DIFF_ERRORS)
async def stream_diff(stream: str, request: Request,
                      from_: Annotated[str, _FROM],
                      to: Annotated[str | None, _TO] = None,
                      limit: Annotated[int, _LIMIT] = DEFAULT_PAGE,
                      after: Annotated[str | None, _AFTER] = None) -> Response:
    return await _diff_page("stream", stream, request, from_, to, limit, after)

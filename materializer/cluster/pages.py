"""Prefix scans (paging) and stream events across the owners of a relation's partitions.

Guarantees (with those of `router`):
- A page is the first `limit` rows after the cursor in key order, merged from every owner
  (each returns its own first `limit` after the cursor, with each row's key); a key two
  owners both answered (a partition moving between two reads) appears once. `next` is
  the key of the page's last row when any owner has more, so the cursor is a position in
  key order: valid across pages, workers and rebalances.
- A page, or "no events", is answered only when the owners asked covered every partition
  together; otherwise 503 with Retry-After.
- Stream events are asked of every owner (one key's events may be in several partitions:
  producers that partition differently, a topic whose partition count grew) and merged
  newest first (by event time, then offset), as one worker orders them; an event two owners
  both answered (a partition moving between them) counts once. The answer needs every
  partition covered, else 503: the owner of the key's partition alone would leave out the
  events the others hold, and those may be the newest.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import Response

from materializer.api.keys import (
    ApiRelation,
    decode_cursor,
    encode_cursor,
    path_segments,
    raw_path,
)
from materializer.cluster.forward import FORWARDED, Answer, stream_path, table_path
from materializer.errors import MaterializerError

if TYPE_CHECKING:
    from materializer.cluster.router import ClusterRouter, Target


def local_page(rel: ApiRelation, prefix: list[str], limit: int, after: str | None
               ) -> dict[str, Any]:
    """This store's first `limit` rows after `after` under `prefix`, with their keys (as
    cursors) and whether it has more."""
    typed = rel.prefix_from_text(prefix)
    start = rel.page_start(after, typed)
    view = rel.table
    pairs = view.scan_raw(typed, limit + 1, after=start)
    conv = view.layout.to_json
    return {"rows": [conv(v) for _, v in pairs[:limit]],
            "keys": [encode_cursor(k) for k, _ in pairs[:limit]],
            "more": len(pairs) > limit,
            "next": encode_cursor(pairs[limit - 1][0]) if len(pairs) > limit else None}


def _uncovered(t: Target, covered: set[int]) -> Response | None:
    from materializer.cluster.router import unavailable  # noqa: PLC0415

    every = t.every
    if every and covered >= every:
        return None
    missing = sorted(every - covered) if every else []
    what = (f"partition(s) {', '.join(map(str, missing))} of {t.name} have no live owner "
            "that answered" if missing else "the partition count of the topic is unknown")
    return unavailable(f"cannot answer from every partition: {what} (a rebalance or a worker "
                       "failure; retry shortly)")


async def route_scan(router: ClusterRouter, request: Request, table: str, prefix: list[str],
                     limit: int, after: str | None) -> Response | None:
    """`GET /tables/{t}/rows?prefix=&limit=&after=` across the owners."""
    from materializer.api.routes import error_response  # noqa: PLC0415
    from materializer.cluster.router import CONFLICT, json_response  # noqa: PLC0415

    try:
        rel = router.relations.table(table)
        rel.page_start(after, rel.prefix_from_text(prefix))  # 400 here, not 503 from owners
        if FORWARDED in request.headers:
            return router._answer_locally(rel, local_page(rel, prefix, limit, after))
        t = router.target(rel)
        if t is None:
            return None
        mine = local_page(rel, prefix, limit, after) \
            if any(m is t.me for m in t.owners.values()) else None
    except (MaterializerError, ValueError) as e:
        return error_response(e)
    others = [m for m in t.owner_members() if m.id != t.me.id]
    params: list[tuple[str, Any]] = [("prefix", v) for v in prefix] + [("limit", limit)]
    if after is not None:
        params.append(("after", after))
    answers: list[Answer] = list(await asyncio.gather(*[
        router.forwarder.call(m, "GET", table_path(t.name, "rows"), params=params, what="scan")
        for m in others]))
    pages: list[dict[str, Any]] = []
    covered: set[int] = set()
    if mine is not None:
        pages.append(mine)
        covered |= router.local_covered(rel, t)
    for ans in answers:
        if ans.status == CONFLICT:  # a key held by two partitions of an owner: said as is
            return Response(ans.raw, CONFLICT, media_type="application/json")
        body = ans.body
        if ans.ok and ans.status == 200 and isinstance(body, dict) \
                and isinstance(body.get("keys"), list) \
                and len(body["keys"]) == len(body.get("rows") or []):
            pages.append(body)
            covered |= ans.covered
    problem = _uncovered(t, covered)
    if problem is not None:
        return problem
    merged: dict[bytes, Any] = {}
    for page in pages:
        for cursor, row in zip(page["keys"], page["rows"], strict=True):
            merged.setdefault(decode_cursor(cursor), row)
    order = sorted(merged)
    more = len(order) > limit or any(page.get("more") for page in pages)
    nxt = encode_cursor(order[limit - 1]) if more and len(order) >= limit else None
    return json_response({"rows": [merged[k] for k in order[:limit]], "next": nxt})


def stamped_events(rel: ApiRelation, key: tuple[Any, ...], limit: int
                   ) -> list[tuple[int, int, int, Any]]:
    """This store's newest `limit` events of `key` as (event time, offset, partition,
    value), as `StreamView.events` chooses them: the `limit` most recently appended events
    of each partition, newest first by event time (then offset, then the lower partition)."""
    per_partition: dict[int, list[dict[str, Any]]] = {}
    # offset order in a partition
    for e in rel.stream.scan(key, None, json_form=True, held_only=True):
        per_partition.setdefault(e["partition"], []).append(e)
    events = [e for appended in per_partition.values() for e in appended[-limit:]]
    events.sort(key=lambda e: (e["timestamp"], e["offset"], -e["partition"]), reverse=True)
    return [(e["timestamp"], e["offset"], e["partition"], e["value"])
            for e in events[:limit]]


async def route_events(router: ClusterRouter, request: Request, stream: str, limit: int
                       ) -> Response | None:
    """`GET /streams/{s}/keys/{k...}/events?limit=` across the owners: every owner, as one
    key's events may be in any partition (see the module doc)."""
    from materializer.api.routes import error_response  # noqa: PLC0415
    from materializer.cluster.router import json_response  # noqa: PLC0415

    path = raw_path(request.scope)
    try:
        rel = router.relations.stream(stream)
        key = rel.key_from_text(path_segments(path, 4, -1))
        if FORWARDED in request.headers:
            got = stamped_events(rel, key, limit)
            return router._answer_locally(rel, {"events": [v for _, _, _, v in got],
                                                "order": [[ts, o, p] for ts, o, p, _ in got]})
        t = router.target(rel)
        if t is None:
            return None
    except (MaterializerError, ValueError) as e:
        return error_response(e)
    key_raw = b"/".join(path.split(b"/")[4:-1])  # as sent: stream_path re-encodes it
    # (event time, offset, -partition, value) by ("p", partition, offset), so that an event
    # two owners both answered counts once; an answer without partitions (an older
    # worker's) apart, as partition 0
    found: dict[tuple[Any, ...], tuple[int, int, int, Any]] = {}
    covered: set[int] = set()
    owners = t.owner_members()
    remote = [m for m in owners if m.id != t.me.id]
    answers = await asyncio.gather(*[
        router.forwarder.call(m, "GET", stream_path(t.name, key_raw),
                              params={"limit": limit}, what="events") for m in remote])
    for i, ans in enumerate(answers):
        body = ans.body
        if ans.ok and ans.status == 200 and isinstance(body, dict) \
                and isinstance(body.get("order"), list) \
                and len(body["order"]) == len(body.get("events") or []):
            covered.update(ans.covered)
            for n, (stamp, v) in enumerate(zip(body["order"], body["events"], strict=True)):
                ts, o = int(stamp[0]), int(stamp[1])
                p = int(stamp[2]) if len(stamp) > 2 else 0
                ident = ("p", p, o) if len(stamp) > 2 else ("answer", i, n)
                found.setdefault(ident, (ts, o, -p, v))
    if any(m.id == t.me.id for m in owners):
        for ts, o, p, v in stamped_events(rel, key, limit):
            found.setdefault(("p", p, o), (ts, o, -p, v))
        covered.update(router.local_covered(rel, t))
    problem = _uncovered(t, covered)
    if problem is not None:
        return problem
    # newest first by event time, then offset, then partition (lowest first), as
    # StreamView.events: whichever worker is asked, in whatever order the owners answered
    merged = sorted(found.values(), key=lambda e: (e[0], e[1], e[2]), reverse=True)
    return json_response({"events": [v for _, _, _, v in merged[:limit]]})

"""Any worker answers any key (SPEC §7): lookups answered locally or forwarded to the owner.

For each lookup the API finds the key's partition (`partitioning`), and its owner in the
routing table (`view`): its own partitions it reads from its store, the others it asks
their owner (`forward`), at most one hop (a forwarded request is answered from the
receiver's own partitions, never forwarded again).

Guarantees (never a silently wrong answer):
- A row is answered only from a store that served the row's partition when it was read
  (owned by that worker, not revoked).
- "Absent" (404, null, no events) is answered only when the owners asked covered every
  partition of the topic between them: a producer that used another partitioner than the
  one declared costs a round of questions, never a wrong 404. With `partitioner: unknown`
  (or a key whose bytes are not known) every owner is asked at once.
- Otherwise, a partition without a live owner answering (a rebalance, a dead worker not
  yet replaced), the answer is 503 with `Retry-After` (or, with `?stale=ok`, a standby's
  copy; see `standby`).
- Batch lookups are split by owner and merged in the order asked; scans merge every
  owner's rows in key order, and the cursor (a key) stays valid across pages and
  rebalances.
- With no cluster (no worker beside the API, or one that owns every partition, or a
  replicated table) every handler returns None and the API answers as it always did
  (`row` answers itself, with the same bytes). A forwarded request is answered with the
  partitions it covered even then: a miss there is an authoritative 404 for the asker.
- A forwarded request names the same relation and key: its path is re-encoded segment by
  segment (`forward.encoded_path`; `.` and `..` as `%2E`, `%2E%2E`) and sent verbatim.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from materializer.api.keys import ApiRelation, RelationIndex, path_segments, raw_path
from materializer.api.routes import dumps, error_response, row_answer
from materializer.cluster.forward import (
    COVERED,
    FORWARDED,
    MEMBER,
    STANDBY_LAG,
    Answer,
    Forwarder,
    covered_header,
    encoded_path,
    table_path,
)
from materializer.cluster.partitioning import Partitioning
from materializer.cluster.record import Member
from materializer.cluster.routing import Routing
from materializer.cluster.view import ClusterView
from materializer.errors import AmbiguousKeyError, MaterializerError, no_row_detail

RETRY_AFTER = "1"
CONFLICT = 409
"""An owner's answer for a key it holds in more than one partition (AmbiguousKeyError):
passed on, never taken for a miss."""


def _stale(request: Request) -> bool:
    """Whether the caller accepts a standby's copy (`?stale=ok`)."""
    return request.query_params.get("stale") == "ok"


@dataclass(frozen=True, slots=True)
class Target:
    """One relation as the routing table has it now."""

    name: str
    partitions: int | None
    owners: dict[int, Member]
    me: Member
    partitioning: Partitioning
    exact: bool
    routing: Routing
    whole: bool = False  # this worker owns every partition (see `ClusterRouter.target`)

    @property
    def every(self) -> frozenset[int]:
        return frozenset(range(self.partitions or 0))

    def owner_members(self) -> list[Member]:
        """Each member owning a partition, once (this worker first)."""
        seen: dict[str, Member] = {}
        for m in sorted(self.owners.values(), key=lambda m: m.id != self.me.id):
            seen.setdefault(m.id, m)
        return list(seen.values())

    def partition(self, key: Sequence[Any]) -> int | None:
        return self.partitioning.partition(key, self.partitions)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> Response:
    return Response(dumps(body), status, headers=headers, media_type="application/json")


def unavailable(detail: str) -> Response:
    """503 with Retry-After: the answer depends on a partition no live owner answered for."""
    return json_response({"detail": detail}, 503, {"retry-after": RETRY_AFTER})


def _detail(raw: bytes) -> str:
    """The `detail` of an error answer's JSON body, else its text."""
    try:
        return str(json.loads(raw)["detail"])
    except (ValueError, TypeError, KeyError):
        return raw[:500].decode("utf-8", "replace")


class ClusterRouter:
    """The cluster side of the lookup API (see the module doc); one per app."""

    def __init__(self, view: ClusterView, relations: RelationIndex, token: str | None) -> None:
        self.view = view
        self.relations = relations
        self.forwarder = Forwarder(token, view.forward_timeout)
        self._parts: dict[tuple[str, str, str], Partitioning] = {}
        self._targets: dict[str, tuple[Routing | None, Target | None]] = {}

    # ------------------------------------------------------------ the table

    def target(self, rel: ApiRelation) -> Target | None:
        """The relation in the routing table, or None when this worker answers it alone:
        it owns every partition and its store serves them all (a partition it was just
        given and is still catching up on is marked revoked there: its keys answer 503
        through the routed path, never "absent" from the store)."""
        routing = self.view.routing()
        name = rel.view.name
        cached = self._targets.get(name)
        if cached is not None and cached[0] is routing:
            t = cached[1]
        else:
            t = self._target(rel, routing)
            self._targets[name] = (routing, t)
        if t is not None and t.whole and not rel.view.revoked_partitions() & t.every:
            return None
        return t

    def _target(self, rel: ApiRelation, routing: Routing | None) -> Target | None:
        me = routing.me if routing is not None else None
        if routing is None or me is None:
            return None
        name = rel.view.name
        st = routing.state(name)
        if st is None or st.replicated:
            return None
        owners = routing.owners(name)
        n = st.partitions
        whole = n is not None and all(owners.get(p) is me for p in range(n))
        self.forwarder.sender = me.id
        self.forwarder.timeout = self.view.forward_timeout
        key = (name, st.partitioner, st.key_format)
        part = self._parts.get(key)
        if part is None:
            part = self._parts[key] = Partitioning(
                st.partitioner, st.key_format, rel.view.key_columns,
                [t.kind for t in rel.view.key_types])
        return Target(name, n, owners, me, part, st.exact_keys and part.exact, routing, whole)

    def local_covered(self, rel: ApiRelation, t: Target | None) -> frozenset[int]:
        """The partitions this worker's store answered for (asked after the read): its
        assignment, less what the store has marked revoked since."""
        routing = t.routing if t is not None else self.view.routing()
        me = routing.me if routing is not None else None
        st = me.relations.get(rel.view.name) if me is not None else None
        if st is None:
            return frozenset()
        if st.replicated:
            return frozenset(range(st.partitions or 0))
        return frozenset(st.assigned) - rel.view.revoked_partitions()

    def _owned_here(self, rel: ApiRelation, path: bytes) -> bool:
        """Whether the key of a forwarded row read (`path`) is in a partition this worker
        owns by its own routing now: a worker that lost its partitions (frozen past its
        session, see materializer.cluster.agent) may still hold their rows unrevoked,
        while a member whose view of it lags still forwards to it."""
        t = self.target(rel)
        if t is None:
            return True  # it answers the whole relation alone
        p = t.partition(rel.table.key_tuple(rel.key_from_text(path_segments(path, 4))))
        return p is None or p in self.local_covered(rel, None)

    def _answer_locally(self, rel: ApiRelation, body: Any, status: int = 200,
                        raw: bytes | None = None) -> Response:
        """A forwarded request's answer: this worker's partitions only, saying which."""
        me = self.view.settings.get("self")
        headers = {COVERED: covered_header(self.local_covered(rel, None)), MEMBER: str(me or "")}
        if raw is not None:
            return Response(raw, status, headers=headers, media_type="application/json")
        return json_response(body, status, headers)

    # ------------------------------------------------------------ rows by key

    async def row(self, request: Request, table: str) -> Response | None:
        """`GET /tables/{t}/rows/{k...}`: a hit at the key's owner is passed on as it came
        (the owner answers it on its fast path); anything else is `resolve`d."""
        path = raw_path(request.scope)
        try:
            rel = self.relations.table(table)
            if FORWARDED in request.headers:  # this worker's partitions, saying which
                status, body = row_answer(self.relations, table, path, whole=False)
                if status == 200 and not self._owned_here(rel, path):
                    return self._answer_locally(rel, {"detail": (
                        f"the key's partition of {rel.view.name} is not this worker's now "
                        "(it may have been given to another worker)")}, 503)
                return self._answer_locally(rel, None, status, raw=body)
            key = rel.key_from_text(path_segments(path, 4))
            kt = rel.table.key_tuple(key)
        except (MaterializerError, ValueError):
            return None  # the standalone path says what is wrong
        t = self.target(rel)
        if t is None:  # this worker answers alone (a miss `fast_row` left to this handler)
            status, body = row_answer(self.relations, table, path)
            return Response(body, status, media_type="application/json")
        stale = _stale(request)
        p = t.partition(kt)
        owner = t.owners.get(p) if p is not None else None
        seed: Answer | None = None
        if owner is not None and owner is not t.me:
            seed = await self.forwarder.call(owner, "GET", encoded_path(path), what="get")
            if seed.status in (200, CONFLICT):
                return Response(seed.raw, seed.status, media_type="application/json")
        try:
            got = await self.resolve(rel, t, [list(key)], [kt], stale, seed)
        except AmbiguousKeyError as e:
            return error_response(e)
        if isinstance(got, Response):
            return got
        rows, headers = got
        if rows[0] is None:
            return json_response({"detail": no_row_detail(rel.view.name)}, 404,
                                 headers)
        return json_response(rows[0], 200, headers)

    async def lookup(self, request: Request, rel: ApiRelation, keys: list[Any]
                     ) -> Response | None:
        """`POST /tables/{t}/lookup` (keys already checked to be a list of bounded size)."""
        if FORWARDED in request.headers:
            try:
                if _stale(request):
                    from materializer.cluster.stale import standby_answer  # noqa: PLC0415

                    return standby_answer(self, rel, keys, request.query_params.get("partitions"))
                rows = rel.table.get_many(keys, json_form=True, held_only=True)
            except (MaterializerError, ValueError) as e:
                return error_response(e)
            return self._answer_locally(rel, {"rows": rows})
        t = self.target(rel)
        if t is None:
            return None
        try:
            kts = [rel.table.key_tuple(k) for k in keys]
            got = await self.resolve(rel, t, keys, kts, _stale(request))
        except (MaterializerError, ValueError) as e:
            return error_response(e)
        return got if isinstance(got, Response) else \
            json_response({"rows": got[0]}, 200, got[1])

    async def resolve(self, rel: ApiRelation, t: Target, keys: list[Any],
                      kts: list[tuple[Any, ...]], stale: bool = False,
                      seed: Answer | None = None
                      ) -> tuple[list[Any], dict[str, str]] | Response:
        """Rows for `keys` (JSON form, as sent) across the owners, and the headers to answer
        with (the standby lag, when `stale` let a standby copy answer); see the module doc.
        AmbiguousKeyError if an owner holds a key in more than one of its partitions."""
        n = len(keys)
        rows: list[Any] = [None] * n
        found = [False] * n
        asked: list[set[str]] = [set() for _ in range(n)]
        covered: list[set[int]] = [set() for _ in range(n)]
        members = {m.id: m for m in t.owner_members()}
        first: dict[str, list[int]] = {}
        if seed is not None:  # one key, already asked of its owner (`row`): a miss there
            asked[0].add(seed.member)
            if seed.ok:
                covered[0] |= seed.covered
            kts = []  # confirmed below with the others
        for i, kt in enumerate(kts):
            p = t.partition(kt)
            owner = t.owners.get(p) if p is not None else None
            if owner is not None:
                first.setdefault(owner.id, []).append(i)
            elif p is None:  # no way to tell: every owner at once
                for mid in members:
                    first.setdefault(mid, []).append(i)
        await self._ask(rel, t, members, first, keys, rows, found, asked, covered)
        every = t.every
        confirm: dict[str, list[int]] = {}
        for i in range(n):
            if not found[i] and not (every and covered[i] >= every):
                for mid in members:
                    if mid not in asked[i]:
                        confirm.setdefault(mid, []).append(i)
        if confirm:
            await self._ask(rel, t, members, confirm, keys, rows, found, asked, covered)
        headers: dict[str, str] = {}

        def missing() -> list[int]:
            return sorted({p for i in range(n) if not found[i]
                           for p in (every - covered[i] if every else {-1})})
        gaps = missing()
        if gaps and stale and -1 not in gaps:
            from materializer.cluster.stale import from_standbys  # noqa: PLC0415

            lag = await from_standbys(self, rel, t, gaps, keys, rows, found, covered)
            if lag is not None:
                headers[STANDBY_LAG] = lag
            gaps = missing()
        if gaps:
            what = "the partition count of the topic is unknown" if -1 in gaps else \
                f"partition(s) {', '.join(map(str, gaps))} of {t.name} have no live owner " \
                "that answered"
            hint = "" if stale or -1 in gaps or not any(
                t.routing.standbys(t.name, p) for p in gaps) else \
                "; add ?stale=ok to accept a standby's copy"
            return unavailable(f"cannot tell whether a key is absent: {what} (a rebalance or "
                               f"a worker failure; retry shortly{hint})")
        return rows, headers

    async def _ask(self, rel: ApiRelation, t: Target, members: dict[str, Member],
                   groups: dict[str, list[int]], keys: list[Any], rows: list[Any],
                   found: list[bool], asked: list[set[str]], covered: list[set[int]]) -> None:
        """Ask each member of `groups` for its keys (this worker from its store, the others
        over HTTP, concurrently) and record rows found and partitions covered."""
        remote = [(mid, idx) for mid, idx in groups.items() if mid != t.me.id and idx]
        calls = [self.forwarder.call(members[mid], "POST", table_path(t.name, "lookup"),
                                     body={"keys": [keys[i] for i in idx]})
                 for mid, idx in remote]
        results: list[Answer] = list(await asyncio.gather(*calls)) if calls else []
        mine = groups.get(t.me.id)
        if mine:
            local = rel.table.get_many([keys[i] for i in mine], json_form=True, held_only=True)
            results.append(Answer(t.me.id, True, 200, {"rows": local},
                                  self.local_covered(rel, t)))
            remote.append((t.me.id, mine))
        for (mid, idx), ans in zip(remote, results, strict=True):
            if ans.status == CONFLICT:
                raise AmbiguousKeyError(_detail(ans.raw))
            got = ans.body.get("rows") if ans.ok and isinstance(ans.body, dict) else None
            for j, i in enumerate(idx):
                asked[i].add(mid)
                if not isinstance(got, list) or len(got) != len(idx):
                    continue
                covered[i] |= ans.covered
                if got[j] is not None and not found[i]:
                    rows[i], found[i] = got[j], True

    # ------------------------------------------------------------ pages, events

    async def scan(self, request: Request, table: str, prefix: list[str], limit: int,
                   after: str | None) -> Response | None:
        """`GET /tables/{t}/rows` (see `pages.route_scan`)."""
        from materializer.cluster.pages import route_scan  # noqa: PLC0415

        return await route_scan(self, request, table, prefix, limit, after)

    async def events(self, request: Request, stream: str, limit: int) -> Response | None:
        """`GET /streams/{s}/keys/{k...}/events` (see `pages.route_events`)."""
        from materializer.cluster.pages import route_events  # noqa: PLC0415

        return await route_events(self, request, stream, limit)

    async def edge_row(self, table: str, scope: Any) -> Response | None:
        """The edge's routed point lookup (what `fast_row` left): `row` without the
        framework in front (None: the framework answers)."""
        return await self.row(Request(scope), table)

    def fast_row(self, table: str, path: bytes) -> tuple[int, bytes] | None:
        """The edge's point-lookup fast path: the standalone answer when this worker answers
        the table alone, a hit from its own partition; None sends the request to the
        routed endpoint (forwarding, confirming a miss)."""
        from materializer.api.routes import row_answer  # noqa: PLC0415

        try:
            rel = self.relations.table(table)
            t = self.target(rel)
            if t is None:  # in a cluster, a miss may be a forwarded one: `row` says what
                status, body = row_answer(self.relations, table, path)  # it covered
                missed = status == 404 and self.view.routing() is not None
                return None if missed else (status, body)
            key = rel.key_from_text(path_segments(path, 4))
            p = t.partition(rel.table.key_tuple(key))
        except (MaterializerError, ValueError):
            return row_answer(self.relations, table, path)  # says what is wrong
        if p is None or t.owners.get(p) is not t.me:
            return None
        status, body = row_answer(self.relations, table, path)
        return (status, body) if status == 200 else None

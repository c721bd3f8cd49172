"""Stale reads (`?stale=ok`): a standby's copy answers for a partition no live owner
answers for (a rebalance, a worker that died and was not replaced yet).

Guarantees: only a worker's standby copies are read this way (the partitions its own
record lists as standby), each answer says the largest lag (records behind the topic's
end, as its worker last measured) of the copies it read, in `x-materializer-standby-lag`
(`unknown` when any of them does not know it), and the coverage rule of `router` still
holds: absent only when every partition was covered, by an owner or a standby.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from fastapi.responses import Response

from materializer.api.keys import ApiRelation
from materializer.cluster.forward import (
    COVERED,
    MEMBER,
    STANDBY_LAG,
    Answer,
    covered_header,
    parse_covered,
    table_path,
)
from materializer.cluster.record import Member

if TYPE_CHECKING:
    from materializer.cluster.router import ClusterRouter, Target


async def from_standbys(router: ClusterRouter, rel: ApiRelation, t: Target, gaps: list[int],
                        keys: list[Any], rows: list[Any], found: list[bool],
                        covered: list[set[int]]) -> str | None:
    """Ask the freshest standby of each partition in `gaps` for the keys still unknown;
    the `x-materializer-standby-lag` of the whole answer: the largest lag among the copies
    that answered, `unknown` if any of them did not know its lag (never the lag of the
    others, which would understate it), None if none answered."""
    by_member: dict[str, set[int]] = {}
    members: dict[str, Member] = {}
    for p in gaps:
        copies = t.routing.standbys(t.name, p)
        if copies:
            by_member.setdefault(copies[0].id, set()).add(p)
            members[copies[0].id] = copies[0]
    todo = [i for i in range(len(keys)) if not found[i]]
    if not by_member or not todo:
        return None
    order = list(by_member)
    answers: list[Answer] = list(await asyncio.gather(*[
        router.forwarder.call(members[mid], "POST", table_path(t.name, "lookup"),
                              params={"stale": "ok",
                                      "partitions": covered_header(by_member[mid])},
                              body={"keys": [keys[i] for i in todo]}, what="stale")
        for mid in order if mid != t.me.id]))
    lags: list[int | None] = []
    if t.me.id in by_member:
        local = standby_rows(router, rel, [keys[i] for i in todo], by_member[t.me.id])
        answers.append(Answer(t.me.id, True, 200, {"rows": local[0]}, local[1],
                              lag=None if local[2] is None else str(local[2])))
    for ans in answers:
        got = ans.body.get("rows") if ans.ok and isinstance(ans.body, dict) else None
        if not isinstance(got, list) or len(got) != len(todo):
            continue
        lags.append(int(ans.lag) if ans.lag is not None and ans.lag.isdigit() else None)
        for j, i in enumerate(todo):
            covered[i] |= ans.covered
            if got[j] is not None and not found[i]:
                rows[i], found[i] = got[j], True
    if not lags:
        return None
    known = [x for x in lags if x is not None]
    return str(max(known)) if len(known) == len(lags) else "unknown"


def standby_rows(router: ClusterRouter, rel: ApiRelation, keys: list[Any], asked: Iterable[int]
                 ) -> tuple[list[Any], frozenset[int], int | None]:
    """Rows from this worker's standby copies of `asked` partitions (those it keeps),
    the partitions read and their largest lag (None: unknown)."""
    routing = router.view.routing()
    me = routing.me if routing is not None else None
    st = me.relations.get(rel.view.name) if me is not None else None
    parts = frozenset(asked) & frozenset(st.standby if st is not None else ())
    rows = rel.table.get_many_from(keys, parts, json_form=True) if parts else \
        [None] * len(keys)
    lags = [st.lag.get(p) for p in parts] if st is not None else []
    lag = None if not lags or any(x is None for x in lags) else \
        max(x for x in lags if x is not None)
    return rows, parts, lag


def standby_answer(router: ClusterRouter, rel: ApiRelation, keys: list[Any], asked: str | None
                   ) -> Response:
    """A forwarded `?stale=ok` lookup: rows from this worker's standby copies."""
    rows, parts, lag = standby_rows(router, rel, keys, parse_covered(asked))
    headers = {COVERED: covered_header(parts), MEMBER: str(router.view.settings.get("self"))}
    if lag is not None:
        headers[STANDBY_LAG] = str(lag)
    from materializer.cluster.router import json_response  # noqa: PLC0415

    return json_response({"rows": rows}, 200, headers)

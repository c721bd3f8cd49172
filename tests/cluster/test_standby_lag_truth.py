"""`?stale=ok` answers from several standby copies: `x-materializer-standby-lag` is the
largest lag of the copies that answered, and `unknown` when any of them does not know its
lag. Before, a copy that did not know its lag was left out of the figure, so one copy at
lag 0 and one at an unknown lag answered "0"."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from materializer.cluster.forward import Answer
from materializer.cluster.stale import from_standbys


def _ask(lags: dict[int, str | None]) -> str | None:
    """Keys 0 and 1 missing from partitions 0 and 1; each partition's freshest standby is
    member `m<p>`, which answers with the lag given (None: no header, its lag unknown)."""
    members = {p: SimpleNamespace(id=f"m{p}") for p in lags}

    async def call(member: Any, method: str, path: str, **kw: Any) -> Answer:
        p = int(member.id[1:])
        rows = [{"id": k} if k == p else None for k in kw["body"]["keys"]]
        return Answer(member.id, True, 200, {"rows": rows}, frozenset({p}), lag=lags[p])

    router = SimpleNamespace(forwarder=SimpleNamespace(call=call))
    target = SimpleNamespace(name="public.t", me=SimpleNamespace(id="me"),
                             routing=SimpleNamespace(standbys=lambda n, p: [members[p]]))
    rows: list[Any] = [None, None]
    found = [False, False]
    covered: list[set[int]] = [set(), set()]
    lag = asyncio.run(from_standbys(router, None, target, [0, 1],  # type: ignore[arg-type]
                                    [0, 1], rows, found, covered))
    assert found == [True, True]
    return lag


def test_the_largest_lag_of_the_copies() -> None:
    assert _ask({0: "0", 1: "7"}) == "7"


def test_a_copy_of_unknown_lag_makes_the_answer_unknown() -> None:
    assert _ask({0: "0", 1: None}) == "unknown"
    assert _ask({0: None, 1: "3"}) == "unknown"

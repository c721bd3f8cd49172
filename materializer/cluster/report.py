"""The cluster section of `materializer status`: the members as the membership topic has them.

Read straight from the broker (the compacted topic of the group, to its end), so it works
on any machine with the declaration file, with or without a worker beside it.
Guarantees: a topic that does not exist yet means no members; records that are not member
records are skipped; reading stops at the topic's end or after `timeout` seconds.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from materializer.cluster.membership import members_topic, now_ms
from materializer.cluster.record import Member, decode
from materializer.cluster.routing import Routing
from materializer.errors import InfrastructureError
from materializer.specs import Catalog


def read_members(catalog: Catalog, timeout: float = 5.0) -> list[Member]:
    """Every member's last record on the group's membership topic (tombstoned ones left
    out); InfrastructureError if the broker cannot be asked."""
    from connectors.kafka import AssignedSource  # noqa: PLC0415
    from connectors.kafka_admin import end_offsets  # noqa: PLC0415

    topic = members_topic(catalog.group)
    conf = catalog.kafka_config
    end = end_offsets(conf, topic, timeout).get(0)
    if not end:
        return []
    source = AssignedSource(conf, [topic], lambda t, p: None)
    found: dict[str, Member | None] = {}
    deadline = time.monotonic() + timeout
    try:
        done = False
        while not done and time.monotonic() < deadline:
            for m in source.poll_batch(10_000, 0.2):
                key = bytes(m.key() or b"").decode("utf-8", "replace")
                value = m.value()
                with contextlib.suppress(ValueError):  # not a member record: skipped
                    found[key] = None if value is None else decode(value)
                done = done or (m.offset() or 0) + 1 >= end
    finally:
        source.close()
    return [m for m in found.values() if m is not None]


def cluster_routing(catalog: Catalog, problems: list[str]) -> Routing | None:
    """The routing table from the membership topic (None, with why in `problems`, if the
    broker cannot be asked)."""
    try:
        members = read_members(catalog)
    except InfrastructureError as e:
        problems.append(str(e))
        return None
    return Routing(members, None, now_ms(), catalog.cluster.member_timeout_ms)


def annotate(rows: list[dict[str, Any]], routing: Routing | None) -> None:
    """Add to each status row the partition's owner and standbys (worker ids; None and []
    when unknown)."""
    for r in rows:
        owner = routing.owner(r["relation"], r["partition"]) if routing is not None else None
        r["owner"] = owner.id if owner is not None else None
        r["standbys"] = ([m.id for m in routing.standbys(r["relation"], r["partition"])]
                         if routing is not None else [])


def _parts(ps: tuple[int, ...]) -> str:
    return ",".join(map(str, ps)) or "-"


def format_cluster(catalog: Catalog, routing: Routing) -> str:
    """Members as a text table: one line per member and relation (live members first)."""
    head = ("MEMBER", "URL", "GEN", "HEARTBEAT", "RELATION", "ASSIGNED", "STANDBY", "LAG")
    lines = [head]
    for live, group in ((True, routing.members), (False, routing.expired)):
        for m in sorted(group.values(), key=lambda m: m.id):
            age = f"{max(0, routing.now_ms - m.heartbeat_at) / 1000:.1f} s ago"
            rels = [(n, s) for n, s in sorted(m.relations.items()) if not s.replicated]
            for i, (name, s) in enumerate(rels or [("-", None)]):
                lag = "-" if s is None else str(sum(v or 0 for v in s.lag.values())) \
                    if all(v is not None for v in s.lag.values()) else "?"
                lines.append((
                    (m.id + ("" if live else " (expired)")) if i == 0 else "",
                    (m.url or "-") if i == 0 else "",
                    str(m.generation if m.generation is not None else "?") if i == 0 else "",
                    age if i == 0 else "", name,
                    "-" if s is None else _parts(s.assigned),
                    "-" if s is None else _parts(s.standby), lag))
    title = (f"cluster: group {catalog.group}, topic {members_topic(catalog.group)}, "
             f"{len(routing.members)} live member(s)"
             + (f", {len(routing.expired)} expired" if routing.expired else ""))
    if len(lines) == 1:
        return title
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return title + "\n" + "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in lines)

"""Failover from a standby copy: the new owner of a partition starts from the standby's
applied offset instead of re-reading the topic.

The consumer group decides who gets a dead worker's partitions (cooperative-sticky knows
nothing of standbys). When that is the partition's standby, its copy is already in its
store and the group consumer simply continues from it (`standby`). When it is another
worker, that worker takes the standby's copy over HTTP:

- the standby's API answers `GET /cluster/copy/{relation}/{partition}` with the partition
  as its store holds it, read in one transaction: a JSON header line (next offset,
  counters, row layout, row count) and the stored (key, value) pairs;
- the new owner, in its worker thread, replaces what its store holds of the partition
  with that copy in one write transaction (`RelationWriter.replace_partition`), then its
  group consumer continues at the copy's next offset.

Guarantees:
- A copy is taken only from a live member that keeps the partition as a standby, only
  when it is ahead of what this store holds, and only into a store with the same row
  layout; otherwise (or if it fails) the partition is read from the store's own offset,
  as without standbys. Either way no record is applied twice or skipped: a copy is a
  consistent (rows, offset) pair, and the consumer continues at its offset.
- Until the copy is in (and the partition caught up, see `agent`), the partition stays
  marked revoked here, so it is not answered as current from the older state.
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from materializer.errors import MaterializerError, NotFound
from materializer.store import MapFull

if TYPE_CHECKING:
    from fastapi.responses import Response

    from materializer.cluster.agent import ClusterAgent
    from materializer.ingest.relation import Relation

log = logging.getLogger("materializer.cluster")
logging.getLogger("httpx").setLevel(logging.WARNING)  # no log line per copy request

_LEN = struct.Struct(">I")
CONTENT_TYPE = "application/x-materializer-partition"


# --------------------------------------------------------------------- the standby's side


def copy_body(view: Any, relation: str, partition: int) -> bytes:
    """A partition of this store as `GET /cluster/copy/...` sends it (see the module doc)."""
    nxt, counters, pairs, layout = view.partition_copy(partition)
    head = json.dumps({"relation": relation, "partition": partition, "next_offset": nxt,
                       "counters": counters, "layout": layout, "rows": len(pairs)})
    out = [head.encode(), b"\n"]
    for k, v in pairs:
        out += [_LEN.pack(len(k)), k, _LEN.pack(len(v)), v]
    return b"".join(out)


async def copy_answer(state: Any, relation: str, partition: int) -> Response:
    """The answer of `GET /cluster/copy/{relation}/{partition}`: 409 unless this worker
    keeps the partition (owned or standby), 404 for an unknown relation. (FastAPI is
    imported here, by the API that serves it: a worker without an API never loads it.)"""
    from fastapi.responses import Response  # noqa: PLC0415
    from starlette.concurrency import run_in_threadpool  # noqa: PLC0415

    router = state.cluster
    routing = router.view.routing() if router is not None else None
    me = routing.me if routing is not None else None
    try:
        rel = state.relations.get(relation)
    except NotFound as e:
        return Response(json.dumps({"detail": str(e)}), 404, media_type="application/json")
    st = me.relations.get(rel.view.name) if me is not None else None
    if st is None or (partition not in st.standby and partition not in st.assigned):
        return Response(json.dumps({"detail": f"this worker keeps no copy of partition "
                                     f"{partition} of {rel.view.name}"}), 409,
                        media_type="application/json")
    body = await run_in_threadpool(copy_body, rel.view, rel.view.name, partition)
    return Response(body, 200, media_type=CONTENT_TYPE)


# --------------------------------------------------------------------- the new owner's side


def parse_copy(body: bytes) -> tuple[dict[str, Any], Iterator[tuple[bytes, bytes]]]:
    """The header and the pairs of a copy; ValueError if it is not one."""
    line, sep, rest = body.partition(b"\n")
    if not sep:
        raise ValueError("no header line")
    head = json.loads(line)
    if not isinstance(head, dict) or not isinstance(head.get("next_offset"), int):
        raise ValueError("a header without next_offset")
    view = memoryview(rest)

    def pairs() -> Iterator[tuple[bytes, bytes]]:
        pos, n, end = 0, 0, len(view)
        while pos < end:
            items = []
            for _ in range(2):  # a key, then its value
                if pos + 4 > end:
                    raise ValueError("a truncated copy")
                (size,) = _LEN.unpack_from(view, pos)
                if pos + 4 + size > end:
                    raise ValueError("a truncated copy")
                items.append(bytes(view[pos + 4:pos + 4 + size]))
                pos += 4 + size
            n += 1
            yield items[0], items[1]
        if n != head.get("rows"):
            raise ValueError(f"{n} pairs, the header says {head.get('rows')}")
    return head, pairs()


class Handover:
    """Partitions this worker was just given, waiting for a standby's copy (worker thread)."""

    def __init__(self, agent: ClusterAgent, token: str | None, timeout: float) -> None:
        self.agent = agent
        self.timeout = timeout
        self.pending: dict[tuple[str, int], str] = {}  # (topic, partition) -> standby id
        self._http = httpx.Client(timeout=timeout, headers={"authorization": f"Bearer {token}"}
                                  if token else {})
        self.taken = 0

    def plan(self, pairs: list[tuple[str, int]], standby_rels: dict[str, list[Relation]]
             ) -> None:
        """From the assignment callback: for each partition given to this worker that some
        live standby (not this worker) holds further than this store, remember where to
        copy it from."""
        routing = self.agent.membership.routing()
        for topic, p in pairs:
            rels = standby_rels.get(topic)
            if not rels:
                continue
            mine = min(r.next_offsets.get(p, 0) for r in rels)
            for m in routing.standbys(rels[0].spec.name, p):
                st = m.relations.get(rels[0].spec.name)
                if m.id != self.agent.id and m.url and st is not None \
                        and st.offsets.get(p, 0) > mine:
                    self.pending[(topic, p)] = m.id  # (not answered here meanwhile: agent)
                    source = self.agent.worker.grouped.source
                    if source is not None:  # nothing re-read while the copy comes
                        source.pause(topic, p)
                    break

    def run(self, standby_rels: dict[str, list[Relation]]) -> None:
        """Copy what is pending (from the worker loop, outside any callback)."""
        source = self.agent.worker.grouped.source
        for (topic, p), member in sorted(self.pending.items()):
            del self.pending[(topic, p)]
            if source is None or (topic, p) not in source.assigned:
                continue  # given away again meanwhile
            rels = standby_rels.get(topic, [])
            for rel in rels:
                try:
                    self._copy(rel, p, member)
                except (MaterializerError, ValueError, httpx.HTTPError) as e:
                    log.warning("cluster: no copy of %s partition %d from %s (%s): reading it "
                                "from this store's offset %d", rel.spec.name, p, member, e,
                                rel.next_offsets.get(p, 0))
            start = min((r.next_offsets.get(p, 0) for r in
                         self.agent.worker.grouped.by_topic.get(topic, [])), default=0)
            try:
                source.seek(topic, p, start)
            except MaterializerError as e:  # it reads from where it started: records below
                log.warning("cluster: %s", e)  # the copy's offset are passed over, not applied
            source.resume(topic, p)

    def _copy(self, rel: Relation, p: int, member_id: str) -> None:
        routing = self.agent.membership.routing()
        member = routing.members.get(member_id)
        if member is None or not member.url:
            raise ValueError(f"{member_id} is no longer a live member")
        r = self._http.get(f"{member.url}/cluster/copy/{quote(rel.spec.name, safe='')}/{p}")
        if r.status_code != 200:
            raise ValueError(f"it answered {r.status_code}: {r.text[:200]}")
        head, pairs = parse_copy(r.content)
        meta = rel.writer.meta()
        layout = list(meta.layout) if meta is not None else []
        if head.get("layout") != layout:
            raise ValueError("its row layout differs from this store's (a column added at a "
                             "different time)")
        nxt = head["next_offset"]
        if nxt <= rel.next_offsets.get(p, 0):
            return  # this store is as far already
        items = list(pairs)
        while True:
            try:
                rel.writer.replace_partition(p, items, nxt, dict(head.get("counters", {})))
                break
            except MapFull:
                if not rel.writer.grow():
                    raise
        rel.next_offsets[p] = nxt
        self.taken += 1
        log.info("cluster: %s partition %d taken over from %s's standby copy at offset %d "
                 "(%d rows), not re-read", rel.spec.name, p, member_id, nxt, len(items))

    def close(self) -> None:
        self._http.close()

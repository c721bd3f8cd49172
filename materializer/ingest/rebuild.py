"""`materializer rebuild`: drop a relation's local state and replay its topic.

It holds the store lock (`StoreLock`) throughout, so it refuses to start while a
worker (`materializer run`) or another rebuild uses the same data directory.
The replay reads every partition of the topic from the earliest offset, outside
the consumer group, until each partition reaches the end offset seen at start and
a poll comes back empty; a later `materializer run` continues from there. Rejected
records are routed by the relation's policy as the worker routes them.
"""

from __future__ import annotations

import time

from materializer.errors import RecordRejectedFatal
from materializer.ingest.deadletter import DeadLetters
from materializer.ingest.relation import open_relation
from materializer.ingest.worker import (
    POLL_TIMEOUT,
    fatal_message,
    open_registry,
    split_by_partition,
)
from materializer.specs import BATCH_SIZE, Catalog, RelationSpec
from materializer.store import StoreLock, drop_relation


def rebuild(catalog: Catalog, spec: RelationSpec, timeout: float = 3600.0, *,
            what: str = "materializer rebuild") -> int:
    """Returns the number of records applied during the replay. Raises StoreLocked at once
    if another process holds the store lock (`what` names this one to others)."""
    with StoreLock.acquire(catalog.store_path, what):
        return _rebuild(catalog, spec, timeout)


def _rebuild(catalog: Catalog, spec: RelationSpec, timeout: float) -> int:
    from connectors.kafka import AssignedSource, Sink  # noqa: PLC0415

    drop_relation(catalog.store_path, spec.name)
    rel = open_relation(spec, catalog.store_path, map_size=catalog.map_size,
                        registry=open_registry(catalog))
    dead_letters = DeadLetters(lambda: Sink(catalog.kafka_config), catalog.kafka_config)
    source = AssignedSource(catalog.kafka_config, [spec.topic],
                            lambda topic, p: rel.next_offsets.get(p))
    ends = {p: source.query_end_offset(t, p) or 0 for t, p in source.assigned}
    applied = 0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msgs = source.poll_batch(BATCH_SIZE, POLL_TIMEOUT)
            if msgs:
                parts = split_by_partition(msgs).get(spec.topic, {})
                for out in rel.apply(parts, dead_letters).values():
                    applied += out.applied
                    if out.fatal is not None:
                        raise RecordRejectedFatal(fatal_message(rel, out.fatal))
            elif all(rel.next_offsets.get(p, 0) >= end for p, end in ends.items()):
                break
    finally:
        source.close()
    return applied

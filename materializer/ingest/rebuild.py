"""`materializer rebuild`: replace a relation's local state by a replay of its topic.

It holds the store lock (`StoreLock`) throughout, so it refuses to start while a
worker (`materializer run`) or another rebuild uses the same data directory.
The replay goes into a new generation of the relation beside the current one (see
`materializer.store.layout`): it reads every partition of the topic from the
earliest offset, outside the consumer group, until each partition reaches the end
offset seen at start and a poll comes back empty. Only then is the new generation
published, in one atomic rename, and the old one deleted; readers (`Store` views,
`serve`) answer from the old state until then and from the new one after, never
with an error. If the rebuild fails or is killed, the current state is untouched
(the next rebuild or `run` deletes the unfinished generation). A later `materializer
run` continues from where the replay stopped. Rejected records are routed by the
relation's policy as the worker routes them.
"""

from __future__ import annotations

import time

from materializer.errors import InfrastructureError, RecordRejectedFatal
from materializer.ingest.deadletter import DeadLetters
from materializer.ingest.relation import Relation, open_relation
from materializer.ingest.worker import (
    POLL_TIMEOUT,
    fatal_message,
    open_registry,
    split_by_partition,
)
from materializer.specs import BATCH_SIZE, Catalog, RelationSpec
from materializer.store import StoreLock


def rebuild(catalog: Catalog, spec: RelationSpec, timeout: float = 3600.0, *,
            what: str = "materializer rebuild") -> int:
    """Returns the number of records applied during the replay. Raises StoreLocked at once
    if another process holds the store lock (`what` names this one to others)."""
    with StoreLock.acquire(catalog.store_path, what):
        return _rebuild(catalog, spec, timeout)


def _rebuild(catalog: Catalog, spec: RelationSpec, timeout: float) -> int:
    rel = open_relation(spec, catalog.store_path, map_size=catalog.map_size,
                        registry=open_registry(catalog), fresh=True)
    try:
        applied = _replay(catalog, spec, rel, timeout)
        rel.writer.publish()
    except BaseException:
        rel.writer.discard()  # the current state stays as it was
        raise
    return applied


def _replay(catalog: Catalog, spec: RelationSpec, rel: Relation, timeout: float) -> int:
    from connectors.kafka import AssignedSource, Sink  # noqa: PLC0415

    dead_letters = DeadLetters(lambda: Sink(catalog.kafka_config), catalog.kafka_config)
    source = AssignedSource(catalog.kafka_config, [spec.topic],
                            lambda topic, p: rel.next_offsets.get(p))
    ends = {p: source.query_end_offset(t, p) or 0 for t, p in source.assigned}
    applied = 0
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() >= deadline:
                raise InfrastructureError(
                    f"{spec.name}: the replay of {spec.topic} did not reach the end offsets "
                    f"{ends} within {timeout:.0f} s (reached {rel.next_offsets}); the local "
                    "state is unchanged")
            msgs = source.poll_batch(BATCH_SIZE, POLL_TIMEOUT)
            if msgs:
                parts = split_by_partition(msgs).get(spec.topic, {})
                for out in rel.apply(parts, dead_letters).values():
                    applied += out.applied
                    if out.fatal is not None:
                        raise RecordRejectedFatal(fatal_message(rel, out.fatal))
            elif all(rel.next_offsets.get(p, 0) >= end for p, end in ends.items()):
                return applied
    finally:
        source.close()

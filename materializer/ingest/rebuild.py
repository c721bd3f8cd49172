"""`materializer rebuild`: drop a relation's local state and replay its topic.

Run it while no worker writes to the same data directory (LMDB has one writer).
The replay reads every partition of the topic from the earliest offset, outside
the consumer group, until each partition reaches the end offset seen at start and
a poll comes back empty; a later `materializer run` continues from there.
"""

from __future__ import annotations

import time

from materializer.ingest.worker import POLL_TIMEOUT, Worker
from materializer.specs import Catalog, RelationSpec
from materializer.store import drop_relation


def rebuild(catalog: Catalog, spec: RelationSpec, timeout: float = 3600.0) -> int:
    """Returns the number of records applied during the replay."""
    from connectors.kafka import AssignedSource  # noqa: PLC0415

    drop_relation(catalog.store_path, spec.name)
    worker = Worker(catalog, only=[spec.name])
    feed = worker.feeds[0]
    source = AssignedSource(catalog.kafka_config, [spec.topic], feed.start_offset)
    feed.source = source
    ends = {p: source.query_end_offset(t, p) or 0 for t, p in source.assigned}
    rel = worker.relations[0]
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msgs = source.poll_batch(worker.batch_size, POLL_TIMEOUT)
            if msgs:
                worker.apply_batch(msgs, feed)
            elif all(rel.next_offsets.get(p, 0) >= end for p, end in ends.items()):
                break
    finally:
        source.close()
    return worker.applied_total

"""Snapshot change events of a whole table (`op: r`, see `materializer.changes.snapshot`).

- `materializer resnapshot CONFIG TABLE` (`resnapshot`): takes the store lock (so it
  refuses to start while a worker or a rebuild uses the data directory, naming the
  holder), stages an r event for every current row of the table through its outbox
  and delivers them. Events the outbox already held go first (staging order).
- `materializer rebuild` (`snapshot_after_rebuild`): once the rebuilt state is
  published, the same for every row of it; the replay itself emits no c/u/d events.

Staging and delivery go chunk by chunk. Staged events are durable: if the broker does
not take them all within `timeout` seconds they stay in the outbox and `materializer
run` delivers them; nothing is dropped. A snapshot interrupted while staging (the
process killed) has no `last` event: run `materializer resnapshot` again.
"""

from __future__ import annotations

import logging

from materializer.errors import InfrastructureError, MaterializerError, NotFound, UsageError
from materializer.ingest.apply import TableApplier
from materializer.ingest.opening import open_registry
from materializer.ingest.relation import Relation, open_relation
from materializer.specs import Catalog, RelationSpec, TableSpec
from materializer.store import StoreLock, relation_exists

log = logging.getLogger("materializer.snapshot")

class SnapshotNotStaged(MaterializerError):
    """A rebuild published the new state but could not stage its snapshot (exit 1)."""


DELIVER_TIMEOUT = 60.0
"""Seconds to wait, after staging, for the broker to take the last snapshot events."""


def resnapshot(catalog: Catalog, spec: RelationSpec, timeout: float = DELIVER_TIMEOUT, *,
               what: str = "materializer resnapshot") -> int:
    """Stage and deliver an r event for every row of table `spec`; how many. Raises
    UsageError (no `changes`), NotFound (no local state), StoreLocked (another process
    writes the store) or InfrastructureError (events staged but not all delivered)."""
    if not isinstance(spec, TableSpec) or spec.changes is None:
        raise UsageError(f"{spec.name} declares no `changes`: a snapshot goes to the change "
                         "topic, so add `changes: {topic: ...}` to the table first")
    with StoreLock.acquire(catalog.store_path, what):
        if not relation_exists(catalog.store_path, spec.name):
            raise NotFound(f"{spec.name} has no local state in {catalog.store_path} yet: "
                           "run the worker (or `materializer rebuild`) first")
        rel = open_relation(spec, catalog.store_path, map_size=catalog.map_size,
                            registry=open_registry(catalog))
        staged, left = emit_snapshot(catalog, spec, rel, timeout)
    if left:
        raise InfrastructureError(
            f"{spec.name}: {staged} snapshot event(s) staged, but {left} change event(s) "
            f"could not be delivered to {spec.changes.topic} within {timeout:.0f} s (is the "
            f"broker at {catalog.kafka_config.get('bootstrap.servers', '?')} reachable?); "
            "they wait in the outbox, and `materializer run` delivers them: nothing was "
            "dropped")
    return staged


def snapshot_after_rebuild(catalog: Catalog, spec: RelationSpec, rel: Relation,
                           timeout: float = DELIVER_TIMEOUT) -> int:
    """After a rebuild published `rel`: a snapshot of it, if the table has `changes`.
    Events not delivered within `timeout` are left to the worker (logged); a snapshot
    that could not be staged is an error saying how to emit it again."""
    if not isinstance(spec, TableSpec) or spec.changes is None:
        return 0
    try:
        staged, left = emit_snapshot(catalog, spec, rel, timeout)
    except MaterializerError as e:
        raise SnapshotNotStaged(
            f"{spec.name} was rebuilt, but its snapshot change events could not be staged "
            f"({e}); run `materializer resnapshot CONFIG {spec.name}` to emit them") from e
    if left:
        log.warning("%s: %d change event(s) not delivered to %s yet; they wait in the "
                    "outbox and `materializer run` delivers them", spec.name, left,
                    spec.changes.topic)
    return staged


def emit_snapshot(catalog: Catalog, spec: TableSpec, rel: Relation, timeout: float
                  ) -> tuple[int, int]:
    """Stage r events for every row of `rel` (delivering as it goes), then deliver the
    rest for up to `timeout` seconds; (events staged, events still waiting)."""
    from connectors.producer import Sink  # noqa: PLC0415
    from materializer.changes.outbox import ChangeOutbox  # noqa: PLC0415
    from materializer.changes.snapshot import deliver, stage_snapshot  # noqa: PLC0415

    applier = rel.applier
    assert isinstance(applier, TableApplier)
    layout = applier.layout
    outbox = ChangeOutbox(spec, rel.writer, layout, Sink(catalog.kafka_config), None,
                          open_registry(catalog), kafka_conf=catalog.kafka_config)
    staged = stage_snapshot(spec, rel.writer, layout, outbox, after_chunk=outbox.drain)
    rel.writer.set_changes_announced(True)  # staged: the outbox delivers what is left
    left = deliver(outbox, timeout)
    log.info("%s: %d snapshot event(s) staged for %s, %d waiting", spec.name, staged,
             outbox.topic, left)
    return staged, left

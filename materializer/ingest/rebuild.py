"""`materializer rebuild`: replace a relation's local state by a replay of its topic.

It holds the store lock (`StoreLock`) throughout, so it refuses to start while a
worker (`materializer run`) or another rebuild uses the same data directory.
The replay goes into a new generation of the relation beside the current one (see
`materializer.store.layout`): it reads every partition of the topic from the
earliest offset, outside the consumer group, until each partition reaches the end
offset seen at start (`replayed_to_start_end`; records written since are the next `run`'s,
so a topic written without a pause is replayed too). Only then is the new generation
published, in one atomic rename, and the old one deleted; readers (`Store` views,
`serve`) answer from the old state until then and from the new one after, never
with an error. A table with `changes:` first delivers the change events its current
state has not sent yet (`drain_outbox`): if the broker does not take them, the
rebuild stops before anything is dropped. If the rebuild fails or is killed, the
current state is untouched (the next rebuild or `run` deletes the unfinished
generation). SIGTERM or SIGINT (`StopRequest`) stops it between two batches the same way:
the unfinished generation is deleted, the current state kept, exit 143 (130) with a
message saying so; asked once the replay is published, the stop skips the snapshot below
(the next `run` stages it: the new state is not marked announced), or waits for its
staging if that has begun. Once the new state is published, a table with `changes:` emits
a snapshot of it, an `op: r` event for every row (`materializer.ingest.snapshot`); the replay
itself emits no change events. A later `materializer
run` continues from where the replay stopped. Rejected records are routed by the
relation's policy as the worker routes them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from materializer.errors import InfrastructureError, RecordRejectedFatal
from materializer.ingest.batching import split_by_partition, split_ends
from materializer.ingest.deadletter import DeadLetters, dead_letter_limit
from materializer.ingest.opening import fatal_message, open_registry
from materializer.ingest.relation import Relation, open_relation
from materializer.ingest.resync import replayed_to_start_end
from materializer.ingest.snapshot import snapshot_after_rebuild
from materializer.ingest.worker import POLL_TIMEOUT
from materializer.shutdown import StopRequest
from materializer.specs import BATCH_SIZE, Catalog, RelationSpec, TableSpec
from materializer.status import UNCHANGED, rejection_counter
from materializer.store import RelationWriter, StoreLock, relation_exists
from materializer.store.lock import check_held

log = logging.getLogger("materializer.rebuild")

DRAIN_TIMEOUT = 30.0
"""Seconds a rebuild waits for the broker to take the change events of the state it
replaces (a table with `changes:`)."""


@dataclass(slots=True)
class Replayed:
    """What a replay did: records applied, and the others counted as the worker counts
    them (`dropped:null_key`, `dead_letter:<reason>`, `skipped:<reason>`)."""

    applied: int = 0
    not_applied: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """The line `materializer rebuild` prints: records replayed, then what was not
        applied, by counter."""
        text = f"{self.applied} records replayed"
        if self.not_applied:
            text += "; not applied: " + ", ".join(
                f"{n} {counter}" for counter, n in sorted(self.not_applied.items()))
        return text


def rebuild(catalog: Catalog, spec: RelationSpec, timeout: float = 3600.0, *,
            what: str = "materializer rebuild", stop: StopRequest | None = None) -> Replayed:
    """Returns what the replay applied and what it did not. Raises StoreLocked at once
    if another process holds the store lock (`what` names this one to others), Stopped
    when `stop` was asked (see the module doc)."""
    with StoreLock.acquire(catalog.store_path, what):
        return _rebuild(catalog, spec, timeout, stop or StopRequest())


def _rebuild(catalog: Catalog, spec: RelationSpec, timeout: float, stop: StopRequest
             ) -> Replayed:
    drain_outbox(catalog, spec, stop=stop)
    rel = open_relation(spec, catalog.store_path, map_size=catalog.map_size,
                        registry=open_registry(catalog), fresh=True)
    try:
        _record_topic(catalog, spec, rel)
        done = _replay(catalog, spec, rel, timeout, stop)
        rel.writer.publish()
    except BaseException:
        rel.writer.discard()  # the current state stays as it was
        raise
    if isinstance(spec, TableSpec) and spec.changes is not None:
        stop.check(lambda sig: f"{spec.name}: rebuilt from {spec.topic} ({done.summary()}), "
                   f"then stopped by {sig} before its snapshot change events (op r for "
                   "every row) were staged: the next `materializer run` stages them")
    snapshot_after_rebuild(catalog, spec, rel)  # `changes:` an r event for every row
    return done


def _unchanged(spec: RelationSpec, during: str) -> Callable[[str], str]:
    """The message of a rebuild stopped before it published anything."""
    return lambda sig: (f"{spec.name}: the rebuild stopped by {sig} {during}; the local "
                        "state is unchanged (still served): run `materializer rebuild "
                        f"CONFIG {spec.name}` again to replace it")


def drain_outbox(catalog: Catalog, spec: RelationSpec, timeout: float = DRAIN_TIMEOUT, *,
                 stop: StopRequest | None = None) -> int:
    """Deliver the change events that the current state of `spec` still holds (its outbox)
    before a rebuild deletes it, or raise InfrastructureError, having dropped nothing,
    if the broker does not take them all within `timeout` seconds. Returns how many."""
    if not isinstance(spec, TableSpec) or spec.changes is None \
            or not relation_exists(catalog.store_path, spec.name):
        return 0
    from connectors.producer import Sink  # noqa: PLC0415
    from materializer.changes.outbox import OUTBOX_DB, ChangeOutbox  # noqa: PLC0415

    writer = RelationWriter(catalog.store_path, spec.name, catalog.map_size)
    if writer.side_table(OUTBOX_DB).entries() == 0:
        return 0
    meta = writer.meta()
    layout = meta.layout if meta is not None else spec.column_names
    sink = Sink(catalog.kafka_config)
    outbox = ChangeOutbox(spec, writer, layout, sink, None, open_registry(catalog),
                          kafka_conf=catalog.kafka_config)
    waiting = outbox.backlog()
    log.info("%s: delivering %d change event(s) to %s before the rebuild", spec.name,
             waiting, outbox.topic)
    deadline = time.monotonic() + timeout
    while True:
        outbox.drain()
        left = outbox.backlog()
        if left == 0:
            return waiting
        if stop is not None:
            stop.check(_unchanged(spec, f"while delivering the {left} change event(s) its "
                                        f"current state still holds to {outbox.topic}"))
        if time.monotonic() >= deadline:
            raise InfrastructureError(
                f"{spec.name}: {left} change event(s) of the current state could not be "
                f"delivered to {outbox.topic} within {timeout:.0f} s (is the broker at "
                f"{catalog.kafka_config.get('bootstrap.servers', '?')} reachable?); a rebuild "
                "would lose them, so nothing was dropped: run the rebuild again once the "
                "broker is back")
        time.sleep(0.2)  # drain backs off on its own; this only paces the checks


def _record_topic(catalog: Catalog, spec: RelationSpec, rel: Relation) -> None:
    """Tie the new state to the topic it replays: its id (and partition count) as the
    broker describes it before the replay, so that a topic deleted and created again
    afterwards is noticed (`on_reset`) rather than taken for the one replayed."""
    from connectors.kafka_admin import describe_topics  # noqa: PLC0415

    state = describe_topics(catalog.kafka_config, [spec.topic]).get(spec.topic)
    if state is not None:
        rel.writer.set_source_topic_id(state.id)
        rel.writer.set_source_partitions(state.partitions)


def _replay(catalog: Catalog, spec: RelationSpec, rel: Relation, timeout: float,
            stop: StopRequest) -> Replayed:
    from connectors.kafka import AssignedSource  # noqa: PLC0415
    from connectors.producer import Sink  # noqa: PLC0415

    dead_letters = DeadLetters(lambda: Sink(catalog.kafka_config), catalog.kafka_config,
                               dead_letter_limit(catalog.kafka_config))
    source = AssignedSource(catalog.kafka_config, [spec.topic],
                            lambda topic, p: rel.next_offsets.get(p))
    done = Replayed()
    targets: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    try:
        while True:
            check_held(catalog.store_path)  # a `run` beside it would write the old state
            stop.check(_unchanged(spec, f"while replaying {spec.topic} (the partial replay "
                                        "was deleted)"))
            if time.monotonic() >= deadline:
                marks = {p: source.end_offset(t, p) for t, p in source.assigned}
                raise InfrastructureError(
                    f"{spec.name}: the replay of {spec.topic} did not reach the end offsets "
                    f"{marks} within {timeout:.0f} s (reached {rel.next_offsets}); the local "
                    "state is unchanged")
            msgs, reached = source.poll(BATCH_SIZE, POLL_TIMEOUT)
            parts = split_by_partition(msgs).get(spec.topic, {})
            for out in _apply(rel, parts, dead_letters, split_ends(reached).get(spec.topic),
                              deadline).values():
                done.applied += out.applied
                if out.unchanged:
                    done.not_applied[UNCHANGED] = done.not_applied.get(UNCHANGED, 0) + out.unchanged
                for r in out.rejected:
                    counter = rejection_counter(r.policy, r.reason)
                    done.not_applied[counter] = done.not_applied.get(counter, 0) + 1
                if out.fatal is not None:
                    raise RecordRejectedFatal(fatal_message(rel, out.fatal))
            if replayed_to_start_end(source, rel, targets):
                return done
    finally:
        source.close()


def _apply(rel: Relation, parts: Any, dead_letters: Any, ends: Any, deadline: float) -> Any:
    """`rel.apply`, applied again while it fails with an InfrastructureError that says when
    to retry (`retry_in`: a schema id the registry may know in a moment, see
    `unknown.id.wait.ms`), as the worker does; any other raises (the replay fails, the
    local state unchanged)."""
    while True:
        try:
            return rel.apply(parts, dead_letters, ends)
        except InfrastructureError as e:
            if e.retry_in is None or time.monotonic() + e.retry_in > deadline:
                raise
            log.warning("rebuild: %s", e)
            time.sleep(min(max(e.retry_in, 0.05), 1.0))

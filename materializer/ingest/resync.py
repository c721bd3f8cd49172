"""Change events of a table rebuilt in place (`on_reset: rebuild`): a snapshot, not a replay.

Guarantees:
- While a table with `changes:` replays its topic after `on_reset: rebuild`, it stages no
  change events (the replay's c/u/d would re-announce history the change topic already
  carried). Once every partition it holds has reached the end the broker reported when the
  replay began (`replayed_to_start_end`: a topic written without a pause has no "end of
  now" to wait for), an `op: r` event is staged for every row (as `materializer rebuild`
  does), then events go on as usual.
- The debt is durable: the rebuilt state carries a `snapshot_due` mark, set before it is
  published and cleared after the snapshot is staged, so a worker killed in between
  emits the snapshot after its restart (at worst twice, which a compacted topic folds).
- A debt that keeps events (`snapshot_due_keeps_events`: state of an older materializer,
  see ingest.announced) applies on with its change events, then stages the snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from materializer.errors import InfrastructureError
from materializer.ingest.relation import Relation
from materializer.specs import TableSpec

log = logging.getLogger("materializer.worker")


class PendingSnapshots:
    """Tables that owe their change topic a snapshot, staged once they have caught up."""

    def __init__(self, attach_outbox: Callable[[Relation], None]) -> None:
        self._attach_outbox = attach_outbox
        self._due: list[Relation] = []
        self._silent: list[Relation] = []
        self._targets: dict[str, dict[int, int]] = {}  # per relation: replayed_to_start_end

    def owes(self, rel: Relation) -> bool:
        return rel in self._due

    def silent(self, rel: Relation) -> bool:
        """Whether `rel` applies without change events until its snapshot is staged."""
        return rel in self._silent

    def add(self, rel: Relation, *, keep_events: bool = False) -> None:
        """`rel` replays from now on without change events (its outbox is detached), or,
        with `keep_events`, applies on with them; either way its snapshot follows once it
        has caught up. Added again (its topic reset again while it replays), the end to
        reach is the one seen from now on, not the earlier replay's."""
        if not (isinstance(rel.spec, TableSpec) and rel.spec.changes is not None):
            return
        if not keep_events and rel not in self._silent:
            rel.outbox = None
            self._silent.append(rel)
        if rel not in self._due:
            self._due.append(rel)
        self._targets[rel.spec.name] = {}

    def settle(self, sources: Iterable[tuple[Any, Iterable[Relation]]]) -> None:
        """Stage the snapshot of every due table whose held partitions all reached the end
        (`sources`: a connectors.kafka reader and the relations it feeds)."""
        if not self._due:
            return
        for source, relations in sources:
            for rel in [r for r in relations if r in self._due]:
                if replayed_to_start_end(source, rel,
                                         self._targets.setdefault(rel.spec.name, {})):
                    try:
                        self._snapshot(rel)
                    except InfrastructureError as e:  # the broker or registry away: later
                        log.warning("%s: snapshot not staged yet (%s); retried", rel.spec.name,
                                    e)

    def _snapshot(self, rel: Relation) -> None:
        from materializer.changes.snapshot import stage_snapshot  # noqa: PLC0415

        if rel.outbox is None:
            self._attach_outbox(rel)
        outbox = rel.outbox
        assert outbox is not None and isinstance(rel.spec, TableSpec)
        staged = stage_snapshot(rel.spec, rel.writer, rel.applier.layout,  # type: ignore[union-attr]
                                outbox, after_chunk=outbox.drain)
        rel.writer.set_snapshot_due(False)
        rel.writer.set_changes_announced(True)
        self._due.remove(rel)
        self._targets.pop(rel.spec.name, None)
        if rel in self._silent:
            self._silent.remove(rel)
        log.info("%s: caught up; %d snapshot event(s) (op r) staged for %s",
                 rel.spec.name, staged, outbox.topic)


def replayed_to_start_end(source: Any, rel: Relation, targets: dict[int, int]) -> bool:
    """Whether every partition of `rel`'s topic that `source` holds has reached the end
    offset seen at start: its end when first known (`targets`, filled here), or its end
    now if lower (a transaction open then and still open: its last stable offset; a topic
    truncated). Records written since come after it (`rebuild`: the next `run` applies
    them; a snapshot owed: applied with their change events): waiting for the end of now
    (before: an empty poll and the current end) never ended on a topic written without a
    pause, nor, a transaction's records counting in the end, on one written in transactions
    back to back. False while any held partition's end is unknown, or none is held."""
    held = [p for t, p in source.assigned if t == rel.spec.topic]
    ready = bool(held)
    for p in held:
        end = source.end_offset(rel.spec.topic, p)
        if end is None:
            ready = False
            continue
        target = min(targets.setdefault(p, end), end)
        if rel.next_offsets.get(p, 0) < target:
            ready = False
    return ready

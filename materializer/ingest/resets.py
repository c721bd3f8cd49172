"""`on_reset`: what the worker does with a relation whose topic was deleted and created
again (`ingest.topics.TopicWatch`) or whose stored offsets the broker no longer holds
(`ingest.topics.OffsetWatch`).

Guarantees: under `on_reset: fail` every partition the relation holds is marked revoked
before TopicReset is raised, so readers of the store answer 503 / exit 3, never the old
topic's rows as current. Under `on_reset: rebuild` the local state is dropped (after its
pending change events are delivered, if the broker takes them), an empty generation is
swapped in at once (readers see the table refill, never an error) and the topic is read
again from the beginning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from materializer.errors import MaterializerError
from materializer.ingest.opening import Feed
from materializer.ingest.relation import Relation, open_relation
from materializer.ingest.resync import PendingSnapshots
from materializer.ingest.topics import OutOfRange, TopicReset, relations_of, reset_message
from materializer.protocols import SchemaRegistry
from materializer.specs import Catalog

log = logging.getLogger("materializer.worker")

Rebuild = Callable[[Relation, "str | None"], None]
"""Drop a relation's state and read its topic again (recorded as the topic id given, or
the one recorded before): `rebuild_in_place`, or a worker's refusal to."""


def handle_resets(changed: list[tuple[Relation, str, str]], rebuild: Rebuild) -> set[str]:
    """Apply `on_reset` to relations whose topic was recreated (see ingest.topics); the
    topics rebuilt (their partitions were moved back to the beginning)."""
    for rel, old, new in changed:
        if rel.spec.on_reset != "rebuild":
            not_current(rel)
            raise TopicReset(reset_message(rel, old, new))
        log.warning("%s: topic %s was deleted and created again (id %s is now %s): "
                    "on_reset: rebuild drops the local state and replays the new topic",
                    rel.spec.name, rel.spec.topic, old, new)
        rebuild(rel, new)
    return {rel.spec.topic for rel, _, _ in changed}


def handle_out_of_range(feed: Feed, found: list[OutOfRange], rebuild: Rebuild) -> None:
    """Apply `on_reset` to relations with a partition whose stored offset the broker
    does not hold (see ingest.topics.OffsetWatch)."""
    for rel in relations_of(found):
        if rel.spec.on_reset != "rebuild":
            not_current(rel)
            raise TopicReset(next(f for f in found if f.relation is rel).message())
        log.warning("%s; on_reset: rebuild drops the local state and replays the topic",
                    next(f for f in found if f.relation is rel).message().split(";")[0])
        rebuild(rel, None)
    stuck = {t for t, _ in feed.source.out_of_range}  # partitions with no stored offset
    for topic in stuck:
        feed.source.rewind(topic)


def not_current(rel: Relation) -> None:
    """Before stopping because `rel`'s state no longer matches its topic (recreated,
    offsets the broker does not hold; `on_reset: fail`): mark every partition it holds
    revoked, so that readers of the store (`serve` beside, `Store`, `get`) answer 503 /
    exit 3 instead of the old topic's rows as current. A worker that is given the
    partitions again clears the marks; `rebuild` writes a new state without them."""
    try:
        rel.writer.set_revoked(rel.writer.next_offsets(), True)
    except MaterializerError as e:  # the stop's own message says more
        log.warning("%s: cannot mark its partitions as not current: %s", rel.spec.name, e)


def rebuild_in_place(rel: Relation, topic_id: str | None, catalog: Catalog,
                     registry: SchemaRegistry | None, pending: PendingSnapshots,
                     feeds: list[Feed]) -> None:
    """Drop `rel`'s local state (after delivering its pending change events, if the
    broker takes them) and start it again from the beginning of its topic (recorded
    as `topic_id`, or the id recorded before), in every feed that reads it."""
    if rel.outbox is not None:
        rel.outbox.drain()
    topic_id = topic_id or rel.writer.source_topic_id()
    # an empty generation swapped in at once: readers see the table refill, never an error
    fresh = open_relation(rel.spec, catalog.store_path, map_size=catalog.map_size,
                          registry=registry, fresh=True)
    # replayed without events, then a snapshot (ingest.resync); so is a table reset again
    # while it replays silently (its outbox detached): its replay starts over
    owed = rel.outbox is not None or pending.owes(rel)
    if owed:
        fresh.writer.set_snapshot_due(True)
    fresh.writer.publish()
    rel.writer, rel.applier, rel.next_offsets = fresh.writer, fresh.applier, {}
    if topic_id is not None:
        rel.writer.set_source_topic_id(topic_id)
    if owed:
        pending.add(rel)
    for feed in feeds:
        if feed.source is not None and rel.spec.topic in feed.by_topic:
            feed.source.rewind(rel.spec.topic)

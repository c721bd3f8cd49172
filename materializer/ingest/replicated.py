"""The replicated tables' feed (every partition, no group): reading the partitions their
topics gain, and clearing the revoked mark of the partitions a worker reads again."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from materializer.errors import InfrastructureError
from materializer.ingest.opening import Feed

log = logging.getLogger("materializer.worker")


def read_new_partitions(feed: Feed, counts: Mapping[str, int]) -> list[tuple[str, int]]:
    """At every topic check (`TopicWatch`, every 10 s): read also the partitions of the
    replicated tables' topics that their reader has not listed (the topic grew, or was
    created after the start), from the beginning. Until fetched they count as not
    caught up (unknown end offset, then lag). A broker that refuses is asked again at
    the next check. The partitions added (their revoked mark is for `clear_revoked`)."""
    source = feed.source
    if source is None:
        return []
    try:
        added: list[tuple[str, int]] = source.add_partitions(counts)
    except InfrastructureError as e:
        log.warning("replicated tables: %s; trying again at the next topic check", e)
        return []
    return added


def clear_revoked(feed: Feed, pairs: list[tuple[str, int]]) -> None:
    """Clear the revoked mark of replicated tables' partitions this worker now reads
    (`run --processes N` marks them when worker 0 is killed: a miss of theirs answers
    503, not 404, until it reads them again)."""
    for topic in sorted({t for t, _ in pairs}):
        parts = [p for t, p in pairs if t == topic]
        for rel in feed.by_topic.get(topic, ()):
            rel.writer.set_revoked(parts, False)

"""confluent-kafka sources the worker reads: `Source` (a consumer group member),
`AssignedSource` (every partition of its topics, no group) and `StandbySource` (partitions
set one by one, no group). What they share, reading (batches, hold, watermarks, commits), is
`connectors.kafka_reader`; topic admin and one-off reads: `connectors.kafka_admin`;
producers: `connectors.producer`.

`Source` guarantees: on every assignment each partition starts at the offset the
store says is next (or the beginning), never at the group's committed offset, so
LMDB is the single source of truth for progress.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping, Sequence

from confluent_kafka import Consumer, KafkaException, TopicPartition

from connectors.kafka_admin import brokers, ungrouped_conf
from connectors.kafka_reader import Reader, StartOffsets, reader_consumer, start_at
from materializer.errors import InfrastructureError

log = logging.getLogger("materializer.kafka")


def _heartbeat(conf: dict[str, str]) -> dict[str, str]:
    """`heartbeat.interval.ms` a tenth of `session.timeout.ms` (at most librdkafka's 3000)
    when only the session timeout is set: the members of a group learn of a rebalance (a
    worker died) within a fraction of a second of its detection, not up to 3 s later."""
    session = conf.get("session.timeout.ms", "")
    if "heartbeat.interval.ms" in conf or not str(session).isdigit():
        return {}
    return {"heartbeat.interval.ms": str(max(100, min(3000, int(session) // 10)))}


class Source(Reader):
    """A consumer in a group (cooperative-sticky) that starts partitions where the store says.

    `on_ownership(pairs, owned)`, if set, is called from the rebalance callbacks (inside
    `poll_batch`, so never while the caller has a write transaction open): owned=True
    for partitions assigned, False for partitions revoked or lost. Partitions given up
    by `close()` are not reported: a worker that stops keeps its state as of the stop."""

    on_ownership: Callable[[list[tuple[str, int]], bool], None] | None = None
    _closing = False

    def close(self) -> None:
        self._closing = True
        super().close()

    def __init__(self, conf: dict[str, str], group: str, topics: Sequence[str],
                 start_offsets: StartOffsets) -> None:
        super().__init__(reader_consumer(group, {
            "partition.assignment.strategy": "cooperative-sticky", **_heartbeat(conf), **conf}),
            start_offsets)
        self._consumer.subscribe(list(topics), on_assign=self._assign, on_revoke=self._revoke,
                                 on_lost=self._revoke)

    def group_generation(self) -> int | None:
        """The consumer group's generation id of this member's last join (None if unknown).

        Read from librdkafka's serialized group metadata (`CGMDv2:` then the generation as
        a native int32), the only place confluent-kafka exposes it."""
        try:
            meta = self._consumer.consumer_group_metadata()
        except (KafkaException, RuntimeError):
            return None
        if not isinstance(meta, bytes) or not meta.startswith(b"CGMDv2:") or len(meta) < 11:
            return None
        return int.from_bytes(meta[7:11], sys.byteorder, signed=True)

    def committed(self, pairs: Sequence[tuple[str, int]], timeout: float = 5.0
                  ) -> dict[tuple[str, int], int] | None:
        """The group's committed offsets of `pairs` (those with one; what the members that
        read them told the group, `commit`), or None if the broker did not say in time."""
        if not pairs:
            return {}
        try:
            got = self._consumer.committed([TopicPartition(t, p) for t, p in pairs],
                                           timeout=timeout)
        except KafkaException as e:
            log.debug("committed offsets unknown: %s", e)
            return None
        if any(tp.error is not None for tp in got):
            return None
        return {(tp.topic, tp.partition): tp.offset for tp in got if tp.offset >= 0}

    def _assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            tp.offset = start_at(self._start_offsets(tp.topic, tp.partition))
        consumer.incremental_assign(partitions)
        try:  # librdkafka keeps a pause from an earlier assignment (a copy that never came)
            consumer.resume([TopicPartition(tp.topic, tp.partition) for tp in partitions])
        except KafkaException as e:
            log.warning("consumer: cannot resume %s: %s", partitions, e)
        pairs = [(tp.topic, tp.partition) for tp in partitions]
        self.assigned.update(pairs)
        self._paused.difference_update(pairs)  # an assignment starts fetching
        self._held.difference_update(pairs)
        if self._holding:  # assigned while a batch is retried: fetched once it is done
            self._hold_new(pairs)
        self._unfetched.update(pairs)
        self.generation += 1
        log.info("assigned %s", pairs)
        if self.on_ownership is not None:
            self.on_ownership(pairs, True)

    def _revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        pairs = [(tp.topic, tp.partition) for tp in partitions]
        self.assigned.difference_update(pairs)
        self._paused.difference_update(pairs)
        self._held.difference_update(pairs)
        self._unfetched.difference_update(pairs)
        self._drop_carried(set(pairs))
        log.info("revoked %s", pairs)
        if self.on_ownership is not None and not self._closing:
            self.on_ownership(pairs, False)  # not on close: a clean stop keeps them current


class AssignedSource(Reader):
    """A consumer outside any group that reads every partition of its topics
    (for `rebuild` and replicated tables); starts where the store says.

    The partitions are listed once here; `add_partitions` assigns those the caller learns
    of later (a topic that grew, or, with `wait_for_topics`, one created after the start:
    a replicated table's worker re-lists its topics at every topic check, as the group's
    metadata refresh does for the group's topics)."""

    def __init__(self, conf: dict[str, str], topics: Sequence[str],
                 start_offsets: StartOffsets, *, wait_for_topics: bool = False) -> None:
        super().__init__(reader_consumer("materializer-assigned", ungrouped_conf(conf)),
                         start_offsets)
        self.topics = list(topics)
        tps = []
        for topic in topics:
            try:
                md = self._consumer.list_topics(topic, timeout=10).topics.get(topic)
            except KafkaException as e:
                raise InfrastructureError(f"cannot read the metadata of topic {topic} from "
                                          f"{brokers(conf)}: {e}") from e
            if md is None or md.error is not None:
                if wait_for_topics:  # assigned once listed (`add_partitions`)
                    continue
                raise InfrastructureError(f"topic {topic} does not exist")
            for p in sorted(md.partitions):
                tps.append(TopicPartition(topic, p, start_at(start_offsets(topic, p))))
                self.assigned.add((topic, p))
        self._consumer.assign(tps)

    def add_partitions(self, counts: Mapping[str, int]) -> list[tuple[str, int]]:
        """Read also the partitions below each of its topics' partition `counts` that are
        not assigned yet, each from where the store says (the beginning for a partition it
        never held); the ones added. Their end offset reads unknown until their first fetch
        response (`end_offset`), so lag and "caught up" count them as not read."""
        new = sorted((t, p) for t in self.topics for p in range(counts.get(t, 0))
                     if (t, p) not in self.assigned)
        if not new:
            return []
        try:
            self._consumer.incremental_assign(
                [TopicPartition(t, p, start_at(self._start_offsets(t, p))) for t, p in new])
        except KafkaException as e:
            raise InfrastructureError(f"cannot assign the new partitions {new}: {e}") from e
        self.assigned.update(new)
        self._unfetched.update(new)
        self.generation += 1
        log.info("assigned %s (new partitions)", new)
        return new

    def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        """Nothing to commit: this consumer belongs to no group."""


class StandbySource(Reader):
    """A consumer outside any group whose partitions are set one by one (`set_partitions`):
    a cluster worker's standby copies of partitions other workers own. Each partition
    added starts where the store says."""

    def __init__(self, conf: dict[str, str], start_offsets: StartOffsets) -> None:
        super().__init__(reader_consumer("materializer-standby", ungrouped_conf(conf)),
                         start_offsets)

    def set_partitions(self, wanted: set[tuple[str, int]]) -> None:
        """Read exactly `wanted` from now on (added ones from their stored next offset)."""
        gone = sorted(self.assigned - wanted)
        new = sorted(wanted - self.assigned)
        try:
            if gone:
                self._consumer.incremental_unassign([TopicPartition(t, p) for t, p in gone])
            if new:
                self._consumer.incremental_assign(
                    [TopicPartition(t, p, start_at(self._start_offsets(t, p))) for t, p in new])
        except KafkaException as e:
            raise InfrastructureError(f"cannot change the standby partitions: {e}") from e
        if new:  # librdkafka keeps a pause from an earlier assignment, as the group's does
            try:
                self._consumer.resume([TopicPartition(t, p) for t, p in new])
            except KafkaException as e:
                log.warning("consumer: cannot resume %s: %s", new, e)
        self.assigned = set(wanted)
        # a partition removed forgets its marks: added again, it is fetched (not paused,
        # not held) and its end reads known after its first fetch, not unknown for good
        for marks in (self._paused, self._held, self._unfetched):
            marks.difference_update(gone)
            marks.difference_update(new)
        self._drop_carried(set(gone))
        self._unfetched.update(new)  # librdkafka keeps an earlier assignment's end meanwhile
        if gone or new:
            self.generation += 1

    def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        """Nothing to commit: this consumer belongs to no group."""



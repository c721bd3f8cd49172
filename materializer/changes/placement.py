"""Where a table's change events go in its change topic (`ChangePlacement`): the topic is
looked up (and created, compacted, with the source topic's partition count) once; an event
then goes to the partition of its source record when both topics have as many partitions,
else to the partition its key hashes to (the Java client's murmur2), or, without Kafka
settings, wherever the producer's own partitioner puts its key. An event pinned to a
partition (a snapshot's `d` for a key an earlier placement put there) goes there."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from connectors.kafka_admin import create_topic, partition_count
from connectors.partitioners import partition_for
from materializer.changes.envelope_base import Message
from materializer.errors import InfrastructureError

log = logging.getLogger("materializer.changes")

SAME = -1  # placement: change-topic partition = source partition
PRODUCER_HASH = 0  # placement: let the producer's partitioner hash the key


class ChangePlacement:
    """The placement of the events of one table in change topic `topic` (its source topic
    `source_topic`, whose partition count `source_partitions` is asked of the broker when
    None). `resolve` before `of` and `target` place by key hash."""

    def __init__(self, topic: str, source_topic: str, kafka_conf: Mapping[str, str] | None,
                 source_partitions: int | None) -> None:
        self.topic = topic
        self.source_topic = source_topic
        self.kafka_conf = dict(kafka_conf) if kafka_conf is not None else None
        self.source_partitions = source_partitions
        self.partitions: int | None = None  # SAME, PRODUCER_HASH or a count to hash by

    def resolve(self) -> None:
        """Find (or create) the change topic and decide how events are placed, once;
        InfrastructureError (retried by the caller) while the broker or the source topic
        is not there."""
        if self.partitions is None:
            self.partitions = self._resolved()

    def of(self, partition: int, key: bytes) -> int:
        """The change-topic partition of an event staged for source `partition` (only once
        resolved: before, the source partition), or the one it is pinned to (< 0)."""
        n = self.partitions
        if partition < 0:
            return -1 - partition
        if n is None or n in (SAME, PRODUCER_HASH):
            return partition
        return partition_for(key, n)

    def target(self, partition: int, key: bytes) -> int | None:
        """The partition to produce an event staged for source `partition` to; None: the
        producer's partitioner chooses by key."""
        n = self.partitions
        if partition < 0:  # pinned to a change-topic partition
            return -1 - partition
        if n == SAME:
            return partition
        if n == PRODUCER_HASH or n is None:
            return None
        return partition_for(key, n)

    def placed(self, msgs: Iterable[Message]) -> list[tuple[bytes, bytes | None, int]]:
        """(key, value, partition to produce to) of each message, in order, by `target`
        (-1: the producer's partitioner chooses by key)."""
        if self.partitions == SAME:
            return [(k, v, p if p >= 0 else -1 - p) for p, k, v in msgs]
        target = self.target
        return [(k, v, -1 if (at := target(p, k)) is None else at) for p, k, v in msgs]

    def _resolved(self) -> int:
        if self.kafka_conf is None:
            return PRODUCER_HASH
        # a metadata request that names a missing topic may auto-create it on the broker
        conf = {**self.kafka_conf, "allow.auto.create.topics": "false"}
        n = partition_count(conf, self.topic)
        if n == 0:
            create_topic(conf, self.topic, self._source_count(conf),
                         config={"cleanup.policy": "compact"})
            n = partition_count(conf, self.topic)
            log.info("created change topic %s with %d partition(s)", self.topic, n)
        return SAME if n == self._source_count(conf) else n

    def _source_count(self, conf: Mapping[str, str]) -> int:
        """The source topic's partition count; InfrastructureError while the source topic
        does not exist yet."""
        if self.source_partitions is None:
            n = partition_count(dict(conf), self.source_topic)
            if n == 0:
                raise InfrastructureError(f"source topic {self.source_topic} does not exist "
                                          "yet: the change topic is created once it does")
            self.source_partitions = n
        return self.source_partitions

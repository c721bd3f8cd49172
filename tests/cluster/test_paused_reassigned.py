"""A partition paused for a standby's copy (`Handover.plan`) and revoked before the copy was
taken stays paused in librdkafka when the group assigns it again (its application pause
survives incremental_unassign/assign), while the source counted it as fetching: it was
never read again (keys 503 forever, lag unknown, nothing logged). An assignment resumes
what it assigns."""

from __future__ import annotations

import time

from confluent_kafka import Producer, TopicPartition

from connectors.kafka import Source
from materializer.devbroker import DevBroker
from tests.support.workers import unique, wait_until


def test_a_partition_paused_then_revoked_is_read_when_assigned_again(
        session_broker: DevBroker) -> None:
    conf = session_broker.kafka_config()
    topic = session_broker.create_topic(unique("paused-again"), partitions=1)
    producer = Producer(conf)
    for i in range(3):
        producer.produce(topic, key=b"k%d" % i, value=b"v", partition=0)
    assert producer.flush(10) == 0
    source = Source(conf, unique("g"), [topic], lambda t, p: None)
    pauses = [1]

    def on_ownership(pairs: list[tuple[str, int]], owned: bool) -> None:
        if owned and pauses:  # a copy is on its way (Handover.plan)
            pauses.pop()
            source.pause(topic, 0)
    source.on_ownership = on_ownership
    try:
        wait_until(lambda: source.poll(100, 0.2).records == [] and (topic, 0) in
                   source.assigned, 30, "the partition assigned")
        # the group takes it away before the copy is taken, and gives it back (what
        # librdkafka does around the rebalance callbacks of a cooperative consumer)
        tp = TopicPartition(topic, 0)
        source._consumer.incremental_unassign([tp])  # noqa: SLF001
        source._revoke(source._consumer, [tp])  # noqa: SLF001
        source._assign(source._consumer, [TopicPartition(topic, 0)])  # noqa: SLF001
        got: list[object] = []
        deadline = time.monotonic() + 10
        while len(got) < 3 and time.monotonic() < deadline:
            got += source.poll(100, 0.2).records
        assert len(got) == 3
    finally:
        source.close()

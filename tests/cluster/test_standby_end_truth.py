"""A standby partition added again to the standby consumer (the standby moved away and back,
or the worker owned it meanwhile) must not report the end offset librdkafka cached from its
earlier standby assignment: until a fetch response comes for it, its end (so the lag the
member record publishes and `?stale=ok` answers with in `x-materializer-standby-lag`) is
unknown. Before, the old high watermark was used: lag 0 for a copy far behind."""

from __future__ import annotations

from confluent_kafka import Producer

from connectors.kafka import StandbySource
from materializer.devbroker import DevBroker
from tests.support.workers import unique, wait_until


def test_a_standby_partition_added_again_has_no_end_until_fetched(
        session_broker: DevBroker) -> None:
    conf = session_broker.kafka_config()
    topic = session_broker.create_topic(unique("standby-end"), partitions=1)
    producer = Producer(conf)

    def produce(n: int) -> None:
        for i in range(n):
            producer.produce(topic, key=b"k%d" % i, value=b"v", partition=0)
        assert producer.flush(10) == 0

    produce(3)
    nxt = {"offset": 0}
    source = StandbySource(conf, lambda t, p: nxt["offset"])
    try:
        source.set_partitions({(topic, 0)})
        assert source.end_offset(topic, 0) is None  # nothing fetched yet

        def end() -> int | None:
            got = source.poll(100, 0.1)
            for m in got.records:
                nxt["offset"] = m.offset() + 1
            return source.end_offset(topic, 0)
        wait_until(lambda: end() == 3, 20, "the end offset of partition 0")
        source.set_partitions(set())  # the standby moves away; 5 more records meanwhile
        produce(5)
        source.set_partitions({(topic, 0)})  # and back, from the stored offset 3
        assert source.end_offset(topic, 0) is None  # not the 3 of the earlier assignment
        wait_until(lambda: end() == 8, 20, "the end offset after the first fetch")
    finally:
        source.close()

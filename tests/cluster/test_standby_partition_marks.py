"""`StandbySource.set_partitions` forgets the marks of a partition it removes (paused, held,
not fetched yet, what `hold` kept): a standby partition paused, removed and added again
kept its pause mark, so its end offset (and lag) read unknown for good. Added again, it is
resumed in librdkafka too (which keeps a pause across assignments), and its end reads known
once a fetch answered."""

from __future__ import annotations

from typing import Any

from confluent_kafka import TopicPartition

from connectors.kafka import StandbySource
from connectors.kafka_reach import Reach
from connectors.kafka_reader import Polled, Reader
from tests.support.fake_messages import Msg


class Consumer:
    """librdkafka's side: assignments, pauses (kept across assignments, as librdkafka
    keeps them), and a fetch that answers with one record per fetchable partition."""

    def __init__(self) -> None:
        self.assigned: set[tuple[str, int]] = set()
        self.paused: set[tuple[str, int]] = set()

    def incremental_assign(self, tps: list[TopicPartition]) -> None:
        self.assigned |= {(tp.topic, tp.partition) for tp in tps}

    def incremental_unassign(self, tps: list[TopicPartition]) -> None:
        self.assigned -= {(tp.topic, tp.partition) for tp in tps}

    def pause(self, tps: list[TopicPartition]) -> None:
        self.paused |= {(tp.topic, tp.partition) for tp in tps}

    def resume(self, tps: list[TopicPartition]) -> None:
        self.paused -= {(tp.topic, tp.partition) for tp in tps}

    def consume(self, n: int, timeout: float) -> list[Any]:
        return [Msg(t, p, 41) for t, p in sorted(self.assigned - self.paused)]

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool = False
                              ) -> tuple[int, int]:
        return 0, 42


def _standby() -> tuple[StandbySource, Consumer]:
    consumer = Consumer()
    src = StandbySource.__new__(StandbySource)
    Reader.__init__(src, (consumer, Reach(100)), lambda t, p: 41)  # type: ignore[arg-type]
    return src, consumer


def test_a_partition_paused_removed_and_added_again_reads_its_end() -> None:
    src, consumer = _standby()
    src.set_partitions({("t", 0), ("t", 1)})
    src.poll(100, 0)
    assert src.end_offset("t", 0) == 42
    src.pause("t", 0)
    assert src.end_offset("t", 0) is None  # paused: nothing fetched, unknown
    src.set_partitions({("t", 1)})
    src.set_partitions({("t", 0), ("t", 1)})
    assert ("t", 0) not in src._paused  # noqa: SLF001 - the mark that kept it unknown
    assert src.end_offset("t", 0) is None  # assigned again, no fetch answered yet
    assert ("t", 0) not in consumer.paused  # librdkafka fetches it again
    got = src.poll(100, 0)
    assert {(m.topic(), m.partition()) for m in got.records} == {("t", 0), ("t", 1)}
    assert src.end_offset("t", 0) == 42
    assert src.end_offset("t", 1) == 42


def test_a_removed_partition_forgets_its_hold_marks() -> None:
    src, consumer = _standby()
    src.set_partitions({("t", 0), ("t", 1)})
    src.hold(0)  # both paused by hold; what it was given is kept for the next poll
    src._carry = Polled([Msg("t", 0, 41), Msg("t", 1, 41)], {("t", 0): 42})  # noqa: SLF001
    src.set_partitions({("t", 1)})
    assert ("t", 0) not in src._held  # noqa: SLF001
    src.set_partitions({("t", 0), ("t", 1)})
    got = src.poll(100, 0)  # the kept record of t/0 is not returned: it starts again
    assert [(m.topic(), m.partition()) for m in got.records] == [("t", 1)]
    assert got.ends == {}
    assert ("t", 0) not in consumer.paused

"""What `Source.hold` kept while a batch was retried (records still returned after the
pause) is forgotten for a partition the group revokes meanwhile: if the group gives it
back before the next poll, it is fetched again from where the store says, and a kept
record past that offset would have been applied first, skipping the records between."""

from __future__ import annotations

from typing import Any

from confluent_kafka import TopicPartition

from connectors.kafka import Source
from connectors.kafka_reader import Polled, Reader
from tests.support.fake_messages import Msg


class Consumer:
    def __init__(self) -> None:
        self.resumed: list[Any] = []

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        pass

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.resumed.extend(partitions)

    def consume(self, n: int, timeout: float) -> list[Any]:
        return []


def _source() -> Source:
    src = Source.__new__(Source)
    Reader.__init__(src, (Consumer(), None), lambda t, p: 90)  # type: ignore[arg-type]
    src.on_ownership = None
    src._closing = False  # noqa: SLF001
    return src


def test_a_revoked_partition_loses_what_hold_kept_of_it() -> None:
    src = _source()
    src.assigned = {("t", 0), ("t", 1)}
    src._carry = Polled([Msg("t", 0, 100), Msg("t", 1, 5), Msg("t", 0, 101)],  # noqa: SLF001
                        {("t", 0): 102, ("t", 1): 6})
    src._revoke(src._consumer, [TopicPartition("t", 0)])  # noqa: SLF001
    src._assign(src._consumer, [TopicPartition("t", 0)])  # noqa: SLF001 - given back
    got = src.poll(100, 0)
    assert [(m.topic(), m.partition(), m.offset()) for m in got.records] == [("t", 1, 5)]
    assert got.ends == {("t", 1): 6}

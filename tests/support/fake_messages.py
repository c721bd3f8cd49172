"""A stand-in for a confluent-kafka `Message` (topic, partition, offset; no error), for
unit tests of the consumer bookkeeping in connectors/kafka_reader.py."""

from __future__ import annotations


class Msg:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self._t, self._p, self._o = topic, partition, offset

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def error(self) -> None:
        return None

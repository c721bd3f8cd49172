"""confluent-kafka producers: `Sink` (dead letters, change events, membership) and
`produce_records` (tools, tests, benchmarks)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, cast

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from connectors.kafka_admin import client_conf
from connectors.kafka_log import with_logging
from materializer.errors import InfrastructureError

log = logging.getLogger("materializer.kafka")


IN_ORDER = "max.in.flight.requests.per.connection"


class MessageTooLarge(InfrastructureError):
    """A message larger than the producer (`message.max.bytes`) or the topic
    (`max.message.bytes`) takes: sending it again fails the same way until a limit is
    raised, so the caller should say so loudly rather than wait for it quietly."""

    produced = 0
    """Set by a caller producing a sequence: how many of it went to the producer first."""


def _too_large(err: KafkaError | None) -> bool:
    return err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE


def sink_settings(conf: dict[str, str], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The producer settings of a `Sink`: ours, then the catalog's Kafka settings, then
    `extra`, with one rule last: messages to a partition arrive in the order produced.
    librdkafka retries a failed request (a broker restart, a leader change) while later
    requests to the same partition may already have succeeded, unless one request is in
    flight at a time or the producer is idempotent; change events need each key's order,
    so without `enable.idempotence: true` the in-flight requests are 1 (a larger value in
    the catalog is lowered, with a warning)."""
    settings: dict[str, Any] = {"linger.ms": 5, "enable.idempotence": False}
    settings.update(client_conf(conf))
    settings.update(extra or {})
    if str(settings.get("enable.idempotence")).lower() not in ("true", "1"):
        asked = settings.get(IN_ORDER, 1)
        if str(asked) != "1":
            log.warning("kafka: %s %s is lowered to 1 for the producer of change events, "
                        "dead letters and membership (each key's events in order; set "
                        "enable.idempotence: true to keep up to 5)", IN_ORDER, asked)
        settings[IN_ORDER] = 1
    return settings


class Sink:
    """A producer for dead letters and change events; `flush` raises if anything failed.

    Delivery reports come for failures only (`delivery.report.only.error`, one callback
    set on the producer): a message that was delivered costs no Python call, and `flush`
    still raises for every one that failed, and for any still unacknowledged."""

    def __init__(self, conf: dict[str, str], extra: dict[str, Any] | None = None) -> None:
        settings = sink_settings(conf, extra)
        settings.update({"delivery.report.only.error": True, "on_delivery": self._report})
        self._producer = Producer(with_logging(settings))
        self._failed: list[str] = []
        self._too_large = False  # a failure since the last flush was a message too large
        self.failures = 0  # deliveries that failed since the start

    def _report(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._failed.append(f"{msg.topic()}: {err}")
            self._too_large = self._too_large or _too_large(err)
            self.failures += 1

    def produce(self, topic: str, key: bytes | None, value: bytes | None,
                partition: int | None = None,
                headers: list[tuple[str, bytes]] | None = None) -> None:
        produce = self._producer.produce
        while True:
            try:
                if headers:
                    produce(topic, value, key, -1 if partition is None else partition,
                            headers=cast(Any, headers))
                elif partition is None:
                    produce(topic, value, key)
                else:
                    produce(topic, value, key, partition)
                return
            except BufferError:
                self._producer.poll(0.1)
            except KafkaException as e:
                kind = MessageTooLarge if _too_large(e.args[0] if e.args else None) \
                    else InfrastructureError
                raise kind(f"producing to {topic} failed: {e}") from e

    def produce_many(self, topic: str,
                     messages: Iterable[tuple[bytes | None, bytes | None, int]]) -> None:
        """Produce each (key, value, partition) in order, as `produce` would one by one
        (partition -1: the partitioner chooses by key), in one loop (change events: no
        Python call of ours per message). A MessageTooLarge says in `produced` how many of
        `messages` went to the producer before the one refused."""
        produce = self._producer.produce
        for i, (key, value, partition) in enumerate(messages):
            try:
                produce(topic, value, key, partition)
            except (BufferError, KafkaException):  # `produce` waits for room, or says why
                try:
                    self.produce(topic, key, value, None if partition < 0 else partition)
                except MessageTooLarge as e:
                    e.produced = i
                    raise

    def queued(self) -> int:
        """Messages produced and neither acknowledged nor failed yet."""
        return len(self._producer)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until everything produced so far is acknowledged."""
        remaining = self._producer.flush(timeout)
        failed, self._failed = self._failed, []
        too_large, self._too_large = self._too_large, False
        if remaining or failed:
            raise (MessageTooLarge if too_large else InfrastructureError)(
                f"producer: {remaining} message(s) unacknowledged, failures: {failed[:3]}")


def produce_records(conf: dict[str, str], topic: str,
                    records: Iterable[tuple[bytes | None, bytes | None]],
                    partitioner: str = "murmur2_random") -> dict[int, int]:
    """Produce (key, value) pairs, partitioned like the Java client (murmur2) by default,
    wait for every acknowledgement, and return per partition the offset after the last
    record written (what a fully caught-up consumer's next offset is)."""
    producer = Producer(with_logging({
        **client_conf(conf), "linger.ms": 20, "partitioner": partitioner,
        "queue.buffering.max.messages": 500_000, "batch.num.messages": 10_000}))
    ends: dict[int, int] = {}
    errors: list[str] = []

    def report(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(str(err))
            return
        # a delivered message always has both (None only before delivery)
        p, o = cast(int, msg.partition()), cast(int, msg.offset())
        if o + 1 > ends.get(p, 0):
            ends[p] = o + 1

    for i, (key, value) in enumerate(records):
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=report)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    if producer.flush(60) or errors:
        raise InfrastructureError(f"producing to {topic} failed: {errors[:3]}")
    return ends

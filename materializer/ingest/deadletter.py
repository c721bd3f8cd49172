"""Dead letters: rejected records sent, raw, to the relation's dead-letter topic.

Guarantees:
- A record under `dead_letter` is produced with headers that say why
  (`materializer.error`, `.reason`, `.table`, `.topic`, `.partition`, `.offset`) and
  acknowledged by the broker before the batch that rejected it commits (`settle`).
- A record too large for the producer (`message.max.bytes`) or for the dead-letter
  topic (its `max.message.bytes`, asked of the broker before the first dead letter to
  it and again after a failed delivery) is never a crash: its value (then its key) is
  cut to fit and the header `materializer.truncated` gives the original sizes
  `key=<n>,value=<n>`. The whole dead letter (key, value and every header, the error
  text cut too if need be) fits the smaller limit, whatever it is set to: a dead letter
  the producer or the broker refuses would stop the partition for good (its batch is
  retried and refused again).
- A batch applied again after its dead letters failed to settle (the broker did not
  answer in time) first waits for the copies the failed attempt left in the producer:
  while they are there it fails again without adding copies, and once all of them are
  acknowledged it does not send those records again (a broker that hangs for minutes
  costs no pile of copies).
- A dead letter not delivered (its topic missing, the broker away) fails its batch with an
  InfrastructureError that names the dead-letter topic, the place (table, topic, partition,
  offset) of the first record whose dead letter waits and how many wait; the worker applies
  the batch again with backoff, its group consumer held meanwhile (`ingest.batch_retry`).
  One wait for acknowledgements blocks at most `flush_timeout` seconds: the worker sets it
  to a third of the consumer's `max.poll.interval.ms` (at most 30 s), so a long outage
  does not make it leave its group (the consumer is not polled during the wait).
- At least once: a batch applied again (the broker failed before it committed, a
  process was killed after the acknowledgement and before the commit, `rebuild`
  replays the topic) sends its dead letters again, with the same `.topic`,
  `.partition` and `.offset` headers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from connectors.kafka_admin import max_poll_interval_s, topic_max_message_bytes
from materializer.errors import InfrastructureError
from materializer.ingest.apply import Rejected
from materializer.ingest.relation import count_rejects
from materializer.specs import RelationSpec

DEFAULT_MAX_MESSAGE = 1_000_000  # librdkafka's message.max.bytes default
_FRAMING = 512  # a record batch's and a record's framing, the headers' lengths
MAX_ERROR_CHARS = 2000  # the error text is cut to this (then to half the room left)
FLUSH_TIMEOUT = 30.0  # seconds a batch waits for its dead letters' acknowledgements, at most


def dead_letter_topic(spec: RelationSpec) -> str:
    return spec.dead_letter_topic or f"{spec.topic}.dead-letter"


def settle_within(kafka_conf: Mapping[str, Any]) -> float:
    """Seconds one wait for dead-letter acknowledgements may block a group's worker: a
    third of `max.poll.interval.ms` (the time between two polls of its consumer), at most
    30 s, at least 1 s. A longer outage fails the batch, which is applied again with its
    consumer held (`ingest.batch_retry`), never committed past an undelivered dead letter."""
    max_poll = max_poll_interval_s(kafka_conf)
    if max_poll is None:
        return FLUSH_TIMEOUT
    return max(1.0, min(FLUSH_TIMEOUT, max_poll / 3))


def dead_letter_limit(kafka_conf: Mapping[str, str]) -> Callable[[str], int | None]:
    """What `DeadLetters` asks a dead-letter topic's `max.message.bytes` with."""
    def ask(topic: str) -> int | None:
        return topic_max_message_bytes(dict(kafka_conf), topic)
    return ask


def fit(key: bytes | None, value: bytes | None, limit: int
        ) -> tuple[bytes | None, bytes | None, str | None]:
    """Key and value cut to fit `limit` bytes together (none if `limit` <= 0), and the
    truncation note (or None)."""
    limit = max(0, limit)
    k, v = len(key or b""), len(value or b"")
    if k + v <= limit:
        return key, value, None
    note = f"key={k},value={v}"
    if value is not None:
        value = value[:max(0, limit - k)]
    if key is not None and k > limit:
        key = key[:limit]
    return key, value, note


def cut_utf8(text: str, limit: int) -> bytes:
    """`text` as UTF-8 (what is not encodable replaced by `?`), at most `limit` bytes,
    never ending inside a character."""
    raw = text.encode("utf-8", "replace")
    if len(raw) <= limit:
        return raw
    return raw[:limit].decode("utf-8", "ignore").encode("utf-8")


class DeadLetters:
    """The worker's `RejectRouter`: produces dead letters through the `Sink` that
    `sink_factory` gives, which must be theirs alone (the worker's and rebuild's are): a
    flush of it then says whether every dead letter in it was delivered."""

    def __init__(self, sink_factory: Any, kafka_conf: Mapping[str, str],
                 topic_limit: Callable[[str], int | None] | None = None) -> None:
        self._sink_factory = sink_factory
        self._sink: Any = None
        self.max_bytes = int(kafka_conf.get("message.max.bytes", DEFAULT_MAX_MESSAGE))
        # a topic's `max.message.bytes` (None: the broker did not say), asked once, and
        # again after a failed delivery (the topic was missing, or its limit was lowered)
        self._topic_limit = topic_limit
        self._topic_limits: dict[str, int | None] = {}
        self.sent = 0  # dead letters the broker acknowledged (`materializer_dead_letters_total`)
        self.flush_timeout = FLUSH_TIMEOUT  # seconds one wait for acknowledgements may take
        self._unsettled: set[tuple[str, int, int]] = set()  # produced since the last settle
        # of each, the source topic and the dead-letter topic (said when they wait)
        self._places: dict[tuple[str, int, int], tuple[str, str]] = {}
        self._acknowledged: set[tuple[str, int, int]] = set()  # of those, known delivered
        self._failures_seen = 0  # the sink's failed deliveries already accounted for

    def route(self, spec: RelationSpec, partition: int, rejects: Sequence[Rejected]
              ) -> dict[str, int]:
        for r in rejects:
            if r.policy != "dead_letter":
                continue
            if self._unsettled:
                with self._said():
                    self._settle_earlier()
            if (spec.name, partition, r.offset) not in self._acknowledged:
                with self._said((spec.name, partition, r.offset), spec.topic,
                                dead_letter_topic(spec)):
                    self._send(spec, partition, r)
        return count_rejects(rejects)

    @contextmanager
    def _said(self, sending: tuple[str, int, int] | None = None, source: str = "",
              to: str = "") -> Iterator[None]:
        """An InfrastructureError raised inside, raised again (same class) naming the
        dead-letter topic, the place of the first record whose dead letter waits (of those
        in the producer, else the one being sent) and how many wait."""
        waiting = {k: self._places[k] for k in self._unsettled if k in self._places}
        try:
            yield
        except InfrastructureError as e:
            if sending is not None:
                waiting.setdefault(sending, (source, to))
            if not waiting:
                raise
            first = min(waiting)
            (table, p, offset), (topic, dlq) = first, waiting[first]
            raise type(e)(
                f"{len(waiting)} dead letter(s) not delivered to {dlq}, the first for {table} "
                f"record {topic} partition {p} offset {offset} (nothing from it on is "
                f"committed until it is): {e}") from e

    def _settle_earlier(self) -> None:
        """Dead letters of an attempt that failed before its batch committed: wait for them.
        InfrastructureError while some are still in the producer (the batch fails again and
        adds no copies); once all are acknowledged they are not sent again; if some failed
        (which ones is not known), every one of them is sent again."""
        try:
            self._flush()
        except InfrastructureError:
            if self._sink.queued():
                raise

    def _flush(self) -> None:
        """Flush the producer. All delivered: the records sent are `_acknowledged`. Else
        InfrastructureError; if a delivery failed, no record sent counts as delivered."""
        try:
            self._sink.flush(self.flush_timeout)
        except InfrastructureError:
            if self._sink.failures != self._failures_seen:
                self._failures_seen = self._sink.failures
                self._unsettled.clear()
                self._topic_limits.clear()
            raise
        self.sent += len(self._unsettled)  # counted once acknowledged, not when produced:
        self._acknowledged |= self._unsettled  # a copy the broker refused is in no topic
        self._unsettled.clear()

    def _send(self, spec: RelationSpec, partition: int, r: Rejected) -> None:
        if self._sink is None:
            self._sink = self._sink_factory()
        headers = [("materializer.reason", r.reason.encode()),
                   ("materializer.table", spec.name.encode()),
                   ("materializer.topic", spec.topic.encode()),
                   ("materializer.partition", str(partition).encode()),
                   ("materializer.offset", str(r.offset).encode())]
        topic = dead_letter_topic(spec)
        room = self.limit(topic) - _FRAMING - sum(len(n) + len(v) for n, v in headers)
        room -= len("materializer.error") + len("materializer.truncated") + 40  # + the note
        message = cut_utf8(r.message[:MAX_ERROR_CHARS], max(0, room // 2))
        key, value, note = fit(r.key, r.value, room - len(message))
        headers.insert(0, ("materializer.error", message))
        if note is not None:
            headers.append(("materializer.truncated", note.encode()))
        self._sink.produce(topic, key, value, headers=headers)
        self._unsettled.add((spec.name, partition, r.offset))  # in the producer now
        self._places[(spec.name, partition, r.offset)] = (spec.topic, topic)

    def limit(self, topic: str) -> int:
        """The most bytes a dead letter to `topic` may hold: the producer's limit, or the
        topic's if the broker says it is lower."""
        if self._topic_limit is None:
            return self.max_bytes
        if topic not in self._topic_limits:
            self._topic_limits[topic] = self._topic_limit(topic)
        of_topic = self._topic_limits[topic]
        return self.max_bytes if of_topic is None else min(self.max_bytes, of_topic)

    def settle(self) -> None:
        """Block until every dead letter routed so far is acknowledged (the batch may
        commit), or raise InfrastructureError (the batch is applied again later)."""
        if self._sink is not None:
            with self._said():
                self._flush()
        self._acknowledged.clear()
        self._places.clear()

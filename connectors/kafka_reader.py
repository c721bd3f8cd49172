"""The reading half of every source (`connectors.kafka`): one confluent-kafka consumer
behind what the worker uses of it (batches, watermarks, commits, pause, seek, close).

Guarantees: each partition's records come in offset order; the end a poll reached is
reported (`Polled.ends`); an offset the broker no longer has is reported
(`Reader.out_of_range`), never silently moved; a partition's end offset reads unknown
(None) rather than a stale or guessed value (`Reader.end_offset`). `Reader.hold` keeps the
consumer in its group while the caller takes no records: what it still returns is kept,
in order, for the next `poll`, except a revoked partition's (`Reader._drop_carried`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NamedTuple, cast

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from connectors.kafka_admin import cached_watermarks
from connectors.kafka_log import with_logging
from connectors.kafka_reach import STATS_EVERY_MS, Reach
from materializer.errors import InfrastructureError

log = logging.getLogger("materializer.kafka")

StartOffsets = Callable[[str, int], "int | None"]
HOLD_RECORDS = 10_000  # at most this many records kept by one `hold` (it paused them all)


def _consumer(group: str, conf: dict[str, Any], reach: Reach | None = None) -> Consumer:
    """A consumer that never commits on its own and fetches in large batches; `conf` wins,
    except `auto.offset.reset`: an offset the broker no longer has (retention, a recreated
    topic) is reported (`Reader.out_of_range`), never silently moved;
    `enable.partition.eof`: the end of a partition is reported (`Polled.ends`), so a
    partition that ends in a transaction marker, which no record stands for, is read to its
    end; `isolation.level`: `read_committed`, so that no record of a transaction still open,
    or aborted, is ever applied (the catalog refuses another value); and, with `reach`,
    librdkafka's statistics every `STATS_EVERY_MS` go to it."""
    settings: dict[str, Any] = {
        "group.id": group, "enable.auto.commit": False, "enable.auto.offset.store": False,
        "fetch.wait.max.ms": 100,
        "topic.metadata.refresh.interval.ms": 10_000,  # a topic created later shows up soon
        "queued.min.messages": 200000, **conf, "auto.offset.reset": "error",
        "enable.partition.eof": True, "isolation.level": "read_committed"}
    if reach is not None:
        settings.update({"statistics.interval.ms": STATS_EVERY_MS, "stats_cb": reach.on_stats})
    return Consumer(with_logging(settings))


def reader_consumer(group: str, conf: dict[str, Any]) -> tuple[Consumer, Reach]:
    """A `_consumer` with its `Reach` (the fetch wait it allows for read from `conf`)."""
    try:
        wait = float(conf.get("fetch.wait.max.ms", 100))
    except (TypeError, ValueError):
        wait = 100.0
    reach = Reach(wait)
    return _consumer(group, conf, reach), reach


def start_at(offset: int | None) -> int:
    """Where a partition's read starts: the store's next offset, or the beginning."""
    return OFFSET_BEGINNING if offset is None else offset


class Polled(NamedTuple):
    """One poll: the records, and per partition the offset at which the consumer reached
    the end of what the broker holds, if it did in this poll. Every record below that
    offset was returned, in this poll or an earlier one, except what no record stands
    for: transaction markers (and, where the broker says so, aborted transactions' records)."""

    records: list[Message]
    ends: dict[tuple[str, int], int]


class Reader:
    """What the worker uses of a consumer: batches, watermarks, commits, close."""

    def __init__(self, made: tuple[Consumer, Reach], start_offsets: StartOffsets) -> None:
        self._consumer, self._reach = made
        self._start_offsets = start_offsets
        self._paused: set[tuple[str, int]] = set()
        self.assigned: set[tuple[str, int]] = set()
        self.generation = 0  # bumped on every assignment: the worker re-checks its topics
        self.out_of_range: dict[tuple[str, int], str] = {}
        """Partitions whose start offset the broker said it does not have (and why); the
        consumer fetches nothing more from them until they are rewound."""
        self._unfetched: set[tuple[str, int]] = set()
        """Partitions (re)assigned that no fetch response (a record, the end) has come for
        since: librdkafka keeps the high watermark of an earlier assignment meanwhile."""
        self._held: set[tuple[str, int]] = set()  # paused by `hold`, resumed by `poll`
        self._holding = False  # inside `hold`: partitions assigned meanwhile are held too
        self._carry: Polled | None = None  # what `hold` was given, for the next `poll`

    def poll_batch(self, max_records: int, timeout: float) -> list[Message]:
        """Up to `max_records` messages, each partition in offset order (see `poll`)."""
        return self.poll(max_records, timeout).records

    def poll(self, max_records: int, timeout: float) -> Polled:
        """Up to `max_records` messages, each partition in offset order, and the ends
        reached (see Polled). Broker-level errors that are not fatal are logged; fatal ones
        raise InfrastructureError. Resumes what `hold` paused and returns first what it
        was given."""
        if self._held:
            self._release()
        if self._carry is not None:
            carry, self._carry = self._carry, None
            mine = self.assigned  # a partition revoked meanwhile starts again where the
            return Polled(  # store says when it comes back: its records are not wanted
                [m for m in carry.records if (m.topic(), m.partition()) in mine],
                {tp: o for tp, o in carry.ends.items() if tp in mine})
        return self._consume(max_records, timeout)

    def hold(self, timeout: float) -> None:
        """Serve the group for up to `timeout` s while the caller takes no records (a batch
        retried with backoff while the schema registry is away): every assigned partition
        is paused and the consumer polled, so the member stays in its group past
        `max.poll.interval.ms` (which counts the time between polls, not heartbeats) and
        takes part in rebalances meanwhile (`on_ownership`). librdkafka drops what it had
        fetched of a paused partition and, on resume, fetches again from the record after
        the last one it returned; anything still returned meanwhile is kept, in order, and
        is what the next `poll` returns (which resumes the partitions)."""
        self._hold_new(sorted(self.assigned - self._paused - self._held))
        self._holding = True
        try:
            got = self._consume(HOLD_RECORDS, timeout)
        finally:
            self._holding = False
        if got.records or got.ends:
            if self._carry is None:
                self._carry = got
            else:
                self._carry.records.extend(got.records)
                self._carry.ends.update(got.ends)

    def _drop_carried(self, pairs: set[tuple[str, int]]) -> None:
        """Forget what `hold` kept of revoked `pairs`: if the group gives one back, it is
        fetched again from where the store says, and a kept record past that would skip
        the ones between."""
        carry = self._carry
        if carry is not None:
            carry.records[:] = [m for m in carry.records
                                if (m.topic(), m.partition()) not in pairs]
            for tp in pairs & carry.ends.keys():
                del carry.ends[tp]

    def _hold_new(self, pairs: list[tuple[str, int]]) -> None:
        if not pairs:
            return
        try:
            self._consumer.pause([TopicPartition(t, p) for t, p in pairs])
        except KafkaException as e:  # polled all the same: its records are carried
            log.warning("consumer: cannot pause %s: %s", pairs, e)
            return
        self._held.update(pairs)

    def _release(self) -> None:
        pairs = sorted((self._held & self.assigned) - self._paused)
        try:
            if pairs:
                self._consumer.resume([TopicPartition(t, p) for t, p in pairs])
        except KafkaException as e:  # kept held: tried again at the next poll
            log.warning("consumer: cannot resume %s: %s", pairs, e)
            return
        self._held.clear()
        self._unfetched.update(pairs)  # the end cached is the one from before the pause

    def _consume(self, max_records: int, timeout: float) -> Polled:
        msgs = self._consumer.consume(max_records, timeout)
        out: list[Message] = []
        ends: dict[tuple[str, int], int] = {}
        if not msgs:
            return Polled(out, ends)
        for m in msgs:
            err = m.error()
            if err is None:
                out.append(m)
                if self._unfetched:
                    self._unfetched.discard((cast(str, m.topic()), cast(int, m.partition())))
            elif err.code() == KafkaError._PARTITION_EOF:
                ends[(cast(str, m.topic()), cast(int, m.partition()))] = cast(int, m.offset())
                self._unfetched.discard((cast(str, m.topic()), cast(int, m.partition())))
            elif err.code() == KafkaError._AUTO_OFFSET_RESET and m.topic() is not None:
                self.out_of_range[(cast(str, m.topic()), cast(int, m.partition()))] = str(err)
            elif err.fatal():
                raise InfrastructureError(f"Kafka consumer failed: {err}")
            else:
                log.warning("consumer: %s", err)
        return Polled(out, ends)

    def rewind(self, topic: str) -> None:
        """Move every assigned partition of `topic` back to where the store says it starts
        (the beginning, after its state was dropped)."""
        for t, p in sorted(self.assigned):
            if t == topic:
                self.out_of_range.pop((t, p), None)
                try:
                    self._consumer.seek(TopicPartition(t, p, start_at(self._start_offsets(t, p))))
                except KafkaException as e:
                    raise InfrastructureError(f"cannot rewind {t}/{p}: {e}") from e

    def pause(self, topic: str, partition: int) -> None:
        """Fetch nothing more of an assigned partition until `resume` (a copy of it is on
        its way from another worker)."""
        try:
            self._consumer.pause([TopicPartition(topic, partition)])
        except KafkaException as e:
            raise InfrastructureError(f"cannot pause {topic}/{partition}: {e}") from e
        self._paused.add((topic, partition))

    def resume(self, topic: str, partition: int) -> None:
        try:
            self._consumer.resume([TopicPartition(topic, partition)])
        except KafkaException as e:
            raise InfrastructureError(f"cannot resume {topic}/{partition}: {e}") from e
        self._paused.discard((topic, partition))

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """Continue an assigned partition at `offset` (what a copy from another worker
        brought the store to); records fetched before are dropped."""
        try:
            self._consumer.seek(TopicPartition(topic, partition, offset))
        except KafkaException as e:
            raise InfrastructureError(f"cannot move {topic}/{partition} to offset {offset}: "
                                      f"{e}") from e

    def end_offset(self, topic: str, partition: int) -> int | None:
        """The partition's high watermark as its leader last said (cached, no broker round
        trip), or None when that is not known to be current: before the first fetch
        response (since its last assignment: a partition assigned again would otherwise
        read the end of its earlier assignment), while the partition is paused (nothing is
        fetched), and while its leader is not reached (`Reach`: broker stopped or
        unreachable). A partition held (`hold`) is paused too, and reads unknown from then
        until the first fetch response after `poll` resumed it: records written meanwhile
        are not in the end librdkafka cached. Lag and "caught up" are computed from this,
        so they read unknown rather than 0 in those cases.

        While a transaction is open in the partition, its end is the last stable offset
        instead (`Reach.stable_end`): the end of what the consumer (`read_committed`) can
        read, where its end of partition is reported (`Polled.ends`); the records of the
        open transaction count once it commits (a transaction left open by a producer
        gone would otherwise read "not caught up" until the broker aborts it)."""
        pair = (topic, partition)
        if pair in self._paused or pair in self._held or pair in self._unfetched \
                or not self._reach.reached(topic, partition):
            return None
        marks = self.watermarks(topic, partition)
        return None if marks is None else self._reach.stable_end(topic, partition, marks[1])

    def watermarks(self, topic: str, partition: int) -> tuple[int, int] | None:
        """(log start, high watermark) from the last fetch response for a partition (cached,
        no broker round trip); None before the first one."""
        return cached_watermarks(self._consumer, topic, partition)

    def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        """Tell the group how far we are (for monitoring; LMDB stays the truth)."""
        if not offsets:
            return
        tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            self._consumer.commit(offsets=tps, asynchronous=True)
        except KafkaException as e:
            log.debug("commit failed (harmless): %s", e)

    def close(self) -> None:
        self._consumer.close()

"""Which partitions' high watermarks are current, and where a transaction still open stops
what can be read (`Reach`), from librdkafka's statistics."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

log = logging.getLogger("materializer.kafka")


STATS_EVERY_MS = 1000
"""How often librdkafka reports its statistics to a worker's consumers (`Reach`)."""
REACH_STALE_S = 5.0
"""A partition's end offset is current only if its leader answered within this many
seconds (plus the fetch wait) and the statistics saying so are this recent."""


class Reach:
    """Which partitions' high watermarks are current: fed by librdkafka's statistics.

    librdkafka keeps the high watermark of the last fetch response forever: with the broker
    stopped or unreachable, it still reads as the end, so a worker that had caught up said
    "lag 0" until its group session expired (45 s by default; forever while only a
    partition leader is unreachable). A partition the last statistics show is *reached*
    when they are at most `REACH_STALE_S` old and show it with a known leader whose
    connection is up and either received something within `REACH_STALE_S` plus
    `fetch.wait.max.ms`, or holds fetched records of it not consumed yet (librdkafka fetches
    nothing more while its queue is full: the lag then reads at least 1, a lower bound).
    A partition they do not show yet (before the first statistics, assigned since) is
    reached: its high watermark, if any, came from a fetch response since then.

    They also give each partition's last stable offset, the end of what a `read_committed`
    reader can read (`stable_end`)."""

    def __init__(self, fetch_wait_ms: float, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.clock = clock
        self.idle_limit_us = (REACH_STALE_S * 1000 + fetch_wait_ms) * 1000
        self._at: float | None = None
        self._reached: frozenset[tuple[str, int]] = frozenset()
        self._shown: frozenset[tuple[str, int]] = frozenset()
        self._marks: dict[tuple[str, int], tuple[int, int]] = {}  # (high, last stable)

    def on_stats(self, text: str) -> None:
        """librdkafka's `stats_cb` (called from the consumer's poll)."""
        try:
            stats = json.loads(text)
            brokers = [b for b in stats.get("brokers", {}).values()
                       if b.get("state") == "UP" and b.get("nodeid", -1) >= 0]
            up = {b["nodeid"] for b in brokers}
            answered = {b["nodeid"] for b in brokers
                        if 0 <= b.get("rxidle", -1) <= self.idle_limit_us}
            # a partition with fetched records not consumed yet is not fetched meanwhile
            # (a full queue): its last end is a lower bound above what was consumed, so
            # the lag it gives is at least 1, never a false 0
            parts = [((topic, int(p)), part) for topic, t in stats.get("topics", {}).items()
                     for p, part in t.get("partitions", {}).items() if int(p) >= 0]
            reached = frozenset(
                tp for tp, part in parts
                if part.get("leader", -1) in answered
                or (part.get("leader", -1) in up and part.get("fetchq_cnt", 0) > 0))
            marks = {tp: (int(part["hi_offset"]), int(part["ls_offset"])) for tp, part in parts
                     if "hi_offset" in part and "ls_offset" in part}
        except (ValueError, TypeError, AttributeError) as e:
            log.debug("unreadable librdkafka statistics: %s", e)
            return
        self._reached, self._shown = reached, frozenset(tp for tp, _ in parts)
        self._marks = marks
        self._at = self.clock()

    def reached(self, topic: str, partition: int) -> bool:
        """Whether the partition's leader answered lately (see the class doc)."""
        at = self._at
        if at is None:
            return True
        if self.clock() - at > REACH_STALE_S:
            return False
        return (topic, partition) in self._reached or (topic, partition) not in self._shown

    def stable_end(self, topic: str, partition: int, high: int) -> int:
        """The end a `read_committed` reader reaches, given the partition's current high
        watermark `high` (its last fetch response's): the last stable offset the statistics
        show, when they show it below the same high watermark; else `high`.

        Below the first record of a transaction still open nothing more can be read: its
        records (and those after it) are not the topic's until it commits, and a transaction
        left open (a producer gone) holds them back until the broker aborts it
        (`transaction.timeout.ms`, up to 15 min). The last stable offset moves only when a
        commit or abort marker is written, which moves the high watermark too: so, while
        the high watermark is the one the statistics show with it, it is current, whatever
        the age of the statistics (a false end is never given: with another high watermark,
        `high` is returned, and the lag counts the open transaction's records a moment)."""
        marks = self._marks.get((topic, partition))
        if marks is None or marks[0] != high or not 0 <= marks[1] < high:
            return high
        return marks[1]

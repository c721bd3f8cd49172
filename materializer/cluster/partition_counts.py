"""The partition counts of a worker's source topics, as the broker last said them
(`PartitionCounts`), for its membership record: the API routes misses and scans by them.

Guarantees:
- A count is never guessed: None while not known (the topic does not exist yet, the
  broker did not answer); a known count stays known when the broker errors.
- A known count is asked again every PARTITION_REFRESH_S; an unknown one after
  UNKNOWN_COUNT_RETRY_S, then at doubling intervals up to UNKNOWN_COUNT_MAX_S (a topic
  that never appears costs one metadata request per 5 s); either at once after
  `ask_soon` (the group assigned a partition of a topic whose count is unknown or smaller).
- Asking runs in a thread of its own, one at a time (an unreachable broker takes seconds
  the membership thread must not spend), and `on_learned` is called when a count changed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from materializer.errors import InfrastructureError

log = logging.getLogger("materializer.cluster")

PARTITION_REFRESH_S = 30.0  # a topic's known partition count is asked again this often
UNKNOWN_COUNT_RETRY_S = 0.5  # an unknown one (no topic yet, no answer) sooner: first after
UNKNOWN_COUNT_MAX_S = 5.0  # this, doubling up to this


class PartitionCounts:
    """Topic -> partition count (or None), asked of the broker as the module doc says."""

    def __init__(self, topics: Iterable[str], kafka_config: dict[str, Any],
                 on_learned: Callable[[], None]) -> None:
        self.topics = sorted(set(topics))
        self.kafka_config = kafka_config
        self.on_learned = on_learned
        self._lock = threading.Lock()
        self._counts: dict[str, int | None] = {}
        self.due: dict[str, float] = {}  # topic -> when to ask its count (monotonic)
        self._wait: dict[str, float] = {}  # topic -> back-off while it is unknown
        self._soon: set[str] = set()  # topics to ask at once (`ask_soon`)
        self._asking = False  # a thread asking counts runs (one at a time)

    def get(self, topic: str) -> int | None:
        return self._counts.get(topic)

    def refresh(self) -> None:
        """Start asking the counts that are due (see the module doc), unless an asking
        runs."""
        now = time.monotonic()
        with self._lock:
            if self._asking:
                return
            due = [t for t in self.topics if t in self._soon or self.due.get(t, -1.0) <= now]
            if not due:
                return
            self._soon.difference_update(due)
            self._asking = True
        threading.Thread(target=self._ask, args=(due,), name="cluster-partition-counts",
                         daemon=True).start()

    def ask_soon(self, pairs: Iterable[tuple[str, int]]) -> None:
        """Partitions just assigned: a topic whose count is unknown (it was just created)
        or smaller than a partition given (partitions were added) is asked at the next
        `refresh`, not when its back-off or refresh comes round."""
        with self._lock:
            for topic, p in pairs:
                known = self._counts.get(topic)
                if known is None or p >= known:
                    self._soon.add(topic)
                    self._wait.pop(topic, None)

    def _ask(self, topics: list[str]) -> None:
        from connectors.kafka_admin import partition_count  # noqa: PLC0415

        learned = False
        try:
            for topic in topics:
                try:
                    count: int | None = partition_count(self.kafka_config, topic) or None
                except InfrastructureError as e:
                    log.debug("cluster: partition count of %s unknown: %s", topic, e)
                    count = self._counts.get(topic)  # a known count stays (asked in 30 s)
                learned |= self._record(topic, count)
        finally:
            with self._lock:
                self._asking = False
        if learned:  # publish it now, not at the next heartbeat
            self.on_learned()

    def _record(self, topic: str, count: int | None) -> bool:
        """Record `topic`'s count and when to ask it again; whether it changed."""
        with self._lock:
            asked, before = topic in self._counts, self._counts.get(topic)
            self._counts[topic] = count
            if count is not None:
                self._wait.pop(topic, None)
                self.due[topic] = time.monotonic() + PARTITION_REFRESH_S
            else:
                wait = self._wait.get(topic, UNKNOWN_COUNT_RETRY_S)
                self._wait[topic] = min(2 * wait, UNKNOWN_COUNT_MAX_S)
                self.due[topic] = time.monotonic() + wait
        if asked and count != before and count is not None:  # not at every start
            log.info("cluster: topic %s has %d partition(s) (%s): routed by it", topic, count,
                     "unknown before" if before is None else f"{before} before")
        return count != before

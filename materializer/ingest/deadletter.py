"""Dead letters: rejected records sent, raw, to the relation's dead-letter topic.

Guarantees:
- A record under `dead_letter` is produced with headers that say why
  (`materializer.error`, `.reason`, `.table`, `.topic`, `.partition`, `.offset`) and
  acknowledged by the broker before the batch that rejected it commits (`settle`).
- A record too large for the producer (`message.max.bytes`) is never a crash: its
  value (then its key) is cut to fit and the header `materializer.truncated` gives
  the original sizes `key=<n>,value=<n>`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from materializer.ingest.apply import Rejected
from materializer.ingest.relation import count_rejects
from materializer.specs import RelationSpec

DEFAULT_MAX_MESSAGE = 1_000_000  # librdkafka's message.max.bytes default
_OVERHEAD = 4096  # record framing and headers other than the error text


def dead_letter_topic(spec: RelationSpec) -> str:
    return spec.dead_letter_topic or f"{spec.topic}.dead-letter"


def fit(key: bytes | None, value: bytes | None, limit: int
        ) -> tuple[bytes | None, bytes | None, str | None]:
    """Key and value cut to fit `limit` bytes together, and the truncation note (or None)."""
    k, v = len(key or b""), len(value or b"")
    if k + v <= limit:
        return key, value, None
    note = f"key={k},value={v}"
    if value is not None:
        value = value[:max(0, limit - k)]
    if key is not None and k > limit:
        key = key[:limit]
    return key, value, note


class DeadLetters:
    """The worker's `RejectRouter`: produces dead letters through a shared `Sink`."""

    def __init__(self, sink_factory: Any, kafka_conf: Mapping[str, str]) -> None:
        self._sink_factory = sink_factory
        self._sink: Any = None
        self.limit = int(kafka_conf.get("message.max.bytes", DEFAULT_MAX_MESSAGE)) - _OVERHEAD
        self.sent = 0

    def route(self, spec: RelationSpec, partition: int, rejects: Sequence[Rejected]
              ) -> dict[str, int]:
        for r in rejects:
            if r.policy == "dead_letter":
                self._send(spec, partition, r)
        return count_rejects(rejects)

    def _send(self, spec: RelationSpec, partition: int, r: Rejected) -> None:
        if self._sink is None:
            self._sink = self._sink_factory()
        message = r.message[:2000].encode("utf-8", "replace")
        key, value, note = fit(r.key, r.value, self.limit - len(message))
        headers = [("materializer.error", message),
                   ("materializer.reason", r.reason.encode()),
                   ("materializer.table", spec.name.encode()),
                   ("materializer.topic", spec.topic.encode()),
                   ("materializer.partition", str(partition).encode()),
                   ("materializer.offset", str(r.offset).encode())]
        if note is not None:
            headers.append(("materializer.truncated", note.encode()))
        self._sink.produce(dead_letter_topic(spec), key, value, headers=headers)
        self.sent += 1

    def settle(self) -> None:
        if self._sink is not None:
            self._sink.flush()

"""Source topics as the broker sees them: missing ones, and ones deleted and created again.

Guarantees:
- A relation's state is tied to the id of the topic it was built from (recorded in the
  relation's meta the first time the worker sees the topic). When the broker reports
  another id, the topic was recreated: the stored rows and offsets belong to a topic
  that no longer exists, and `changed()` reports the relation so the worker applies
  `on_reset` (fail with a message naming the `rebuild` command, or rebuild in place).
- A subscribed topic that does not exist is reported with a warning once a minute
  until it appears.
- Asking the broker never raises: when it cannot be reached, nothing is concluded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

from materializer.errors import InfrastructureError, MaterializerError
from materializer.ingest.relation import Relation

log = logging.getLogger("materializer.worker")

CHECK_EVERY = 10.0
WARN_EVERY = 60.0

TopicIds = Callable[[Sequence[str]], Mapping[str, "str | None"]]


class TopicReset(MaterializerError):
    """A relation's topic was recreated under it and its policy is `on_reset: fail`."""


def reset_message(rel: Relation, old: str, new: str) -> str:
    offsets = ", ".join(f"{p}: {o}" for p, o in sorted(rel.next_offsets.items())) or "none"
    return (f"{rel.spec.kind} {rel.spec.name}: topic {rel.spec.topic} was deleted and created "
            f"again (topic id {old} is now {new}); the local state (next offsets per partition "
            f"{offsets}) belongs to the old topic, so the worker stops rather than serve it as "
            f"current. Run `materializer rebuild CONFIG {rel.spec.name}` to replay the new "
            f"topic, or declare `on_reset: rebuild` to do that automatically.")


class TopicWatch:
    """Asks the broker for the ids of the source topics every `every` seconds."""

    def __init__(self, relations: Sequence[Relation], topic_ids: TopicIds,
                 every: float = CHECK_EVERY) -> None:
        self.relations = relations
        self.topic_ids = topic_ids
        self.every = every
        self._next_check = 0.0
        self._warned: dict[str, float] = {}

    def changed(self, force: bool = False) -> list[tuple[Relation, str, str]]:
        """(relation, recorded id, current id) for every relation whose topic was recreated;
        records the id of topics seen for the first time."""
        now = time.monotonic()
        if not force and now < self._next_check:
            return []
        self._next_check = now + self.every
        topics = sorted({r.spec.topic for r in self.relations})
        try:
            ids = self.topic_ids(topics)
        except InfrastructureError:
            self._next_check = now + WARN_EVERY  # the broker is away (the connectors say so):
            return []                            # conclude nothing, ask again in a minute
        out = []
        for topic in topics:
            if ids.get(topic) is None:
                self._warn_missing(topic, now)
            else:
                self._warned.pop(topic, None)
        for rel in self.relations:
            current = ids.get(rel.spec.topic)
            if current is None:
                continue
            recorded = rel.writer.source_topic_id()
            if recorded is None:
                rel.writer.set_source_topic_id(current)
            elif recorded != current:
                out.append((rel, recorded, current))
        return out

    def _warn_missing(self, topic: str, now: float) -> None:
        last = self._warned.get(topic)
        if last is None or now - last >= WARN_EVERY:
            self._warned[topic] = now
            names = ", ".join(r.spec.name for r in self.relations if r.spec.topic == topic)
            log.warning("topic %s does not exist (yet): %s will be materialized once it "
                        "does", topic, names)

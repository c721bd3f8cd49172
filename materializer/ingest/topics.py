"""Source topics as the broker sees them: missing ones, and ones deleted and created again.

Guarantees:
- A relation's state is tied to the id of the topic it was built from (recorded in the
  relation's meta the first time the worker sees the topic). When the broker reports
  another id, the topic was recreated: the stored rows and offsets belong to a topic
  that no longer exists, and `changed()` reports the relation so the worker applies
  `on_reset` (fail with a message naming the `rebuild` command, or rebuild in place).
- A partition whose stored next offset the broker does not have - past the end (the
  topic was recreated or truncated) or before the log start (retention deleted records
  not applied yet) - is reported by `OffsetWatch` for `on_reset` the same way: when the
  broker says so in a fetch (Kafka), at once; when only the watermarks of the fetch
  responses show it (brokers that do not say so, like Tansu), once it has held for
  `CONFIRM_AFTER` seconds within one assignment (a fresh assignment's first fetch may
  still be under way).
- A subscribed topic that does not exist is created when a relation reading it declares
  `partitions` (ksqlDB PARTITIONS; with `replicas` as its replication factor, else the
  broker's default), as ksqlDB does for CREATE TABLE/STREAM; a topic nobody declares
  partitions for (or that the broker refuses to create, saying why) is reported with a
  warning once a minute until it appears. An existing topic is never changed.
- A table's topic with more partitions than when last seen is warned about once (keys
  hashed anew can leave a row in two partitions; reads refuse such a key): the count is
  recorded in the relation's meta.
- Every check's partition counts go to `on_partitions` (the worker assigns a replicated
  table's partitions added since its reader listed them, or its topic created since).
- Asking the broker never raises: when it cannot be reached, nothing is concluded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from materializer.errors import InfrastructureError, MaterializerError
from materializer.ingest.relation import Relation

if TYPE_CHECKING:
    from connectors.kafka_admin import TopicState

log = logging.getLogger("materializer.worker")

CHECK_EVERY = 10.0
WARN_EVERY = 60.0
CONFIRM_AFTER = 2.0
OFFSETS_EVERY = 0.5

DescribeTopics = Callable[[Sequence[str]], Mapping[str, "TopicState | None"]]
"""topics -> each one's id and partition count, None if absent (connectors.kafka_admin)."""
CreateTopic = Callable[[str, int, "int | None"], bool]
"""(topic, partitions, replicas) -> whether it was created (connectors.kafka_admin)."""
PartitionCounts = Callable[[Mapping[str, int]], None]
"""The partition count of each source topic that exists, at every check."""


class TopicReset(MaterializerError):
    """A relation's topic was recreated under it and its policy is `on_reset: fail`."""


def reset_message(rel: Relation, old: str, new: str) -> str:
    offsets = ", ".join(f"{p}: {o}" for p, o in sorted(rel.next_offsets.items())) or "none"
    return (f"{rel.spec.kind} {rel.spec.name}: topic {rel.spec.topic} was deleted and created "
            f"again (topic id {old} is now {new}); the local state (next offsets per partition "
            f"{offsets}) belongs to the old topic, so the worker stops rather than serve it as "
            f"current. Run `materializer rebuild CONFIG {rel.spec.name}` to replay the new "
            f"topic, or declare `on_reset: rebuild` to do that automatically.")


def partitions_grew(rel: Relation, before: int, now: int) -> str:
    spec = rel.spec
    return (f"{spec.kind} {spec.name}: topic {spec.topic} grew from {before} to {now} "
            "partitions. Producers that place records by the hash of the key (Kafka's "
            "default) now send a key's new records to another partition than its earlier "
            "ones, which leaves a row for that key in two partitions: reads refuse such a key "
            "(AmbiguousKeyError, HTTP 409) rather than guess which row is the latest. Keep "
            "the partition count of a keyed topic; to start over with more partitions, "
            "write every key to a new topic created with them.")


class TopicWatch:
    """Asks the broker for the ids and partition counts of the source topics every
    `every` seconds."""

    def __init__(self, relations: Sequence[Relation], describe: DescribeTopics,
                 every: float = CHECK_EVERY, create: CreateTopic | None = None,
                 on_partitions: PartitionCounts | None = None) -> None:
        self.relations = relations
        self.describe = describe
        self.create = create
        self.on_partitions = on_partitions
        self.every = every
        self._next_check = 0.0
        self._warned: dict[str, float] = {}

    def changed(self, force: bool = False) -> list[tuple[Relation, str, str]]:
        """(relation, recorded id, current id) for every relation whose topic was recreated;
        records the id of topics seen for the first time, and warns when a topic has more
        partitions than when last seen (`partitions_grew`)."""
        now = time.monotonic()
        if not force and now < self._next_check:
            return []
        self._next_check = now + self.every
        topics = sorted({r.spec.topic for r in self.relations})
        try:
            found = self.describe(topics)
            created = self._create_missing([t for t in topics if found.get(t) is None], now)
            if created:
                found = {**found, **self.describe(created)}
        except InfrastructureError:
            self._next_check = now + WARN_EVERY  # the broker is away (the connectors say so):
            return []                            # conclude nothing, ask again in a minute
        out = []
        for topic in topics:
            if found.get(topic) is None:
                self._warn_missing(topic, now)
            else:
                self._warned.pop(topic, None)
        if self.on_partitions is not None:
            self.on_partitions({t: s.partitions for t, s in found.items() if s is not None})
        for rel in self.relations:
            state = found.get(rel.spec.topic)
            if state is None:
                continue
            recorded = rel.writer.source_topic_id()
            if recorded is None:
                rel.writer.set_source_topic_id(state.id)
            elif recorded != state.id:
                out.append((rel, recorded, state.id))
                continue
            known = rel.writer.source_partitions()
            if known != state.partitions:
                if known is not None and state.partitions > known and rel.spec.kind == "table":
                    log.warning(partitions_grew(rel, known, state.partitions))
                rel.writer.set_source_partitions(state.partitions)
        return out

    def _create_missing(self, missing: Sequence[str], now: float) -> list[str]:
        """Create the missing topics a relation declares `partitions` for (the first such
        relation's settings); the ones created or found existing. A refusal is warned
        about once a minute, and tried again at the next check."""
        if self.create is None:
            return []
        out = []
        for topic in missing:
            spec = next((r.spec for r in self.relations
                         if r.spec.topic == topic and r.spec.partitions), None)
            if spec is None or spec.partitions is None:
                continue
            try:
                made = self.create(topic, spec.partitions, spec.replicas)
            except InfrastructureError as e:
                last = self._warned.get(topic)
                if last is None or now - last >= WARN_EVERY:
                    self._warned[topic] = now
                    log.warning("topic %s does not exist and cannot be created for %s %s "
                                "(partitions: %d, replicas: %s): %s", topic, spec.kind,
                                spec.name, spec.partitions, spec.replicas or "broker default",
                                e)
                continue
            if made:
                log.info("created topic %s with %d partition(s), replication factor %s, as "
                         "%s %s declares", topic, spec.partitions,
                         spec.replicas or "of the broker's default", spec.kind, spec.name)
            out.append(topic)
        return out

    def _warn_missing(self, topic: str, now: float) -> None:
        last = self._warned.get(topic)
        if last is None or now - last >= WARN_EVERY:
            self._warned[topic] = now
            names = ", ".join(r.spec.name for r in self.relations if r.spec.topic == topic)
            log.warning("topic %s does not exist (yet): %s will be materialized once it "
                        "does", topic, names)


@dataclass(frozen=True, slots=True)
class OutOfRange:
    """A partition whose stored next offset the broker does not hold."""

    relation: Relation
    partition: int
    stored: int
    low: int | None
    high: int | None
    broker_said: str | None = None

    def message(self) -> str:
        spec = self.relation.spec
        if self.high is not None and self.stored > self.high:
            what = (f"is past the topic's end offset {self.high} (the topic was deleted and "
                    "created again, or truncated)")
        elif self.low is not None and self.stored < self.low:
            what = (f"is before the log start offset {self.low} (retention deleted records "
                    f"{self.stored}..{self.low - 1} before they were applied)")
        else:
            what = f"is out of range for the broker ({self.broker_said})"
        return (f"{spec.kind} {spec.name}: topic {spec.topic} partition {self.partition}: the "
                f"stored next offset {self.stored} {what}; the local state no longer matches "
                "the topic, so the worker stops rather than serve it as current. Run "
                f"`materializer rebuild CONFIG {spec.name}` to replay the topic, or declare "
                "`on_reset: rebuild` to do that automatically.")


class OffsetWatch:
    """Compares each assigned partition's stored next offset with what the broker holds."""

    def __init__(self, confirm_after: float = CONFIRM_AFTER, every: float = OFFSETS_EVERY
                 ) -> None:
        self.confirm_after = confirm_after
        self.every = every
        self._next_check = 0.0
        self._suspects: dict[tuple[str, int], tuple[float, int]] = {}

    def check(self, by_topic: Mapping[str, Sequence[Relation]], source: Any
              ) -> list[OutOfRange]:
        """Partitions out of range, confirmed; `source` is a connectors.kafka reader."""
        said = [self._said(rel, t, p, why, source)
                for (t, p), why in sorted(source.out_of_range.items())
                for rel in by_topic.get(t, ())]
        found = [f for f in said if f is not None]
        now = time.monotonic()
        if found or now < self._next_check:
            return found
        self._next_check = now + self.every
        seen = set()
        for t, p in sorted(source.assigned):
            marks = source.watermarks(t, p)
            if marks is None:
                continue
            low, high = marks
            for rel in by_topic.get(t, ()):
                stored = rel.next_offsets.get(p)
                if stored is None or low <= stored <= high:
                    continue
                key = (rel.spec.name, p)
                seen.add(key)
                first, generation = self._suspects.setdefault(key, (now, source.generation))
                if generation != source.generation:
                    self._suspects[key] = (now, source.generation)
                elif now - first >= self.confirm_after:
                    found.append(OutOfRange(rel, p, stored, low, high))
        for key in set(self._suspects) - seen:
            del self._suspects[key]
        return found

    @staticmethod
    def _said(rel: Relation, topic: str, partition: int, why: str, source: Any
              ) -> OutOfRange | None:
        stored = rel.next_offsets.get(partition)
        if stored is None:
            return None
        marks = source.watermarks(topic, partition)
        low, high = marks if marks is not None else (None, None)
        return OutOfRange(rel, partition, stored, low, high, broker_said=why)


def relations_of(found: Iterable[OutOfRange]) -> list[Relation]:
    """The distinct relations in `found`, in order."""
    out: list[Relation] = []
    for f in found:
        if f.relation not in out:
            out.append(f.relation)
    return out

"""What a worker opens before its loop: the schema registry, its relations (for writing),
and the feeds (a consumer and the relations its topics feed); and the message a bad record
under policy `fail` stops it with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.kafka_admin import max_poll_interval_s
from materializer.ingest.announced import owe_snapshot_if_unannounced
from materializer.ingest.apply import Rejected
from materializer.ingest.relation import Relation, open_relation
from materializer.protocols import SchemaRegistry
from materializer.specs import Catalog
from materializer.store.descriptors import ensure_descriptors
from materializer.store.layout import write_declared


@dataclass(slots=True)
class Feed:
    """A consumer and the relations its topics feed: the group's partitions for ordinary
    relations, every partition (no group) for `replicated: true` tables."""

    by_topic: dict[str, list[Relation]]
    source: Any = None
    generation: int = 0  # the source's assignment generation last checked

    def start_offset(self, topic: str, partition: int) -> int | None:
        """Where a partition starts: the lowest next offset of the relations it feeds."""
        offs = [rel.next_offsets.get(partition) for rel in self.by_topic.get(topic, [])]
        if not offs or any(o is None for o in offs):
            return None
        return min(o for o in offs if o is not None)


def open_registry(catalog: Catalog) -> SchemaRegistry | None:
    if catalog.schema_registry is None:
        return None
    from connectors.registry import open_registry as open_reg  # noqa: PLC0415

    return open_reg(catalog.schema_registry)


def registry_within_poll_interval(registry: SchemaRegistry | None,
                                  kafka_config: Mapping[str, Any]) -> str | None:
    """A warning when one registry lookup that no registry answers may outlast the
    consumer's `max.poll.interval.ms`: the worker polls its consumer between the attempts
    of a batch (`Source.hold`), not during a lookup, so librdkafka would leave the group
    meanwhile. None when it fits."""
    longest = getattr(registry, "longest_lookup", None)
    if longest is None:
        return None
    max_poll = max_poll_interval_s(kafka_config)
    if max_poll is None or longest < max_poll:
        return None
    return (f"schema_registry: a lookup the registry does not answer may take {longest:.0f} s "
            f"((max.retries + 1) x timeout x URLs, plus the waits), not less than the "
            f"consumer's max.poll.interval.ms ({max_poll:.0f} s): while a registry hangs the "
            "worker would leave its consumer group during a lookup. Lower schema_registry "
            "timeout or max.retries, or raise kafka max.poll.interval.ms")


def open_relations(catalog: Catalog, registry: SchemaRegistry | None,
                   only: list[str] | None = None, *, declare: bool = True) -> list[Relation]:
    """Every relation of the catalog (or those named in `only`), opened for writing; a
    table that got `changes:` while it held rows owes its change topic a snapshot.
    Opening them all records them as the store's declared relations, unless `declare` is
    False (a worker of `run --processes N`: its catalog may leave some out)."""
    specs = [s for s in catalog.relations if only is None or s.name in only]
    ensure_descriptors(len(specs))
    relations = [open_relation(s, catalog.store_path, map_size=catalog.map_size,
                               registry=registry) for s in specs]
    for rel in relations:
        owe_snapshot_if_unannounced(rel)
    if only is None and declare:  # readers refuse the store's relations not declared here
        write_declared(catalog.store_path, [rel.spec.name for rel in relations])
    return relations


def fatal_message(rel: Relation, r: Rejected) -> str:
    """The clean stop message for a bad record under policy `fail`."""
    # a stream has no `null_key` policy: its null keys (in a NOT NULL key column) go by on_error
    policy = "null_key" if r.reason == "null_key" and rel.spec.kind == "table" else "on_error"
    return (f"{rel.spec.kind} {rel.spec.name}: bad record at topic {rel.spec.topic}, "
            f"partition {r.partition}, offset {r.offset}: {r.message} "
            f"(policy {policy}: fail; nothing after it was applied)")

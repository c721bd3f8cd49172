"""Change events on a real broker: the change topic folds back into the table exactly.

The source changelog is produced to a real topic, read back with confluent-kafka,
applied with the real applier and store, staged into the real outbox in the batch
transaction, committed and drained to a real change topic, which is then consumed
and folded (c/u set the row to `after`, d removes it, a tombstone follows each d).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.kafka_admin import create_topic, partition_count
from connectors.partitioners import partition_for
from connectors.producer import Sink, produce_records
from connectors.registry import FileRegistry
from connectors.rest_registry import RestRegistry
from materializer.changes.outbox import ChangeOutbox
from materializer.devbroker import DevBroker
from materializer.errors import StoreError
from materializer.ingest.relation import open_relation
from materializer.specs import ChangesSpec
from materializer.store import SideTable, Store
from tests.support.change_topics import (
    Message,
    changelog,
    drain_all,
    expected_events,
    fold,
    in_topic_order,
    materialize,
    read_all,
    table_rows,
    table_spec,
)
from tests.support.registry_server import RegistryServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def broker(session_broker: DevBroker) -> Iterator[DevBroker]:
    yield session_broker  # the run's one broker


# --------------------------------------------------------------------- the tests


@pytest.mark.parametrize("change_partitions", [4, 3])
def test_change_topic_folds_into_the_table(broker: DevBroker, tmp_path: Path,
                                          change_partitions: int) -> None:
    conf = broker.kafka_config()
    source = broker.create_topic(partitions=4)
    changes = f"{source}.changes"
    if change_partitions != 4:  # else the outbox creates it like the source
        create_topic(broker.bootstrap, changes, change_partitions)
    spec = table_spec(source, ChangesSpec(topic=changes))
    ends = produce_records(conf, source, changelog(seed=change_partitions))
    rel = open_relation(spec, tmp_path, map_size=1 << 30)
    writer = rel.writer
    outbox = ChangeOutbox(spec, writer, spec.column_names, Sink(conf), 4, kafka_conf=conf)
    records = materialize(conf, rel, ends, outbox)
    assert outbox.backlog() == 0
    assert partition_count(conf, changes) == change_partitions

    model, want = expected_events(records)
    table = table_rows(tmp_path, spec.name)
    assert table == model
    want_messages = len(want) + sum(1 for e in want if e[2] == "d")
    msgs = read_all(conf, changes, lambda ms: len(ms) >= want_messages)
    # and nothing more: replays and deletes of absent keys are silent
    assert len(drain_all(conf, changes)) == want_messages
    f = fold(in_topic_order(msgs))
    assert f.problems == []
    assert len(f.events) == len(set(f.events)) == len(want)
    assert set(f.events) == want
    assert f.table == table
    for m in msgs:
        if change_partitions == 4:
            ev = json.loads(m.value) if m.value is not None else None
            if ev is not None:
                assert m.partition == ev["source"]["partition"]
        else:
            assert m.partition == partition_for(m.key, change_partitions)


@pytest.mark.parametrize(("fmt", "schemas"), [("debezium-json", False),
                                             ("debezium-json", True),
                                             ("debezium-avro", False)])
def test_change_topic_is_a_debezium_source(broker: DevBroker, tmp_path: Path, fmt: str,
                                           schemas: bool) -> None:
    """Materializing the change topic as a Debezium source rebuilds the same table (with
    `schemas: true`, through the Connect schema wrapper and its logical types)."""
    conf = broker.kafka_config()
    source = broker.create_topic(partitions=2)
    registry = FileRegistry(tmp_path / "registry")
    spec = table_spec(source, ChangesSpec(topic=f"{source}.changes", format=fmt,
                                          columns=True, schemas=schemas))
    ends = produce_records(conf, source, changelog(seed=11, records=800, replays=50))
    rel = open_relation(spec, tmp_path / "a", map_size=1 << 30)
    writer = rel.writer
    outbox = ChangeOutbox(spec, writer, spec.column_names, Sink(conf), 2, registry,
                          kafka_conf=conf)
    materialize(conf, rel, ends, outbox)
    original = table_rows(tmp_path / "a", spec.name)

    copy = table_spec(f"{source}.changes", None, name="shop.copy", value_format=fmt,
                      key_format="avro" if fmt == "debezium-avro" else "json")
    copy_rel = open_relation(copy, tmp_path / "b", map_size=1 << 30, registry=registry)
    assert partition_count(conf, copy.topic) == 2  # created like the source
    change_ends = {p: 0 for p in range(2)}
    for m in drain_all(conf, copy.topic):
        change_ends[m.partition] = max(change_ends[m.partition], m.offset + 1)
    materialize(conf, copy_rel, change_ends, None)
    assert table_rows(tmp_path / "b", copy.name) == original


def test_avro_change_topic_reads_with_the_confluent_deserializers(broker: DevBroker,
                                                                  tmp_path: Path) -> None:
    """debezium-avro through a Confluent REST registry: keys and values are read back with
    confluent-kafka's own AvroDeserializer (what a Connect Avro converter does: magic byte,
    schema id, registry lookup) and fold into the table."""
    from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: PLC0415
    from confluent_kafka.schema_registry.avro import AvroDeserializer  # noqa: PLC0415
    from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: PLC0415

    conf = broker.kafka_config()
    source = broker.create_topic(partitions=2)
    changes = f"{source}.changes"
    spec = table_spec(source, ChangesSpec(topic=changes, format="debezium-avro"))
    ends = produce_records(conf, source, changelog(seed=5, records=600, replays=40))
    with RegistryServer() as srv:
        registry = RestRegistry(srv.url)
        rel = open_relation(spec, tmp_path, map_size=1 << 30, registry=registry)
        outbox = ChangeOutbox(spec, rel.writer, spec.column_names, Sink(conf), 2, registry,
                              kafka_conf=conf)
        records = materialize(conf, rel, ends, outbox)
        _, want = expected_events(records)
        want_messages = len(want) + sum(1 for e in want if e[2] == "d")
        msgs = read_all(conf, changes, lambda ms: len(ms) >= want_messages)
        assert sorted(srv.subjects) == [f"{changes}-key", f"{changes}-value"]
        client = SchemaRegistryClient({"url": srv.url})
        keys, values = AvroDeserializer(client), AvroDeserializer(client)

        def key_of(m: Message) -> Any:
            k = keys(m.key, SerializationContext(changes, MessageField.KEY))
            assert isinstance(k, dict) and set(k) == {"id"}
            return k["id"]

        def value_of(m: Message) -> dict[str, Any]:
            v = values(m.value, SerializationContext(changes, MessageField.VALUE))
            assert isinstance(v, dict)
            return v

        f = fold(in_topic_order(msgs), key_of=key_of, value_of=value_of)
    assert f.problems == []
    assert set(f.events) == want
    with Store.open(tmp_path) as store:
        table = {r["id"]: r for r in store.table(spec.name).scan()}
    assert f.table == table  # dates, decimals as Python values: the deserializer's own


def _topic_config(conf: dict[str, str], topic: str) -> dict[str, str]:
    """The topic's configuration as the broker describes it (DescribeConfigs)."""
    from confluent_kafka.admin import AdminClient, ConfigResource  # noqa: PLC0415

    admin = AdminClient({"bootstrap.servers": conf["bootstrap.servers"]})
    (future,) = admin.describe_configs(
        [ConfigResource(ConfigResource.Type.TOPIC, topic)]).values()
    return {k: v.value for k, v in future.result(timeout=30).items()}


def test_the_change_topic_the_outbox_creates_is_compacted(broker: DevBroker,
                                                         tmp_path: Path) -> None:
    """SPEC §5: a compacted change topic ends as a copy of the table, so the outbox creates
    it with cleanup.policy=compact (asked of the broker, not of our own create call)."""
    conf = broker.kafka_config()
    source = broker.create_topic(partitions=2)
    spec = table_spec(source, ChangesSpec(topic=f"{source}.changes"))
    ends = produce_records(conf, source, changelog(seed=3, records=50, replays=0))
    rel = open_relation(spec, tmp_path, map_size=1 << 30)
    outbox = ChangeOutbox(spec, rel.writer, spec.column_names, Sink(conf), None,
                          kafka_conf=conf)
    materialize(conf, rel, ends, outbox)
    assert outbox.backlog() == 0 and partition_count(conf, f"{source}.changes") == 2
    assert _topic_config(conf, f"{source}.changes").get("cleanup.policy") == "compact"
    # the broker does report a topic's own settings: the source was created without it
    assert _topic_config(conf, source).get("cleanup.policy", "delete") == "delete"


def test_a_crash_after_the_acks_repeats_events_with_their_source_position(
        broker: DevBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The broker acknowledged a chunk but the process died before deleting it from the
    outbox: after the restart the chunk goes out again, same key, source.partition and
    source.offset; folding still gives the table."""
    conf = broker.kafka_config()
    source = broker.create_topic(partitions=2)
    spec = table_spec(source, ChangesSpec(topic=f"{source}.changes"))
    ends = produce_records(conf, source, changelog(seed=2, records=400, replays=20))
    rel = open_relation(spec, tmp_path, map_size=1 << 30)
    writer = rel.writer

    def crash(*args: Any) -> None:
        raise StoreError("the process died here")

    with monkeypatch.context() as m:
        m.setattr(SideTable, "delete_keys", crash)
        m.setattr(SideTable, "clear", crash)  # a drain that delivered all empties at once
        outbox = ChangeOutbox(spec, writer, spec.column_names, Sink(conf), 2, kafka_conf=conf)
        with pytest.raises(StoreError):
            materialize(conf, rel, ends, outbox, batch=10_000)
        staged = outbox.backlog()
    assert staged > 0
    restarted = ChangeOutbox(spec, writer, spec.column_names, Sink(conf), 2, kafka_conf=conf)
    assert restarted.backlog() == staged
    assert restarted.drain() == staged and restarted.backlog() == 0
    msgs = read_all(conf, spec.changes.topic if spec.changes else "",
                    lambda ms: len(ms) >= 2 * staged)
    assert len(msgs) == 2 * staged
    by_partition: dict[int, list[Message]] = {}
    for msg in in_topic_order(msgs):
        by_partition.setdefault(msg.partition, []).append(msg)
    for part in by_partition.values():  # each partition: the same sequence twice
        half = len(part) // 2
        first = [(x.key, _source(x)) for x in part[:half]]
        assert first == [(x.key, _source(x)) for x in part[half:]]
    f = fold(in_topic_order(msgs), strict=False)
    assert f.problems == []
    assert f.table == table_rows(tmp_path, spec.name)


def _source(m: Message) -> tuple[int, int, str] | None:
    if m.value is None:
        return None
    ev = json.loads(m.value)
    return ev["source"]["partition"], ev["source"]["offset"], ev["op"]


def test_drain_stops_after_max_chunks_and_keeps_the_rest_in_order(broker: DevBroker,
                                                                  tmp_path: Path) -> None:
    """`drain(max_chunks=1)` (the supervisor's drainer, a chunk per round so its status
    figures stay fresh) sends one chunk and leaves the rest in the outbox, in order."""
    from materializer.changes.event import Change
    from tests.support.changes import stored
    from tests.support.changes import table as item_table

    conf = broker.kafka_config()
    source = broker.create_topic(partitions=1)
    spec = item_table(columns={"id": "long", "n": "long"},
                      changes=ChangesSpec(topic=f"{source}.changes"))
    rel = open_relation(spec, tmp_path, map_size=1 << 30)
    outbox = ChangeOutbox(spec, rel.writer, spec.column_names, Sink(conf), 1,
                          kafka_conf=conf, shared=True)
    outbox.chunk = 2
    with rel.writer.begin() as wb:
        outbox.stage(wb, [Change("c", 0, o, 0, (o,), None, stored(spec, {"id": o, "n": 1}))
                          for o in range(5)])
    assert outbox.drain(max_chunks=1) == 2 and outbox.backlog() == 3
    assert outbox.drain() == 3 and outbox.backlog() == 0
    sent = [json.loads(m.value)["source"]["offset"]
            for m in in_topic_order(drain_all(conf, f"{source}.changes", idle=1.0))
            if m.value is not None]
    assert sent == [0, 1, 2, 3, 4] and outbox.drained_total == 5

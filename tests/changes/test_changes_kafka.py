"""Change events on a real broker: the change topic folds back into the table exactly.

The source changelog is produced to a real topic, read back with confluent-kafka,
applied with the real applier and store, staged into the real outbox in the batch
transaction, committed and drained to a real change topic, which is then consumed
and folded (c/u set the row to `after`, d removes it, a tombstone follows each d).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, cast

import pytest
from confluent_kafka import Consumer, TopicPartition

from connectors.kafka import create_topic, partition_count
from connectors.partitioners import partition_for
from connectors.producer import Sink, produce_records
from connectors.registry import FileRegistry
from connectors.rest_registry import RestRegistry
from materializer.changes.outbox import ChangeOutbox
from materializer.columns import parse_type
from materializer.devbroker import DevBroker
from materializer.errors import StoreError
from materializer.ingest.relation import Relation, open_relation
from materializer.protocols import SourceRecord
from materializer.specs import ChangesSpec, Column, TableSpec
from materializer.store import SideTable, Store
from tests.support.registry_server import RegistryServer

pytestmark = pytest.mark.integration

COLUMNS = {"id": "int not null", "name": "string", "age": "long", "born": "date",
           "score": "decimal(6,2)"}


@pytest.fixture(scope="module")
def broker(session_broker: DevBroker) -> Iterator[DevBroker]:
    yield session_broker  # the run's one broker


def table_spec(topic: str, changes: ChangesSpec | None, name: str = "shop.users",
               value_format: str = "json", key_format: str = "json") -> TableSpec:
    cols = tuple(Column(n, *parse_type(t)) for n, t in COLUMNS.items())
    return TableSpec(name=name, topic=topic, columns=cols, key_columns=("id",),
                     key_format=key_format, value_format=value_format,
                     changes=changes)


class Message(NamedTuple):
    """A consumed record, kept after its consumer is closed."""

    partition: int
    offset: int
    key: bytes
    value: bytes | None


def kept(m: Any) -> Message:
    return Message(m.partition(), m.offset(), m.key(), m.value())


# --------------------------------------------------------------------- the changelog


def changelog(seed: int, keys: int = 150, records: int = 2500, replays: int = 300
              ) -> list[tuple[bytes, bytes | None]]:
    """Inserts, updates, deletes (also of absent keys), re-inserts, and `replays`
    verbatim repeats of a key's current value, which must emit nothing."""
    rng = random.Random(seed)
    current: dict[int, bytes | None] = {}
    out: list[tuple[bytes, bytes | None]] = []
    replayed = 0
    while len(out) < records or replayed < replays:
        k = rng.randrange(keys)
        kb = str(k).encode()
        r = rng.random()
        present = current.get(k) is not None
        if present and replayed < replays and r < 0.15:
            out.append((kb, current[k]))  # verbatim replay
            replayed += 1
            continue
        if len(out) >= records:
            continue
        if r < 0.30:
            out.append((kb, None))  # delete; of an absent key it is a no-op
            current[k] = None
            continue
        value = json.dumps({"name": rng.choice(["ada", "bob", "cy", None]),
                            "age": rng.randrange(4), "born": f"19{rng.randrange(10, 99)}-01-02",
                            "score": str(rng.randrange(10000) / 100)}).encode()
        out.append((kb, value))
        current[k] = value
    return out


def expected_events(msgs: list[Message]) -> tuple[dict[Any, dict[str, Any]],
                                                  set[tuple[int, int, str]]]:
    """An independent model of SPEC §4/§5 for `overwrite`: final table and the events
    (source partition, offset, op) that must be emitted."""
    table: dict[Any, dict[str, Any]] = {}
    events: set[tuple[int, int, str]] = set()
    for m in sorted(msgs, key=lambda m: (m.partition, m.offset)):
        k = json.loads(m.key)
        raw = m.value
        if raw is None:
            if k in table:
                del table[k]
                events.add((m.partition, m.offset, "d"))
            continue
        v = json.loads(raw)
        row = {"id": k, "name": v["name"], "age": v["age"], "born": v["born"],
               "score": f"{float(v['score']):.2f}"}
        old = table.get(k)
        if old != row:
            events.add((m.partition, m.offset, "c" if old is None else "u"))
            table[k] = row
    return table, events


# --------------------------------------------------------------------- Kafka helpers


def consumer(conf: dict[str, str]) -> Consumer:
    return Consumer({**conf, "group.id": f"test-{uuid.uuid4().hex[:8]}",
                     "enable.auto.commit": False, "auto.offset.reset": "earliest",
                     "enable.partition.eof": False})


def read_all(conf: dict[str, str], topic: str, done: Any, timeout: float = 60.0
             ) -> list[Message]:
    """Every message of `topic` from the beginning until `done(messages)` holds."""
    c = consumer(conf)
    n = partition_count(conf, topic)
    c.assign([TopicPartition(topic, p, 0) for p in range(n)])
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while not done(out):
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: gave up after {len(out)} messages")
            for m in c.consume(1000, 0.5):
                if m.error() is None:
                    out.append(kept(m))
    finally:
        c.close()
    return out


def materialize(conf: dict[str, str], rel: Relation, ends: dict[int, int],
                outbox: ChangeOutbox | None, batch: int = 300) -> list[Message]:
    """Apply `spec.topic` up to `ends` the way the worker does: per poll one write
    transaction with rows, offsets and staged events, then drain. Returns the records."""
    spec = rel.spec
    rel.outbox = outbox
    nxt = rel.next_offsets
    c = consumer(conf)
    c.assign([TopicPartition(spec.topic, p, nxt.get(p, 0)) for p in ends])
    seen: list[Message] = []
    if outbox is not None:
        outbox.drain()
    try:
        deadline = time.monotonic() + 120
        while any(nxt.get(p, 0) < e for p, e in ends.items()):
            assert time.monotonic() < deadline, "the source did not arrive"
            msgs = [m for m in c.consume(batch, 0.5) if m.error() is None]
            by_p: dict[int, list[SourceRecord]] = {}
            for m in msgs:
                by_p.setdefault(cast(int, m.partition()), []).append(cast(SourceRecord, m))
            if not by_p:
                continue
            seen.extend(kept(m) for m in msgs)
            for out in rel.apply(by_p).values():
                assert out.fatal is None and not out.rejected
            if outbox is not None:
                outbox.drain()
    finally:
        c.close()
    return seen


def table_rows(data: Path, name: str) -> dict[Any, dict[str, Any]]:
    with Store.open(data) as store:
        return {r["id"]: r for r in store.table(name).scan(json_form=True)}


@dataclass
class Fold:
    """The change topic folded per key, with the protocol checks of SPEC §5."""

    table: dict[Any, dict[str, Any]] = field(default_factory=dict)
    events: list[tuple[int, int, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def in_topic_order(msgs: list[Message]) -> list[Message]:
    return sorted(msgs, key=lambda m: (m.partition, m.offset))


def json_key(m: Message) -> Any:
    return json.loads(m.key)["id"]


def json_value(m: Message) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(m.value or b""))


def fold(msgs: list[Message], strict: bool = True, key_of: Callable[[Message], Any] = json_key,
         value_of: Callable[[Message], dict[str, Any]] = json_value) -> Fold:
    """Fold messages given in topic order (`in_topic_order`): c/u/r set the row to `after`,
    d removes it; each d must be followed by a tombstone for its key and (strict: no
    repeats expected) each u/d must carry the previous `after`. `key_of` and `value_of`
    decode a message's key (to the `id`) and value (to the event)."""
    f = Fold()
    last: dict[Any, dict[str, Any] | None] = {}
    awaiting_tombstone: set[Any] = set()
    for m in msgs:
        key = key_of(m)
        raw = m.value
        if raw is None:
            if key not in awaiting_tombstone:
                f.problems.append(f"tombstone for {key} not after a delete")
            awaiting_tombstone.discard(key)
            continue
        if key in awaiting_tombstone:
            f.problems.append(f"no tombstone after the delete of {key}")
            awaiting_tombstone.discard(key)
        ev = value_of(m)
        src = ev["source"]
        f.events.append((src["partition"], src["offset"], ev["op"]))
        if strict and ev["op"] in ("u", "d") and ev["before"] != last.get(key):
            f.problems.append(f"{key}: before {ev['before']} != previous after {last.get(key)}")
        if strict and ev["op"] == "c" and last.get(key) is not None:
            f.problems.append(f"{key}: c for a key that exists")
        if ev["op"] == "d":
            f.table.pop(key, None)
            awaiting_tombstone.add(key)
            last[key] = None
        else:
            f.table[key] = ev["after"]
            last[key] = ev["after"]
    for key in awaiting_tombstone:
        f.problems.append(f"no tombstone after the delete of {key}")
    return f


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
    assert len(_drain_all(conf, changes)) == want_messages
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
    for m in _drain_all(conf, copy.topic):
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


def _drain_all(conf: dict[str, str], topic: str, idle: float = 2.0) -> list[Message]:
    """Every message of `topic`, read until nothing new came for `idle` seconds."""
    c = consumer(conf)
    c.assign([TopicPartition(topic, p, 0) for p in range(partition_count(conf, topic))])
    out: list[Message] = []
    quiet_since = time.monotonic()
    try:
        while time.monotonic() - quiet_since < idle:
            got = [kept(m) for m in c.consume(1000, 0.2) if m.error() is None]
            if got:
                out.extend(got)
                quiet_since = time.monotonic()
    finally:
        c.close()
    return out


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

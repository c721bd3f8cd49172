"""PARTITIONS / REPLICAS (YAML `partitions` / `replicas`): a missing source topic is created
by the worker with that partition count and replication factor, as ksqlDB does; without
them the worker waits for the topic, as before."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from connectors.kafka_admin import TopicState
from materializer.errors import InfrastructureError
from materializer.ingest.topics import TopicWatch
from materializer.store import RelationWriter


class FakeWriter:
    def __init__(self) -> None:
        self.topic_id: str | None = None
        self.partitions: int | None = None

    def source_topic_id(self) -> str | None:
        return self.topic_id

    def set_source_topic_id(self, topic_id: str) -> None:
        self.topic_id = topic_id

    def source_partitions(self) -> int | None:
        return self.partitions

    def set_source_partitions(self, count: int) -> None:
        self.partitions = count


def relation(name: str, topic: str, partitions: int | None = None,
             replicas: int | None = None, kind: str = "table", writer: Any = None) -> Any:
    spec = SimpleNamespace(name=name, kind=kind, topic=topic, partitions=partitions,
                           replicas=replicas)
    return SimpleNamespace(spec=spec, writer=writer or FakeWriter())


class Broker:
    """Topic ids and creation, as connectors.kafka answers them."""

    def __init__(self, existing: dict[str, str] | None = None,
                 refuse: str | None = None) -> None:
        self.topics = dict(existing or {})
        self.created: list[tuple[str, int, int | None]] = []
        self.refuse = refuse
        self.counts: dict[str, int] = {}

    def describe(self, topics: Any) -> dict[str, TopicState | None]:
        return {t: None if t not in self.topics else
                TopicState(self.topics[t], self.counts.get(t, 1)) for t in topics}

    def create(self, topic: str, partitions: int, replicas: int | None) -> bool:
        if self.refuse:
            raise InfrastructureError(self.refuse)
        if topic in self.topics:
            return False
        self.created.append((topic, partitions, replicas))
        self.topics[topic] = f"id-{topic}"
        return True


def test_a_missing_topic_with_declared_partitions_is_created_and_its_id_recorded() -> None:
    broker = Broker(existing={"old": "id-old"})
    made = relation("s.made", "new", partitions=6, replicas=3)
    default = relation("s.default", "other", partitions=2)
    waits = relation("s.waits", "absent")
    kept = relation("s.kept", "old", partitions=9)
    watch = TopicWatch([made, default, waits, kept], broker.describe, create=broker.create)
    assert watch.changed(force=True) == []
    assert sorted(broker.created) == [("new", 6, 3), ("other", 2, None)]
    assert made.writer.topic_id == "id-new" and default.writer.topic_id == "id-other"
    assert waits.writer.topic_id is None and kept.writer.topic_id == "id-old"


def test_without_a_creator_nothing_is_created() -> None:
    broker = Broker()
    rel = relation("s.t", "new", partitions=6)
    TopicWatch([rel], broker.describe).changed(force=True)
    assert broker.created == [] and rel.writer.topic_id is None


def test_a_refused_creation_is_a_warning_naming_why_and_is_tried_again(
        caplog: pytest.LogCaptureFixture) -> None:
    broker = Broker(refuse="INVALID_REPLICATION_FACTOR: 3 > 1 broker")
    rel = relation("s.t", "new", partitions=6, replicas=3)
    watch = TopicWatch([rel], broker.describe, create=broker.create)
    with caplog.at_level(logging.WARNING, logger="materializer.worker"):
        watch.changed(force=True)
        watch.changed(force=True)  # within the minute: no second warning
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "cannot be created for table s.t" in warning
    assert "INVALID_REPLICATION_FACTOR" in warning and "replicas: 3" in warning
    broker.refuse = None
    watch.changed(force=True)
    assert broker.created == [("new", 6, 3)] and rel.writer.topic_id == "id-new"


def test_a_table_topic_that_grew_is_warned_about_once(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """Kafka's default partitioner sends a key's new records elsewhere once a topic has
    more partitions; the embedded broker cannot add partitions (no CreatePartitions), so
    the broker's answers are scripted here, on a real relation writer's meta."""
    broker = Broker(existing={"users": "id-u", "clicks": "id-c"})
    broker.counts = {"users": 4, "clicks": 4}
    writer = RelationWriter(tmp_path, "s.users", 1 << 20)
    table = relation("s.users", "users", writer=writer)
    stream = relation("s.clicks", "clicks", kind="stream")
    watch = TopicWatch([table, stream], broker.describe)
    with caplog.at_level(logging.WARNING, logger="materializer.worker"):
        assert watch.changed(force=True) == []
        assert writer.source_partitions() == 4 and caplog.records == []
        broker.counts = {"users": 8, "clicks": 8}
        watch.changed(force=True)
        watch.changed(force=True)  # recorded: said once
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "table s.users: topic users grew from 4 to 8 partitions" in warning
    assert "HTTP 409" in warning
    assert RelationWriter(tmp_path, "s.users", 1 << 20).source_partitions() == 8  # persisted
    assert stream.writer.partitions == 8  # a stream's keys are not unique: recorded only


@pytest.mark.integration
def test_the_worker_creates_a_declared_topic_and_materializes_it(session_broker: Any,
                                                                 tmp_path: Path) -> None:
    from connectors.kafka_admin import describe_topics, partition_count
    from connectors.producer import produce_records
    from materializer.store import Store
    from tests.support.workers import (
        caught_up,
        start_worker,
        unique,
        wait_until,
        write_config,
    )

    created, absent = unique("created"), unique("absent")
    cfg = write_config(tmp_path / "t.yaml", session_broker, f"""\
sql: |
  CREATE TABLE shop.made (id INT PRIMARY KEY, name STRING)
    WITH (kafka_topic='{created}', key_format='JSON', value_format='JSON',
          PARTITIONS=3, REPLICAS=1);
tables:
  - name: shop.waits
    topic: {absent}
    columns: {{id: int, name: string}}
    primary_key: [id]
""")
    conf = session_broker.kafka_config()
    worker = start_worker(cfg)
    try:
        # asked by id (DescribeTopics): a metadata request for one topic (list_topics) makes
        # the embedded broker create it with its own default partition count
        wait_until(lambda: describe_topics(conf, [created])[created], 60,
                   "the worker to create the declared topic", worker)
        assert partition_count(conf, created) == 3
        assert describe_topics(conf, [absent])[absent] is None  # no PARTITIONS: waited for
        ends = produce_records(conf, created, [(b"1", b'{"name": "a"}'),
                                               (b"2", b'{"name": "b"}')])
        wait_until(caught_up(tmp_path / "data", "shop.made", ends), 60,
                   "the created topic to be materialized", worker)
    finally:
        worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    with Store.open(tmp_path / "data") as store:
        assert store.table("shop.made").get_many([1, 2]) == [
            {"id": 1, "name": "a"}, {"id": 2, "name": "b"}]

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

from materializer.errors import InfrastructureError
from materializer.ingest.topics import TopicWatch


class FakeWriter:
    def __init__(self) -> None:
        self.topic_id: str | None = None

    def source_topic_id(self) -> str | None:
        return self.topic_id

    def set_source_topic_id(self, topic_id: str) -> None:
        self.topic_id = topic_id


def relation(name: str, topic: str, partitions: int | None = None,
             replicas: int | None = None) -> Any:
    spec = SimpleNamespace(name=name, kind="table", topic=topic, partitions=partitions,
                           replicas=replicas)
    return SimpleNamespace(spec=spec, writer=FakeWriter())


class Broker:
    """Topic ids and creation, as connectors.kafka answers them."""

    def __init__(self, existing: dict[str, str] | None = None,
                 refuse: str | None = None) -> None:
        self.topics = dict(existing or {})
        self.created: list[tuple[str, int, int | None]] = []
        self.refuse = refuse

    def ids(self, topics: Any) -> dict[str, str | None]:
        return {t: self.topics.get(t) for t in topics}

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
    watch = TopicWatch([made, default, waits, kept], broker.ids, create=broker.create)
    assert watch.changed(force=True) == []
    assert sorted(broker.created) == [("new", 6, 3), ("other", 2, None)]
    assert made.writer.topic_id == "id-new" and default.writer.topic_id == "id-other"
    assert waits.writer.topic_id is None and kept.writer.topic_id == "id-old"


def test_without_a_creator_nothing_is_created() -> None:
    broker = Broker()
    rel = relation("s.t", "new", partitions=6)
    TopicWatch([rel], broker.ids).changed(force=True)
    assert broker.created == [] and rel.writer.topic_id is None


def test_a_refused_creation_is_a_warning_naming_why_and_is_tried_again(
        caplog: pytest.LogCaptureFixture) -> None:
    broker = Broker(refuse="INVALID_REPLICATION_FACTOR: 3 > 1 broker")
    rel = relation("s.t", "new", partitions=6, replicas=3)
    watch = TopicWatch([rel], broker.ids, create=broker.create)
    with caplog.at_level(logging.WARNING, logger="materializer.worker"):
        watch.changed(force=True)
        watch.changed(force=True)  # within the minute: no second warning
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "cannot be created for table s.t" in warning
    assert "INVALID_REPLICATION_FACTOR" in warning and "replicas: 3" in warning
    broker.refuse = None
    watch.changed(force=True)
    assert broker.created == [("new", 6, 3)] and rel.writer.topic_id == "id-new"


@pytest.mark.integration
def test_the_worker_creates_a_declared_topic_and_materializes_it(session_broker: Any,
                                                                 tmp_path: Path) -> None:
    from connectors.kafka import partition_count, topic_ids
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
        wait_until(lambda: topic_ids(conf, [created])[created], 60,
                   "the worker to create the declared topic", worker)
        assert partition_count(conf, created) == 3
        assert topic_ids(conf, [absent])[absent] is None  # no PARTITIONS: waited for
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

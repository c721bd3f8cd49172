"""A snapshot owed to a change topic (`changes:` declared on a table with rows; the same
debt as `on_reset: rebuild`'s) is staged once the table reached the end its topic had when
the debt began, while a producer writes the topic in transactions back to back; before, it
waited for the worker to be caught up with the end of now, which such a topic never lets it
be (a transaction nearly always open counts in the end): no snapshot, and the table's
change events withheld meanwhile. Real broker, producers and worker."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from confluent_kafka import TopicPartition

from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from tests.support.busy_producer import STRING_TABLE, writing
from tests.support.change_topics import consumer
from tests.support.workers import caught_up, start_worker, unique, wait_until, write_config

BODY = STRING_TABLE + "{changes}"


def test_a_snapshot_is_staged_while_transactions_keep_coming(session_broker: DevBroker,
                                                            tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("src"), partitions=1)
    changes = session_broker.create_topic(unique("src.changes"), partitions=1)
    cfg = tmp_path / "c.yaml"
    group = unique("g")
    write_config(cfg, session_broker, BODY.format(topic=topic, changes=""), group=group)
    ends = produce_records(session_broker.kafka_config(), topic,
                           [(b"a", b'{"id": "a", "v": 1}'), (b"b", b'{"id": "b", "v": 2}')])
    worker = start_worker(cfg)
    try:
        wait_until(caught_up(tmp_path / "data", "public.t", ends), 60, "t to catch up", worker)
    finally:
        worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    write_config(cfg, session_broker,
                 BODY.format(topic=topic, changes=f"    changes: {{topic: {changes}}}\n"),
                 group=group)
    with writing(session_broker, topic, transactions=True) as writer:
        worker = start_worker(cfg)
        try:
            reader = consumer({"bootstrap.servers": session_broker.bootstrap})
            reader.assign([TopicPartition(changes, 0, 0)])
            try:
                deadline = time.monotonic() + 40
                while True:
                    assert time.monotonic() < deadline, "no snapshot (source.snapshot last)"
                    assert worker.poll() is None, "the worker stopped"
                    got = reader.consume(1000, 0.5)
                    if any(m.error() is None and b'"snapshot":"last"' in (m.value() or b"")
                           for m in got):
                        break
            finally:
                reader.close()
            assert writer.is_alive(), "the topic was not written meanwhile"
        finally:
            worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0

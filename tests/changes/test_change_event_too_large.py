"""A change event larger than the producer or the change topic takes (probe h83).

An update event carries the row twice (before and after), so a row of 600 KB, which its
source topic takes, makes an event of 1.2 MB, over librdkafka's `message.max.bytes`
(1,000,000). The outbox retried it forever with a warning like a broker outage's, every
later event of the table waited behind it, and the worker read ready (`/readyz` 200,
`materializer_worker_ready 1`): the change topic silently stopped. Now the failure is
named (size, key, the settings to raise) in an error log line, in the status file
(`change_events_stuck`), in `status`, and `/readyz` answers 503 with it; the events stay
in the outbox and go out, in order, once the limit is raised.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError

from connectors.producer import MessageTooLarge, Sink, produce_records
from materializer.catalog import load_catalog_text
from materializer.changes.outbox import ChangeOutbox
from materializer.devbroker import DevBroker, free_port
from materializer.errors import InfrastructureError
from materializer.ingest.relation import open_relation
from materializer.report import worker_state_note
from materializer.specs import TableSpec
from materializer.status import read_status, readiness
from materializer.testing import FakeRecord
from tests.support.workers import (
    read_topic,
    start_worker,
    unique,
    wait_until,
    write_config,
)

TABLE = """\
tables:
  - name: t
    topic: {topic}
    columns: {{id: long, v: string}}
    primary_key: [id]
    value_format: json
    changes: {{topic: {topic}.changes}}
"""


def test_an_event_over_message_max_bytes_is_named_and_kept(tmp_path: Path) -> None:
    spec = load_catalog_text(TABLE.format(topic="t"), str(tmp_path / "t.yaml")).relations[0]
    assert isinstance(spec, TableSpec)
    rel = open_relation(spec, tmp_path / "data", map_size=1 << 26)
    # nobody listens there: the size is checked by the producer before any request
    sink = Sink({"bootstrap.servers": f"127.0.0.1:{free_port()}",
                 "message.max.bytes": "2000"})
    outbox = ChangeOutbox(spec, rel.writer, spec.column_names, sink, 1)
    rel.outbox = outbox
    rel.apply({0: [FakeRecord(b"7", json.dumps({"id": 7, "v": "x" * 3000}).encode(), 0),
                   FakeRecord(b"8", json.dumps({"id": 8, "v": "small"}).encode(), 1)]})
    assert outbox.drain() == 0
    assert outbox.backlog() == 2  # kept, in order: nothing skipped
    assert outbox.stuck is not None
    assert "(key {\"id\":7})" in outbox.stuck and "message.max.bytes" in outbox.stuck, outbox.stuck
    status = {"updated_at": 1e9, "caught_up": True, "partitions": [{"lag": 0}],
              "change_events_stuck": {"public.t": outbox.stuck}}
    ready, reason = readiness(status, now=1e9)
    assert not ready
    assert reason.startswith("change events of public.t cannot be delivered: a change "
                             "event of 3,"), reason


class _SmallSink:
    """A producer that takes messages up to `limit` bytes (librdkafka's check at produce)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sent: list[bytes] = []

    def produce_many(self, topic: str, messages: list[tuple[bytes, bytes | None, int]]
                     ) -> None:
        for i, (key, value, _) in enumerate(messages):
            if len(key) + len(value or b"") > self.limit:
                e = MessageTooLarge(f"producing to {topic} failed: too large")
                e.produced = i
                raise e
            self.sent.append(key)

    def flush(self, timeout: float = 0) -> None:
        pass


def test_the_events_before_an_oversized_one_are_sent_once(tmp_path: Path) -> None:
    spec = load_catalog_text(TABLE.format(topic="t"), str(tmp_path / "t.yaml")).relations[0]
    assert isinstance(spec, TableSpec)
    rel = open_relation(spec, tmp_path / "data", map_size=1 << 26)
    sink = _SmallSink(2000)
    outbox = ChangeOutbox(spec, rel.writer, spec.column_names, sink, 1)  # type: ignore[arg-type]
    rel.outbox = outbox
    rel.apply({0: [FakeRecord(b"6", json.dumps({"id": 6, "v": "s"}).encode(), 0),
                   FakeRecord(b"7", json.dumps({"id": 7, "v": "x" * 3000}).encode(), 1),
                   FakeRecord(b"8", json.dumps({"id": 8, "v": "s"}).encode(), 2)]})
    for _ in range(3):  # retries, as the worker makes them
        outbox._retry_at = 0.0
        assert outbox.drain() in (0, 1)
    assert sink.sent == [b'{"id":6}']  # not once per retry
    assert outbox.backlog() == 2 and outbox.stuck is not None
    sink.limit = 10_000  # the limit raised
    outbox._retry_at = 0.0
    assert outbox.drain() == 2 and outbox.stuck is None
    assert sink.sent == [b'{"id":6}', b'{"id":7}', b'{"id":8}']


def test_a_broker_refusing_a_record_as_too_large_is_told_apart() -> None:
    """Kafka refuses a record over the topic's `max.message.bytes` in the delivery report
    (RecordTooLarge: librdkafka's MSG_SIZE_TOO_LARGE); the embedded broker enforces no
    such limit, so the report is given by hand here."""
    sink = Sink({"bootstrap.servers": f"127.0.0.1:{free_port()}"})
    msg = SimpleNamespace(topic=lambda: "t.changes")
    sink._report(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), msg)  # type: ignore[arg-type]
    with pytest.raises(MessageTooLarge):
        sink.flush(0.1)
    sink._report(KafkaError(KafkaError._MSG_TIMED_OUT), msg)  # type: ignore[arg-type]
    with pytest.raises(InfrastructureError) as info:
        sink.flush(0.1)
    assert not isinstance(info.value, MessageTooLarge)


@pytest.mark.integration
def test_a_worker_with_an_oversized_event_is_not_ready_until_the_limit_is_raised(
        session_broker: DevBroker, tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("bigevent"), partitions=1)
    big = [json.dumps({"id": 1, "v": c * 600_000}).encode() for c in "ab"]
    ends = produce_records(session_broker.kafka_config(), topic, [
        (b"1", big[0]), (b"1", big[1]), (b"2", json.dumps({"id": 2, "v": "s"}).encode())])
    cfg = write_config(tmp_path / "t.yaml", session_broker, TABLE.format(topic=topic))
    store = tmp_path / "data"
    worker = start_worker(cfg)

    def stuck() -> str | None:
        status = read_status(store) or {}
        return (status.get("change_events_stuck") or {}).get("public.t")

    why = wait_until(stuck, 90, "the oversized update event to be reported", worker)
    assert "1,200," in why and "(key {\"id\":1})" in why, why
    ready, reason = readiness(read_status(store))
    assert not ready and "public.t cannot be delivered" in reason, reason
    note = worker_state_note(str(store))
    assert note is not None and "cannot be delivered" in note
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    log = next(tmp_path.glob("worker-*.log")).read_text()
    assert "ERROR materializer.changes: change events of public.t" in log, log[-2000:]

    cfg.write_text(cfg.read_text().replace("kafka:\n", "kafka:\n  message.max.bytes: "
                                           "'3000000'\n", 1))
    worker = start_worker(cfg)
    wait_until(lambda: (read_status(store) or {}).get("pid") == worker.pid
               and (read_status(store) or {}).get("metrics", {}).get(
                   "outbox_backlog", {}).get("public.t") == 0, 90, "the outbox to empty",
               worker)
    assert stuck() is None
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    events = read_topic(session_broker, f"{topic}.changes", {0: 1}, timeout=30)
    got = [(k, json.loads(v)["op"] if v else None) for _, _, k, v in events]
    assert got[-2:] == [(b'{"id":1}', "u"), (b'{"id":2}', "c")], got  # the order kept
    assert ends == {0: 3}

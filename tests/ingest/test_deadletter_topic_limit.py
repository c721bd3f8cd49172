"""A dead letter fits its topic's `max.message.bytes` too, not only the producer's
`message.max.bytes`: a dead-letter topic with a lower limit (Kafka refuses a larger batch
with MESSAGE_TOO_LARGE) used to get the record cut to the producer's limit only, so the
broker refused it at every retry and the partition stopped for good behind it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connectors.kafka_admin import create_topic, topic_max_message_bytes
from materializer.devbroker import DevBroker
from materializer.errors import InfrastructureError
from materializer.ingest.apply import Rejected
from materializer.ingest.deadletter import DeadLetters
from materializer.specs import TableSpec
from tests.ingest.test_deadletter_edges import dead_letters
from tests.support.workers import applied_offsets, kafka_yaml, unique


def size(m: Any) -> int:
    return len(m.key() or b"") + len(m.value() or b"") + sum(
        len(n) + len(v) for n, v in m.headers())


def test_a_dead_letter_fits_its_topics_max_message_bytes(session_broker: DevBroker,
                                                         tmp_path: Path) -> None:
    from materializer.catalog import load_catalog
    from materializer.ingest.worker import Worker
    from materializer.testing import FakeRecord

    broker = session_broker
    src = broker.create_topic(unique("dl-src"), 1)
    dlq = unique("dl-small")
    create_topic(broker.kafka_config(), dlq, 1, config={"max.message.bytes": "3000"})
    assert topic_max_message_bytes(broker.kafka_config(), dlq) == 3000
    assert topic_max_message_bytes(broker.kafka_config(), unique("absent")) is None
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        kafka_yaml(broker) + f"group: {unique('g')}\nstore:\n  path: {tmp_path / 'data'}\n"
        f"tables:\n  - name: t\n    topic: {src}\n    columns: {{id: string, n: int}}\n"
        f"    primary_key: [id]\n    key_format: string\n    value_format: json\n"
        f"    on_error: dead_letter\n    dead_letter_topic: {dlq}\n")
    worker = Worker(load_catalog(str(cfg)))
    rel = worker.relations[0]
    bad = b"not json " * 1000  # 9000 bytes, under the producer's limit
    rel.apply({0: [FakeRecord(b"a", bad, 0), FakeRecord(b"b", b'{"n": 1}', 1)]},
              worker.dead_letters)
    assert applied_offsets(tmp_path / "data", "public.t") == {0: 2}
    got = dead_letters(broker, dlq, want=1)
    assert len(got) == 1
    assert size(got[0]) <= 3000
    headers = dict(got[0].headers())
    assert headers["materializer.truncated"] == b"key=1,value=9000"
    assert got[0].value() == bad[:len(got[0].value())]


class _Sink:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []
        self.failures = 0
        self.fail = False

    def produce(self, topic: str, key: bytes | None, value: bytes | None,
                headers: list[tuple[str, bytes]]) -> None:
        self.sent.append((topic, key, value))

    def flush(self, timeout: float) -> None:
        if self.fail:
            self.failures += 1
            raise InfrastructureError("producer: 0 message(s) unacknowledged, failures: [x]")

    def queued(self) -> int:
        return 0


def test_the_topic_limit_is_asked_once_and_again_after_a_failed_delivery() -> None:
    sink = _Sink()
    asked: list[str] = []
    limits = {"d": 4000}

    def limit(topic: str) -> int | None:
        asked.append(topic)
        return limits.get(topic)

    dl = DeadLetters(lambda: sink, {"message.max.bytes": "10000"}, limit)
    spec = TableSpec(name="t", topic="t", columns=(), key_columns=(),
                     on_error="dead_letter", dead_letter_topic="d")
    big = Rejected(0, 0, "malformed_json", "value: bad", "dead_letter", b"k", b"v" * 20000)
    dl.route(spec, 0, [big])
    dl.settle()
    assert asked == ["d"] and len(sink.sent[-1][2] or b"") < 4000
    dl.route(spec, 0, [Rejected(0, 1, "malformed_json", "value: bad", "dead_letter", b"k",
                                b"v")])
    dl.settle()
    assert asked == ["d"]  # kept
    sink.fail, limits["d"] = True, 2000  # the topic's limit lowered: refused
    dl.route(spec, 0, [Rejected(0, 2, "malformed_json", "value: bad", "dead_letter", b"k",
                                b"v" * 20000)])
    with pytest.raises(InfrastructureError):
        dl.settle()
    sink.fail = False
    dl.route(spec, 0, [Rejected(0, 2, "malformed_json", "value: bad", "dead_letter", b"k",
                                b"v" * 20000)])
    dl.settle()
    assert asked == ["d", "d"] and len(sink.sent[-1][2] or b"") < 2000
    # a topic the broker says nothing about: the producer's limit
    none = DeadLetters(lambda: sink, {"message.max.bytes": "10000"}, lambda t: None)
    assert none.limit("x") == 10000
    assert DeadLetters(lambda: sink, {}, lambda t: 5_000_000).limit("x") == 1_000_000

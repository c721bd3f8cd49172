"""`materializer_dead_letters_total` counts dead letters the broker acknowledged. It used to
count every produce call: while the dead-letter topic was missing (auto-creation refused),
each retry of the batch that failed to deliver added one, so a worker that had delivered
none said 2, and 12 once 10 were delivered (measured on the embedded broker)."""

from __future__ import annotations

import time
from pathlib import Path

from materializer.devbroker import DevBroker
from tests.ingest.test_deadletter_edges import dead_letters
from tests.support.workers import applied_offsets, kafka_yaml, unique


def test_dead_letters_are_counted_once_delivered(session_broker: DevBroker,
                                                 tmp_path: Path) -> None:
    from materializer.catalog import load_catalog
    from materializer.errors import InfrastructureError
    from materializer.ingest.worker import Worker
    from materializer.testing import FakeRecord

    broker = session_broker
    src = broker.create_topic(unique("dl-src"), 1)
    dlq = unique("dl-absent")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        kafka_yaml(broker) + "  allow.auto.create.topics: 'false'\n"
        f"group: {unique('g')}\nstore:\n  path: {tmp_path / 'data'}\n"
        f"tables:\n  - name: t\n    topic: {src}\n    columns: {{id: string, n: int}}\n"
        f"    primary_key: [id]\n    key_format: string\n    value_format: json\n"
        f"    on_error: dead_letter\n    dead_letter_topic: {dlq}\n")
    worker = Worker(load_catalog(str(cfg)))
    worker.dead_letters.flush_timeout = 1.0
    rel = worker.relations[0]
    batch = {0: [FakeRecord(b"a", b"bad", 0), FakeRecord(b"b", b'{"n": 1}', 1)]}
    for _ in range(3):  # the worker's retries while the topic is missing
        try:
            rel.apply(batch, worker.dead_letters)
        except InfrastructureError:
            continue
        raise AssertionError("a batch committed while its dead-letter topic was missing")
    assert applied_offsets(tmp_path / "data", "public.t") in ({}, {0: 0})
    assert worker.dead_letters.sent == 0  # none delivered: none counted
    broker.create_topic(dlq, 1)
    deadline = time.monotonic() + 60
    while True:
        try:
            rel.apply(batch, worker.dead_letters)
            break
        except InfrastructureError:
            assert time.monotonic() < deadline, "the batch never committed"
    assert applied_offsets(tmp_path / "data", "public.t") == {0: 2}
    got = dead_letters(broker, dlq, want=1)
    assert [(m.key(), m.value()) for m in got] == [(b"a", b"bad")]
    assert worker.dead_letters.sent == len(got) == 1

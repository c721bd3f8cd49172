"""A dead-letter topic that is missing for longer than `max.poll.interval.ms`: the worker
says which source record waits (topic, partition, offset, how many), stays in its group (one
wait for acknowledgements blocks a third of the interval at most, then the batch is applied
again with its consumer held), commits nothing past the undelivered dead letter, and
delivers it once when the topic is there."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from materializer.ingest.deadletter import settle_within
from tests.ingest.test_deadletter_edges import dead_letters
from tests.support.workers import applied_offsets, kafka_yaml, start_worker, unique, wait_until


def test_settle_within_a_third_of_the_poll_interval() -> None:
    assert settle_within({}) == 30.0  # librdkafka's default 300 s
    assert settle_within({"max.poll.interval.ms": "10000"}) < 3.4
    assert settle_within({"max.poll.interval.ms": "1500"}) == 1.0
    assert settle_within({"max.poll.interval.ms": "soon"}) == 30.0


def test_a_long_dead_letter_outage_names_the_record_and_keeps_the_group(
        session_broker: DevBroker, tmp_path: Path) -> None:
    broker = session_broker
    if broker.kafka_config().get("max.poll.interval.ms") != "10000":
        import pytest
        pytest.skip("needs the embedded broker's short max.poll.interval.ms (10 s)")
    src = broker.create_topic(unique("dlo-src"), 1)
    dlq = unique("dlo-dlq")  # not created yet
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        kafka_yaml(broker) + "  allow.auto.create.topics: 'false'\n"
        f"group: {unique('g')}\nstore:\n  path: {tmp_path / 'data'}\n"
        f"tables:\n  - name: t\n    topic: {src}\n    columns: {{id: string, n: int}}\n"
        f"    primary_key: [id]\n    key_format: string\n    value_format: json\n"
        f"    on_error: dead_letter\n    dead_letter_topic: {dlq}\n")
    produce_records(broker.kafka_config(), src, [(b"a", b'{"n": 1}'), (b"b", b"bad"),
                                                 (b"c", b'{"n": 3}')])
    worker = start_worker(cfg)
    log = next(tmp_path.glob("worker-*.log"))
    try:
        wait_until(lambda: f"not delivered to {dlq}" in log.read_text(errors="replace"), 90,
                   "the dead-letter warning", worker)
        text = log.read_text(errors="replace")
        assert f"the first for public.t record {src} partition 0 offset 1" in text, text
        started = time.monotonic()  # longer than max.poll.interval.ms (10 s) of outage
        wait_until(lambda: time.monotonic() - started > 15, 30, "15 s of outage", worker)
        assert applied_offsets(tmp_path / "data", "public.t").get(0, 0) == 0
        text = log.read_text(errors="replace")
        # librdkafka: "MAXPOLL ... leaving group"; the worker: partitions revoked
        assert "MAXPOLL" not in text and "leaving group" not in text.lower(), text
        broker.create_topic(dlq, 1)
        wait_until(lambda: applied_offsets(tmp_path / "data", "public.t").get(0, 0) == 3,
                   90, "the batch to commit once the dead-letter topic is there", worker)
        got = dead_letters(broker, dlq, want=1)
        assert [(m.key(), dict(m.headers())["materializer.offset"]) for m in got] \
            == [(b"b", b"1")]
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()

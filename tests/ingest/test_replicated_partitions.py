"""A `replicated: true` table's reader lists its topic's partitions at start; partitions the
topic gains later (Kafka's CreatePartitions) or the whole topic, created after the start,
used never to be read (or `run` stopped, exit 1), while status and /readyz said caught up.
The worker now assigns them at every topic check, from the beginning.

The embedded broker (Tansu) does not implement CreatePartitions, so a topic's growth is
played by a reader whose metadata answer hides its last partitions (`_hide_partitions`)
until the topic check (whose answer is the broker's) finds them."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import connectors.kafka as kafka
import materializer.ingest.worker as worker_module
from connectors.kafka import AssignedSource
from connectors.producer import produce_records
from materializer.catalog import load_catalog
from materializer.devbroker import DevBroker
from materializer.ingest.topics import TopicWatch
from materializer.ingest.worker import Worker
from materializer.status import read_status
from materializer.store import Store
from tests.support.workers import unique, wait_until, write_config


class _Hiding:
    """A consumer whose metadata answer lists only partitions below `shown`."""

    def __init__(self, real: Any, shown: int) -> None:
        self._real, self._shown = real, shown

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        md = self._real.list_topics(topic, timeout=timeout)
        for t in md.topics.values():
            t.partitions = {p: v for p, v in t.partitions.items() if p < self._shown}
        return md

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _hide_partitions(monkeypatch: pytest.MonkeyPatch, shown: int) -> None:
    real = kafka.reader_consumer

    def made(group: str, conf: dict[str, Any]) -> Any:
        consumer, reach = real(group, conf)
        return _Hiding(consumer, shown), reach
    monkeypatch.setattr(kafka, "reader_consumer", made)


def _fill(broker: DevBroker, topic: str, n: int = 40) -> dict[int, int]:
    ends = produce_records(broker.kafka_config(), topic,
                           [(i.to_bytes(4, "big"), json.dumps({"v": f"v{i}"}).encode())
                            for i in range(n)])
    assert len(ends) == 4, ends  # every partition holds records
    return ends


def test_the_reader_adds_partitions_from_the_beginning(
        session_broker: DevBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    topic = session_broker.create_topic(unique("rep"), partitions=4)
    ends = _fill(session_broker, topic)
    _hide_partitions(monkeypatch, 2)
    source = AssignedSource(session_broker.kafka_config(), [topic], lambda t, p: None)
    try:
        assert source.assigned == {(topic, 0), (topic, 1)}
        seen: dict[int, int] = {}

        def read_to(parts: set[int]) -> bool:
            for m in source.poll(500, 0.2).records:
                seen[m.partition()] = m.offset() + 1
            return all(seen.get(p) == ends[p] for p in parts)
        wait_until(lambda: read_to({0, 1}), 30, "partitions 0 and 1 read")
        assert source.add_partitions({topic: 4, "other": 9}) == [(topic, 2), (topic, 3)]
        assert source.add_partitions({topic: 4}) == []  # once
        assert source.assigned == {(topic, p) for p in range(4)}
        # not read yet: their end is unknown (lag unknown), not an end of 0
        assert source.end_offset(topic, 2) is None and source.end_offset(topic, 3) is None
        wait_until(lambda: read_to({0, 1, 2, 3}), 30, "partitions 2 and 3 read from offset 0")
        assert source.end_offset(topic, 2) == ends[2]
    finally:
        source.close()


@pytest.fixture
def quick_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's topic check every 0.3 s instead of 10 s."""
    monkeypatch.setattr(worker_module, "TopicWatch", functools.partial(TopicWatch, every=0.3))


def _start(cfg: Path) -> tuple[Worker, threading.Thread]:
    worker = Worker(load_catalog(str(cfg)))
    thread = threading.Thread(target=worker.run, daemon=True)
    return worker, thread


@pytest.fixture
def stopped() -> Iterator[list[tuple[Worker, threading.Thread]]]:
    """The workers the test started, stopped (and their loop ended) after it."""
    started: list[tuple[Worker, threading.Thread]] = []
    yield started
    for w, t in started:
        w.stop_event.set()
        t.join(30)


def _rows(store: Path) -> int:
    try:
        with Store.open(store) as s:
            return len(s.table("r"))
    except Exception:  # noqa: BLE001 - not there yet
        return -1


def _table(topic: str) -> str:
    return (f"tables:\n  - name: r\n    topic: {topic}\n    columns: {{id: int, v: string}}\n"
            "    primary_key: [id]\n    key_format: int\n    value_format: json\n"
            "    replicated: true\n")


def test_a_worker_reads_partitions_its_replicated_topic_gains(
        session_broker: DevBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        quick_checks: None, stopped: list[tuple[Worker, threading.Thread]]) -> None:
    topic = session_broker.create_topic(unique("rep"), partitions=4)
    ends = _fill(session_broker, topic)
    _hide_partitions(monkeypatch, 2)  # the topic had 2 partitions when the worker started
    store = tmp_path / "data"
    worker, thread = _start(write_config(tmp_path / "t.yaml", session_broker, _table(topic)))
    # `run --processes N` marked the partitions revoked when worker 0 was killed: the
    # worker started again clears the mark of the partitions it reads
    worker.relations[0].writer.set_revoked([0, 1, 2, 3], True)
    stopped.append((worker, thread))
    thread.start()
    wait_until(lambda: _rows(store) == 40, 60, "every row, partitions 2 and 3 included")
    status = wait_until(lambda: (s := read_status(store)) and s.get("caught_up")
                        and len(s["partitions"]) == 4 and s, 30, "caught up on 4 partitions")
    assert {p["partition"]: p["next_offset"] for p in status["partitions"]} == ends
    with Store.open(store) as s:
        assert s.table("r").revoked_partitions() == frozenset()


def test_a_replicated_table_waits_for_its_topic(
        session_broker: DevBroker, tmp_path: Path, quick_checks: None,
        stopped: list[tuple[Worker, threading.Thread]]) -> None:
    topic = unique("rep-later")  # does not exist yet: `run` used to exit 1
    store = tmp_path / "data"
    worker, thread = _start(write_config(tmp_path / "t.yaml", session_broker, _table(topic)))
    stopped.append((worker, thread))
    thread.start()
    wait_until(lambda: (read_status(store) or {}).get("pid"), 30, "the worker's status")
    assert thread.is_alive() and not read_status(store).get("caught_up")  # type: ignore[union-attr]
    session_broker.create_topic(topic, partitions=4)
    ends = _fill(session_broker, topic)
    wait_until(lambda: _rows(store) == 40, 60, "every row of the topic created later")
    status = wait_until(lambda: (s := read_status(store)) and s.get("caught_up") and s, 30,
                        "caught up")
    assert {p["partition"]: p["next_offset"] for p in status["partitions"]} == ends

"""Helpers for the faust tests: the test app as a real worker process, changelogs folded
with confluent-kafka, and a faust table's LMDB state read back as raw bytes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from materializer.devbroker import DevBroker, free_port
from materializer.store.generation import open_generation
from materializer.store.table_view import TableView
from tests.support.workers import STARTED, wait_until

ROOT = Path(__file__).resolve().parents[2]
COUNTER_APP = ROOT / "tests" / "faust" / "apps" / "counter.py"
TABLES = ("counts", "hits", "last")


@dataclass
class FaustApp:
    """One faust app (id, source topic, data directory), started as worker processes."""

    broker: DevBroker
    workdir: Path
    store: str = "lmdb://"
    script: Path = COUNTER_APP
    app_id: str = field(default_factory=lambda: f"fa-{uuid.uuid4().hex[:8]}")
    topic: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.topic:
            self.topic = self.broker.create_topic(f"words-{uuid.uuid4().hex[:8]}", partitions=2)
        self.datadir = self.workdir / self.app_id
        self.logs: list[Path] = []

    @property
    def tabledir(self) -> Path:
        """faust's table directory, where `lmdb://` keeps the tables."""
        return self.datadir / "v1" / "tables"

    def env(self) -> dict[str, str]:
        return {**os.environ, "FAUST_APP_ID": self.app_id, "FAUST_BROKER": self.broker.bootstrap,
                "FAUST_STORE": self.store, "FAUST_DATADIR": str(self.datadir),
                "FAUST_TOPIC": self.topic, "PYTHONPATH": str(ROOT), **self.extra_env}

    def start(self) -> subprocess.Popen[bytes]:
        log = self.workdir / f"{self.app_id}-{len(self.logs)}.log"
        self.logs.append(log)
        with open(log, "wb") as sink:
            proc = subprocess.Popen([sys.executable, str(self.script), "worker", "-l", "info",
                                     "--web-host", "127.0.0.1", "--web-port", str(free_port())],
                                    env=self.env(), stdout=sink, stderr=subprocess.STDOUT,
                                    cwd=self.workdir)
        STARTED.append(proc)
        return proc

    def log(self) -> str:
        return self.logs[-1].read_text(errors="replace")

    def wait_log(self, pattern: str, proc: subprocess.Popen[bytes], timeout: float = 60,
                 after: int = 0) -> re.Match[str]:
        """The first match of `pattern` in the current log past character `after`."""
        rx = re.compile(pattern)

        def found() -> re.Match[str] | None:
            if proc.poll() is not None:
                raise AssertionError(f"the faust worker exited ({proc.returncode}):\n"
                                     f"{self.log()[-4000:]}")
            return rx.search(self.log(), after)
        match: re.Match[str] = wait_until(found, timeout, f"{pattern!r} in the faust log")
        return match

    def changelog(self, table: str) -> str:
        return f"{self.app_id}-{table}-changelog"


def produce_words(broker: DevBroker, topic: str, n: int, keys: int, start: int = 0) -> None:
    """`n` records, key `k<i % keys>`, value `w<i>`, numbered from `start`."""
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 100})
    for i in range(start, start + n):
        p.produce(topic, key=b"k%d" % (i % keys), value=b"w%d" % i)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(30) == 0


def read_changelog(broker: DevBroker, topic: str, partitions: int = 2
                   ) -> list[tuple[int, int, bytes, bytes | None]]:
    """Every record of `topic` as (partition, offset, key, value), read to its end (the
    high watermark, then until a poll finds nothing: the embedded broker's watermark may be
    below the true end)."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"r-{uuid.uuid4().hex}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "enable.partition.eof": False})
    try:
        try:
            ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    for p in range(partitions)}
        except KafkaException:  # not created yet (the app is starting)
            return []
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        out: list[tuple[int, int, bytes, bytes | None]] = []
        seen = {p: -1 for p in range(partitions)}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = c.poll(0.2)
            if msg is None:
                if all(seen[p] + 1 >= ends[p] for p in seen):
                    break
                continue
            if msg.error():
                continue
            p, off = msg.partition(), msg.offset()
            seen[p] = off
            out.append((p, off, msg.key(), msg.value()))
        return out
    finally:
        c.close()


def fold(records: list[tuple[int, int, bytes, bytes | None]]) -> dict[bytes, bytes]:
    """The table a full replay of a changelog gives (tombstones delete)."""
    table: dict[bytes, bytes] = {}
    for _, _, k, v in sorted(records, key=lambda r: (r[0], r[1])):
        if v is None:
            table.pop(k, None)
        else:
            table[k] = v
    return table


def raw_table(data_dir: Path, name: str) -> dict[bytes, bytes]:
    """A faust table's LMDB state as faust's key and value bytes (every partition)."""
    view = TableView(data_dir, open_generation(data_dir, name))
    return {bytes(r["key"]): bytes(r["value"]) for r in TableView.scan(view)}


def next_offsets(data_dir: Path, name: str) -> dict[int, int]:
    view = TableView(data_dir, open_generation(data_dir, name))
    return view.next_offsets()


def json_loads(raw: bytes) -> Any:
    import json

    return json.loads(raw)


def make_app(tmp_path: Path, name: str = "t") -> Any:
    """A faust app (never started) whose tables are `lmdb://` stores under `tmp_path`."""
    import faust  # noqa: PLC0415

    return faust.App(name, broker="kafka://127.0.0.1:9", store=f"lmdb://{tmp_path}/tables",
                     datadir=str(tmp_path / "faust"))


def cl_event(topic: str, partition: int, offset: int, key: bytes,
                    value: bytes | None) -> Any:
    """What faust's recovery hands `apply_changelog_batch` for one changelog record."""
    return SimpleNamespace(message=SimpleNamespace(topic=topic, partition=partition,
                                                   offset=offset, key=key, value=value))


def store_of(table: Any) -> Any:
    """The `LmdbStore` of a faust table."""
    from connectors.faust import LmdbStore  # noqa: PLC0415

    store = table.data
    assert isinstance(store, LmdbStore)
    return store

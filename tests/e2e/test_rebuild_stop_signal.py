"""`materializer rebuild` asked to stop (SIGTERM) during its replay.

It died by the signal (exit -15, nothing said) where `run` stops cleanly. Now it stops
between two batches: the unfinished generation is deleted, the previous state stays
current and served, and it exits 143 with a line saying so (real broker and processes).
The rebuild is frozen (SIGSTOP) once its new generation exists and before it is
published, so the signal lands mid-replay on any machine."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from materializer.store import Store
from materializer.store import layout as _layout
from tests.support.workers import (
    STARTED,
    USERS_TABLE,
    materialize,
    unique,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.integration

NAME = "shop.users"


def _records(keys: range, tag: str) -> list[tuple[bytes | None, bytes | None]]:
    return [(k.to_bytes(8, "big", signed=True), json.dumps({"name": f"{tag}{k}"}).encode())
            for k in keys]


def _rows(data: Path) -> dict[int, str]:
    with Store.open(data) as store:
        return {r["id"]: r["name"] for r in store.table(NAME).scan()}


def test_rebuild_stopped_by_sigterm_keeps_the_state_and_says_so(session_broker: DevBroker,
                                                                 tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("rb-stop"), partitions=1)
    conf = session_broker.kafka_config()
    ends = produce_records(conf, topic, _records(range(300), "old"))
    cfg = write_config(tmp_path / "t.yaml", session_broker, USERS_TABLE.format(topic=topic))
    data = tmp_path / "data"
    materialize(cfg, {NAME: ends})
    before = _rows(data)
    (current,) = _layout.generations(data, NAME)
    # records the rebuild has to replay: far more than it reads before it is frozen
    produce_records(conf, topic, _records(range(1000, 61_000), "new"))

    log = tmp_path / "rebuild.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "materializer", "rebuild", str(cfg),
                                 NAME], stdout=sink, stderr=subprocess.STDOUT)
    STARTED.append(proc)
    wait_until(lambda: len(_layout.generations(data, NAME)) == 2, 60,
               "the rebuild's new generation", proc)
    proc.send_signal(signal.SIGSTOP)
    try:
        found = _layout.current(data, NAME)
        assert found is not None and found[1] == current, "published before the signal"
        proc.send_signal(signal.SIGTERM)
    finally:
        proc.send_signal(signal.SIGCONT)
    code = proc.wait(60)
    said = log.read_text(errors="replace")
    assert code == 143, said
    assert (f"materializer: {NAME}: the rebuild stopped by SIGTERM while replaying {topic} "
            "(the partial replay was deleted); the local state is unchanged") in said, said
    assert "Traceback" not in said
    assert _layout.generations(data, NAME) == [current]  # nothing left behind
    assert _rows(data) == before

"""A full LMDB map: the writer grows it up to `store.map_size`, readers in other
processes follow the growth, and past the ceiling the worker stops with a message
that names `store.map_size` (exit 1, no traceback)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from materializer.ingest.relation import open_relation
from materializer.store import Store
from materializer.store import writer as store_writer
from materializer.testing import FakeRecord
from tests.support.api import USERS, user_row
from tests.support.workers import start_worker, unique, wait_until, write_config

PAD = "x" * 400


def _batch(start: int, n: int) -> list[FakeRecord]:
    return [FakeRecord(json.dumps(i).encode(),
                       json.dumps(user_row(i) | {"name": PAD + str(i)}).encode(), i)
            for i in range(start, start + n)]


def test_the_map_grows_up_to_the_ceiling(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_writer, "INITIAL_MAP_SIZE", 256 << 10)
    rel = open_relation(USERS, tmp_path, map_size=64 << 20)
    assert rel.writer.env.info()["map_size"] == 256 << 10
    for start in range(0, 8000, 1000):  # about 4 MB of rows: several doublings
        rel.apply({0: _batch(start, 1000)})
    assert rel.writer.env.info()["map_size"] >= 4 << 20
    with Store.open(tmp_path) as store:
        users = store.table("users")
        assert len(users) == 8000
        assert users.get(7999)["name"] == PAD + "7999"  # type: ignore[index]


READER = """
import sys
from materializer.store import Store
store = Store.open(sys.argv[1])
users = store.table("users")
print(len(users), flush=True)      # the map is small now
sys.stdin.readline()               # the writer grows it meanwhile
print(len(users), users.get(int(sys.argv[2]))["name"][-4:], flush=True)
"""


def test_a_reader_in_another_process_follows_the_grown_map(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_writer, "INITIAL_MAP_SIZE", 256 << 10)
    rel = open_relation(USERS, tmp_path, map_size=64 << 20)
    rel.apply({0: _batch(0, 100)})
    small = rel.writer.env.info()["map_size"]
    with subprocess.Popen([sys.executable, "-c", textwrap.dedent(READER), str(tmp_path),
                           "5999"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as reader:
        assert reader.stdin is not None and reader.stdout is not None
        assert reader.stdout.readline().strip() == "100"
        for start in range(100, 6000, 1000):
            rel.apply({0: _batch(start, min(1000, 6000 - start))})
        assert rel.writer.env.info()["map_size"] > small
        reader.stdin.write("go\n")
        reader.stdin.flush()
        out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    assert out.split() == ["6000", "5999"]


@pytest.mark.integration
def test_a_full_map_at_the_ceiling_stops_the_worker_plainly(session_broker: DevBroker,
                                                            tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("big"), partitions=1)
    produce_records(session_broker.kafka_config(), topic, [
        (i.to_bytes(8, "big", signed=True), json.dumps({"name": PAD + str(i)}).encode())
        for i in range(10_000)])  # about 4 MB: four times the ceiling
    body = f"""\
tables:
  - name: shop.big
    topic: {topic}
    columns: {{id: long, name: string}}
    primary_key: [id]
    key_format: long
    value_format: json
"""
    cfg = write_config(tmp_path / "t.yaml", session_broker, body)
    cfg.write_text(cfg.read_text().replace("store:\n", "store:\n  map_size: 1MiB\n"))
    worker = start_worker(cfg)
    wait_until(lambda: worker.poll() is not None, 90, "the worker to stop")
    assert worker.returncode == 1
    log = next(tmp_path.glob("worker-*.log")).read_text()
    assert "store.map_size" in log and "1,048,576" in log, log[-2000:]
    assert "Traceback" not in log, log[-3000:]


def test_a_map_too_small_for_the_metadata_names_the_setting(tmp_path: Path) -> None:
    from materializer.errors import StoreError

    with pytest.raises(StoreError, match="store.map_size"):
        open_relation(USERS, tmp_path, map_size=16 << 10)

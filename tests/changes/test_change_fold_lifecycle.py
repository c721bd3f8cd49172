"""A consumer that folds a change topic by key reproduces the table through a worker's whole
life: upserts, deletes, partial updates, kill -9 of the worker and of `rebuild` mid-way,
`rebuild` and `resnapshot`.

Two folds are checked against the table as the store serves it, and against a model of
the source: the plainest one (topic order, the last event of a key wins, `d` and a tombstone
delete; repeats allowed), and README's consumer (skips a repeat by its source position,
applies snapshot events unconditionally, ignores tombstones), run as the README writes it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from materializer.store import Store
from tests.support.change_topics import Message, changelog, drain_all, expected_events
from tests.support.readme_consumer import run_readme_consumer
from tests.support.workers import unique, wait_until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, broker: DevBroker, full: str, part: str) -> Path:
    cfg = tmp_path / "t.yaml"
    cfg.write_text(json.dumps({  # JSON is YAML
        "kafka": {**broker.kafka_config(), "session.timeout.ms": "6000",
                  "max.poll.interval.ms": "10000"},
        "group": unique("fold"),
        "store": {"path": str(tmp_path / "data")},
        "tables": [
            {"name": "shop.full", "topic": full, "primary_key": ["id"],
             "columns": {"id": "int", "name": "string", "age": "long", "born": "date",
                         "score": "decimal(6,2)"},
             "key_format": "json", "value_format": "json",
             "changes": {"topic": f"{full}.changes"}},
            {"name": "shop.part", "topic": part, "primary_key": ["id"],
             "columns": {"id": "int", "name": "string", "age": "long", "note": "string"},
             "partial_update": ["name", "age", "note"],
             "key_format": "json", "value_format": "json",
             "changes": {"topic": f"{part}.changes"}}],
    }))
    return cfg


def _partial_log(seed: int, n: int, keys: int = 300) -> list[tuple[bytes, bytes | None]]:
    """Records that each carry a random subset of the listed columns, or delete."""
    rng = random.Random(seed)
    out: list[tuple[bytes, bytes | None]] = []
    for _ in range(n):
        k = str(rng.randrange(keys)).encode()
        if rng.random() < 0.12:
            out.append((k, None))
            continue
        rec: dict[str, Any] = {}
        for col, gen in (("name", lambda: rng.choice(["a", "b", None])),
                         ("age", lambda: rng.randrange(5)),
                         ("note", lambda: rng.choice(["x", "y", None]))):
            if rng.random() < 0.5:
                rec[col] = gen()
        out.append((k, json.dumps(rec).encode()))
    return out


def _partial_model(msgs: list[Message]) -> dict[Any, dict[str, Any]]:
    table: dict[Any, dict[str, Any]] = {}
    for m in sorted(msgs, key=lambda m: (m.partition, m.offset)):
        k = json.loads(m.key)
        if m.value is None:
            table.pop(k, None)
            continue
        row = table.get(k) or {"id": k, "name": None, "age": None, "note": None}
        table[k] = {**row, **json.loads(m.value)}
    return table


def _fold_plain(msgs: list[Message]) -> dict[Any, dict[str, Any]]:
    out: dict[Any, dict[str, Any]] = {}
    for m in sorted(msgs, key=lambda m: (m.partition, m.offset)):
        key = json.loads(m.key)["id"]
        if m.value is None:
            out.pop(key, None)
            continue
        ev = json.loads(m.value)
        if ev["op"] == "d":
            out.pop(key, None)
        else:
            out[key] = ev["after"]
    return out


def _table(data: Path, name: str) -> dict[Any, dict[str, Any]]:
    with Store.open(data) as store:
        return {r["id"]: r for r in store.table(name).scan(json_form=True)}


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen([sys.executable, "-m", "materializer", *args], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=sink,
                                start_new_session=True)


def _kill_rounds(cfg: Path, log: Path, rng: random.Random, rounds: int,
                 args: Callable[[], list[str]]) -> int:
    kills = 0
    for _ in range(rounds):
        proc = _start(args(), log)
        time.sleep(rng.uniform(0.8, 3.0))  # a random moment of its life, not a sync
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    return kills


def test_folds_reproduce_the_table_through_kills_rebuild_and_resnapshot(
        session_broker: DevBroker, tmp_path: Path) -> None:
    conf = session_broker.kafka_config()
    full = session_broker.create_topic(unique("full"), partitions=2)
    part = session_broker.create_topic(unique("part"), partitions=2)
    cfg = _config(tmp_path, session_broker, full, part)
    log = tmp_path / "worker.log"
    rng = random.Random(8)
    run = ["run", str(cfg), "--no-api", "--batch-size", "100"]
    full_log = changelog(seed=8, keys=400, records=30_000, replays=200)
    part_log = _partial_log(seed=8, n=20_000)
    produce_records(conf, full, full_log[:15_000])
    produce_records(conf, part, part_log[:10_000])
    kills = _kill_rounds(cfg, log, rng, 3, lambda: run)
    # rebuild, killed mid-way once, then to its end
    kills += _kill_rounds(cfg, log, rng, 1, lambda: ["rebuild", str(cfg), "shop.full"])
    done = subprocess.run([sys.executable, "-m", "materializer", "rebuild", str(cfg),
                           "shop.full"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    produce_records(conf, full, full_log[15_000:])
    produce_records(conf, part, part_log[10_000:])
    kills += _kill_rounds(cfg, log, rng, 2, lambda: run)
    done = subprocess.run([sys.executable, "-m", "materializer", "resnapshot", str(cfg),
                           "shop.part"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    kills += _kill_rounds(cfg, log, rng, 1, lambda: run)
    assert kills >= 4, log.read_text()[-3000:]

    full_model, _ = expected_events(drain_all(conf, full))
    part_model = _partial_model(drain_all(conf, part))
    proc = _start(run, log)
    got: dict[str, Any] = {}
    try:
        def folded() -> bool:
            for name, topic, model in (("full", full, full_model), ("part", part, part_model)):
                msgs = drain_all(conf, f"{topic}.changes", idle=1.0)
                got[name] = (len(msgs), _fold_plain(msgs), run_readme_consumer(msgs))
                if got[name][1] != model or got[name][2] != model:
                    return False
            return True
        wait_until(folded, 180, "the change topics to fold into the models", proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]
    assert _table(tmp_path / "data", "shop.full") == full_model
    assert _table(tmp_path / "data", "shop.part") == part_model
    print(f"FOLD kills={kills} full events={got['full'][0]} rows={len(full_model)} "
          f"part events={got['part'][0]} rows={len(part_model)}")

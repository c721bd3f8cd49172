"""End to end on a real broker: a YAML-declared table materialized by `materializer run`
(a real process) into real LMDB files, checked against a fold of the changelog."""

from __future__ import annotations

import decimal
import json
import os
import random
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from materializer.store import Store
from tests.support.workers import (
    applied_offsets,
    caught_up,
    materialize,
    read_topic,
    run_cli,
    start_worker,
    unique,
    wait_until,
    worker_running,
    write_config,
)

pytestmark = pytest.mark.integration

TABLE = """\
tables:
  - name: shop.users
    topic: {topic}
    columns: {{id: long, name: string, score: long, note: string, vip: boolean}}
    primary_key: [id]
    key_format: long
    value_format: json
"""

Record = tuple[bytes | None, bytes | None]
EDGE_IDS = [0, 1, -1, 2**63 - 1, -(2**63), 2**53 + 1]
TEXTS = ["", "Zoë", "名前", "emoji 🎉", "tab\tand\nnewline", "quote \" and \\", "plain"]


def changelog(n: int, keys: int, seed: int) -> tuple[list[Record], dict[int, dict[str, Any]],
                                                       int]:
    """A changelog with tombstones, null keys, deletes of absent keys, re-inserts after
    deletes, unicode and empty strings, nullable columns and 64-bit ints; returns it with
    its fold (last write wins, tombstones delete) and the number of null-key records."""
    rnd = random.Random(seed)
    ids = list(EDGE_IDS)
    seen = set(ids)
    while len(ids) < keys:
        candidate = rnd.randrange(-(2**63), 2**63)
        if candidate not in seen:
            seen.add(candidate)
            ids.append(candidate)
    table: dict[int, dict[str, Any]] = {}
    records: list[Record] = []
    nulls = 0
    for i in range(n):
        roll = rnd.random()
        if roll < 0.02:
            records.append((None, b'{"id": 5, "name": "null key"}'))
            nulls += 1
            continue
        uid = rnd.choice(ids)
        key = uid.to_bytes(8, "big", signed=True)
        if roll < 0.12:  # tombstone; about half of them for keys not present
            records.append((key, None))
            table.pop(uid, None)
            continue
        row = {"id": uid, "name": rnd.choice(TEXTS) + str(i % 5),
               "score": rnd.choice([0, -1, 2**63 - 1, -(2**63), rnd.randrange(-10**15, 10**15)]),
               "note": None if rnd.random() < 0.3 else rnd.choice(TEXTS),
               "vip": None if rnd.random() < 0.2 else rnd.random() < 0.5}
        value = dict(row)
        if value["note"] is None and rnd.random() < 0.5:
            del value["note"]  # a nullable column the record lacks is null
        value["ignored_extra"] = i  # fields that are not columns are ignored
        records.append((key, json.dumps(value, ensure_ascii=False).encode()))
        table[uid] = row
    return records, table, nulls


def fold(records: list[tuple[int, int, bytes | None, bytes | None]],
         upto: dict[int, int]) -> dict[int, dict[str, Any]]:
    """The table a correct worker holds after applying each partition below `upto`."""
    table: dict[int, dict[str, Any]] = {}
    for p, o, k, v in sorted(records, key=lambda r: (r[0], r[1])):
        if k is None or o >= upto.get(p, 0):
            continue
        uid = int.from_bytes(k, "big", signed=True)
        if v is None:
            table.pop(uid, None)
        else:
            d = json.loads(v)
            table[uid] = {"id": uid, "name": d["name"], "score": d["score"],
                          "note": d.get("note"), "vip": d["vip"]}
    return table


def assert_table_is(store_path: Path, expected: dict[int, dict[str, Any]],
                    absent: list[int]) -> None:
    with Store.open(store_path) as store:
        users = store.table("shop.users")
        keys = sorted(expected)
        got = users.get_many(keys)
        wrong = [(k, g, expected[k]) for k, g in zip(keys, got, strict=True) if g != expected[k]]
        assert not wrong, f"{len(wrong)} rows differ, first: {wrong[:3]}"
        assert users.get_many(absent) == [None] * len(absent)
        assert len(users) == len(expected)


def assert_each_record_counted_once(store_path: Path) -> None:
    """Counters commit with the rows: applied + dropped == next offset, per partition.
    A record applied twice, or skipped, would break the equality."""
    with Store.open(store_path) as store:
        for s in store.relation("shop.users").partition_stats():
            c = s["counters"]
            assert c.get("applied", 0) + c.get("dropped:null_key", 0) == s["next_offset"], s


def test_changelog_folds_into_the_table(session_broker: DevBroker, tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("users"), partitions=4)
    records, table, nulls = changelog(200_000, 20_000, seed=11)
    ends = produce_records(session_broker.kafka_config(), topic, records)
    cfg = write_config(tmp_path / "t.yaml", session_broker, TABLE.format(topic=topic))
    store = tmp_path / "data"
    worker = start_worker(cfg)
    try:
        wait_until(caught_up(store, "shop.users", ends), 120, "the worker to catch up", worker)
        assert_table_is(store, table, absent=[12345678901, -5])
        assert_each_record_counted_once(store)
        status = run_cli("status", str(cfg), "--json")
        assert status.returncode == 0, status.stderr
        rows = [json.loads(line) for line in status.stdout.splitlines()]
        assert sum(r["null_keys_dropped"] for r in rows) == nulls
        assert sum(r["rows"] for r in rows) == len(table)
        assert {r["partition"] for r in rows} == {0, 1, 2, 3}
        assert all(r["lag"] == 0 for r in rows)
        human = run_cli("status", str(cfg))
        assert "NULL KEYS" in human.stdout and "shop.users" in human.stdout
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)


def test_kill_9_during_ingestion_loses_and_repeats_nothing(session_broker: DevBroker,
                                                           tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("users"), partitions=4)
    records, _, _ = changelog(120_000, 5_000, seed=5)
    store = tmp_path / "data"
    ends: dict[int, int] = {}
    done = threading.Event()
    finished = threading.Event()

    def produce() -> None:  # new records keep arriving while the worker is killed
        try:
            for i in range(0, len(records), 2_000):
                for p, e in produce_records(session_broker.kafka_config(), topic,
                                            records[i:i + 2_000]).items():
                    ends[p] = max(ends.get(p, 0), e)
                if done.wait(0.1):
                    return
        finally:
            finished.set()
    producer = threading.Thread(target=produce)
    producer.start()
    rnd = random.Random(3)
    try:
        for round_ in range(5):
            # a fresh group each round: progress must come from LMDB alone, and the dead
            # member's session need not time out first
            cfg = write_config(tmp_path / "t.yaml", session_broker, TABLE.format(topic=topic))
            before = sum(applied_offsets(store, "shop.users").values())
            worker = start_worker(cfg)
            def progressed(b: int = before) -> bool:
                applied = sum(applied_offsets(store, "shop.users").values())
                return applied > b or (finished.is_set() and applied >= sum(ends.values()))
            wait_until(progressed, 60, f"progress in round {round_}", worker)
            done.wait(rnd.uniform(0.05, 0.6))
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(10)
    finally:
        producer.join()
    cfg = write_config(tmp_path / "t.yaml", session_broker, TABLE.format(topic=topic))
    worker = start_worker(cfg)
    try:
        wait_until(worker_running(store, worker), 60, "the worker to start", worker)
        wait_until(caught_up(store, "shop.users", ends), 120, "the final catch-up", worker)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    everything = read_topic(session_broker, topic, ends)
    assert len(everything) == len(records)
    expected = fold(everything, ends)
    assert_table_is(store, expected, absent=[])
    assert_each_record_counted_once(store)


def test_sigterm_commits_what_was_consumed_and_exits_0(session_broker: DevBroker,
                                                       tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("users"), partitions=4)
    records, _, _ = changelog(150_000, 10_000, seed=9)
    ends = produce_records(session_broker.kafka_config(), topic, records)
    cfg = write_config(tmp_path / "t.yaml", session_broker, TABLE.format(topic=topic))
    store = tmp_path / "data"
    worker = start_worker(cfg, "--batch-size", "2000")
    wait_until(lambda: sum(applied_offsets(store, "shop.users").values()) > 0, 60,
               "the first batch", worker)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(10) == 0
    upto = applied_offsets(store, "shop.users")
    assert sum(upto.values()) > 0
    everything = read_topic(session_broker, topic, ends)
    assert_table_is(store, fold(everything, upto), absent=[])
    assert_each_record_counted_once(store)


def test_cli_get_scan_and_check(session_broker: DevBroker, tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("orders"), partitions=2)
    body = f"""\
tables:
  - name: shop.orders
    topic: {topic}
    columns: {{customer_id: int, order_id: int, total: double, item: string}}
    primary_key: [customer_id, order_id]
    key_format: json
    value_format: json
"""
    rows = [(c, o, c * 10.5 + o, f"item {c}-{o}") for c in (7, 8, -3) for o in (1001, 2, 50)]
    ends = produce_records(session_broker.kafka_config(), topic, [
        (json.dumps({"customer_id": c, "order_id": o}).encode(),
         json.dumps({"total": t, "item": i}).encode()) for c, o, t, i in rows])
    cfg = write_config(tmp_path / "t.yaml", session_broker, body)
    assert run_cli("check", str(cfg)).returncode == 0
    materialize(cfg, {"shop.orders": ends})
    got = run_cli("get", str(cfg), "shop.orders", "7", "1001")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout) == {"customer_id": 7, "order_id": 1001, "total": 1074.5,
                                      "item": "item 7-1001"}
    missing = run_cli("get", str(cfg), "shop.orders", "7", "999")
    assert missing.returncode == 1 and missing.stdout == ""
    bad = run_cli("get", str(cfg), "shop.orders", "seven", "1")
    assert bad.returncode == 2 and "seven" in bad.stderr
    scan = run_cli("scan", str(cfg), "shop.orders", "--prefix", "7")
    assert [json.loads(x)["order_id"] for x in scan.stdout.splitlines()] == [2, 50, 1001]
    scan_all = run_cli("scan", str(cfg), "shop.orders", "--limit", "4")
    assert [(json.loads(x)["customer_id"], json.loads(x)["order_id"])
            for x in scan_all.stdout.splitlines()] == [(-3, 2), (-3, 50), (-3, 1001), (7, 2)]
    broken = tmp_path / "bad.yaml"
    broken.write_text(cfg.read_text().replace("primary_key: [customer_id, order_id]",
                                              "primary_key: [customer_id, nope]"))
    checked = run_cli("check", str(broken))
    assert checked.returncode == 2
    line = next(i for i, t in enumerate(broken.read_text().splitlines(), 1) if "nope" in t)
    assert f"bad.yaml: line {line}, column" in checked.stderr and "nope" in checked.stderr


def test_changed_declaration_is_refused_until_rebuild(session_broker: DevBroker,
                                                      tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("users"), partitions=2)
    records, table, nulls = changelog(3_000, 300, seed=2)
    ends = produce_records(session_broker.kafka_config(), topic, records)
    cfg = write_config(tmp_path / "t.yaml", session_broker, TABLE.format(topic=topic))
    materialize(cfg, {"shop.users": ends})
    # (a double would not hold 2**63 - 1 exactly: such a record is refused, not rounded)
    changed = cfg.read_text().replace("score: long", "score: 'decimal(20,0)'")
    cfg.write_text(changed)
    refused = run_cli("run", str(cfg), "--no-api")
    assert refused.returncode == 2
    assert "score" in refused.stderr and "materializer rebuild" in refused.stderr
    rebuilt = run_cli("rebuild", str(cfg), "shop.users")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert nulls > 0
    assert (f"{len(records) - nulls} records replayed; not applied: {nulls} dropped:null_key"
            in rebuilt.stdout), rebuilt.stdout
    with Store.open(tmp_path / "data") as store:
        users = store.table("shop.users")
        assert len(users) == len(table)
        some = sorted(table)[:50]
        assert [r and r["score"] for r in users.get_many(some)] == \
            [decimal.Decimal(table[k]["score"]) for k in some]
    # a nullable column added over applied records: refused (the rows held would read null
    # where their records carry a value) until a rebuild or `add-columns` takes it
    cfg.write_text(changed.replace("vip: boolean}", "vip: boolean, extra: string}"))
    refused = run_cli("run", str(cfg), "--no-api", timeout=60)
    assert refused.returncode == 2, refused.stderr
    assert "'extra' were added" in refused.stderr and "add-columns" in refused.stderr
    added = run_cli("add-columns", str(cfg), "shop.users")
    assert added.returncode == 0 and "extra added" in added.stdout, added.stderr
    again = start_worker(cfg)
    try:
        wait_until(worker_running(tmp_path / "data", again), 30, "start", again)
        assert again.poll() is None
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(30) == 0


def test_demo_runs_and_verifies_itself() -> None:
    demo = run_cli("demo", timeout=120)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "table equals the fold of the changelog: True" in demo.stdout
    assert "NULL KEYS" in demo.stdout

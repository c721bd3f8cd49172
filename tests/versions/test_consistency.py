"""Snapshots taken while a real worker ingests are consistent: every table and stream in a
snapshot equals the fold of its topic up to the offsets the snapshot recorded. Both kinds
are checked: one taken from outside during the ingestion, and those the worker's own
schedule (`snapshots: {every: 1s, keep: 2}`) takes."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from materializer.store import Store
from materializer.versions.paths import Manifest, list_snapshots
from materializer.versions.take import take_snapshot
from tests.support.workers import (
    applied_offsets,
    caught_up,
    read_topic,
    start_worker,
    unique,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.integration

CONFIG = """\
snapshots: {{every: 1s, keep: 2}}
tables:
  - name: shop.users
    topic: {users}
    columns: {{id: long, name: string, n: long}}
    primary_key: [id]
    key_format: long
streams:
  - name: shop.clicks
    topic: {clicks}
    columns: {{user: long, n: long}}
    key: [user]
    key_format: long
    retention: {{max_events_per_key: 100000}}
"""

Record = tuple[int, int, bytes | None, bytes | None]


def _key(k: int) -> bytes:
    return k.to_bytes(8, "big", signed=True)


def fold_table(records: list[Record], offsets: dict[int, int]) -> dict[int, dict[str, Any]]:
    table: dict[int, dict[str, Any]] = {}
    for p, o, k, v in sorted(records, key=lambda r: (r[0], r[1])):
        if o >= offsets.get(p, 0) or k is None:
            continue
        key = int.from_bytes(k, "big", signed=True)
        if v is None:
            table.pop(key, None)
        else:
            table[key] = {"id": key, **json.loads(v)}
    return table


def stream_events(records: list[Record], offsets: dict[int, int]) -> set[tuple[Any, ...]]:
    return {(int.from_bytes(k or b"", "big", signed=True), p, o,
             None if v is None else json.dumps(json.loads(v), sort_keys=True))
            for p, o, k, v in records if o < offsets.get(p, 0)}


def check(store: Path, m: Manifest, users: list[Record], clicks: list[Record]) -> None:
    with Store.open(store) as s:
        got = {r["id"]: r for r in s.table("shop.users", as_of=m.name).scan(json_form=True)}
        events = s.stream("shop.clicks", as_of=m.name).scan(json_form=True)
    assert got == fold_table(users, m.relations["shop.users"].offsets), m.name
    want = stream_events(clicks, m.relations["shop.clicks"].offsets)
    assert {(e["key"][0], e["partition"], e["offset"], None if e["value"] is None else
             json.dumps({"n": e["value"]["n"]}, sort_keys=True)) for e in events} == want, m.name


def test_snapshots_during_ingestion_equal_the_fold(session_broker: DevBroker,
                                                    tmp_path: Path) -> None:
    conf = session_broker.kafka_config()
    users_topic = session_broker.create_topic(unique("users"), partitions=3)
    clicks_topic = session_broker.create_topic(unique("clicks"), partitions=2)
    cfg = write_config(tmp_path / "t.yaml", session_broker,
                       CONFIG.format(users=users_topic, clicks=clicks_topic))
    store = tmp_path / "data"
    users_ends = produce_records(conf, users_topic, [
        (_key(i % 1500), None if i % 7 == 3 else json.dumps({"name": f"n{i}", "n": i}).encode())
        for i in range(24_000)])
    clicks_ends = produce_records(conf, clicks_topic, [
        (_key(i % 50), None if i % 11 == 5 else json.dumps({"n": i}).encode())
        for i in range(8_000)])
    worker = start_worker(cfg, "--batch-size", "60")
    try:
        wait_until(lambda: sum(applied_offsets(store, "shop.users").values()) > 2_000, 90,
                   "the worker to be ingesting", worker)
        taken = take_snapshot(store, "mid")  # from outside, while it ingests
        wait_until(caught_up(store, "shop.users", users_ends), 120, "users", worker)
        wait_until(caught_up(store, "shop.clicks", clicks_ends), 120, "clicks", worker)
    finally:
        worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert sum(taken.relations["shop.users"].offsets.values()) < sum(users_ends.values()), \
        "the snapshot was taken after the ingestion ended: it proves nothing"

    users = read_topic(session_broker, users_topic, users_ends)
    clicks = read_topic(session_broker, clicks_topic, clicks_ends)
    check(store, taken, users, clicks)

    def settled() -> list[Manifest]:  # a scheduled snapshot may finish after the worker
        found = [m for m in list_snapshots(store) if m.scheduled]
        pending = [e for e in (store / "snapshots").iterdir() if e.name.startswith(".tmp-")]
        return found if found and len(found) <= 2 and not pending else []

    scheduled = wait_until(settled, 30, "the scheduled snapshots to settle")
    assert all(m.name.startswith("auto-") for m in scheduled)
    for m in scheduled:
        check(store, m, users, clicks)

"""End to end on a real broker: Avro values of two schema versions plus poison records,
through `materializer run`, under each `on_error` policy.

Poison: a truncated Avro body, a wrong magic byte, an unknown schema id, an Avro
record whose `age` is a string (type mismatch), and, in a JSON table on a second
topic, malformed JSON, a non-object and a type mismatch. Every valid record around
them must land; the poison must be dead-lettered unchanged (`dead_letter`), counted
(`skip`), or stop the worker with exit 1 naming table, topic, partition and offset
(`fail`), after which nothing valid is lost when the worker runs again.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import random
import signal
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from connectors.kafka_admin import partition_count
from connectors.producer import produce_records
from connectors.registry import FileRegistry, RestRegistry
from materializer.devbroker import DevBroker
from materializer.errors import NotFound
from materializer.formats.wire import avro_encoder
from materializer.store import Store
from tests.support.registry_server import RegistryServer

pytestmark = [
    pytest.mark.integration,
]

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
Record = tuple[bytes, bytes | None]


@pytest.fixture(scope="module")
def broker(session_broker: DevBroker) -> Iterator[DevBroker]:
    yield session_broker  # the run's one broker


def ikey(i: int) -> bytes:
    return struct.pack(">i", i)


class Data:
    """The records of both topics, the poison among them, and the expected tables."""

    def __init__(self, registry: FileRegistry, seed: int = 7) -> None:
        rng = random.Random(seed)
        v1 = avro_encoder(registry, "users-value",
                          json.loads((SCHEMAS / "users-value-v1.avsc").read_text()))
        v2 = avro_encoder(registry, "users-value",
                          json.loads((SCHEMAS / "users-value-v2.avsc").read_text()))
        bad_age = avro_encoder(registry, "users-value-bad", {
            "type": "record", "name": "User", "namespace": "shop", "fields": [
                {"name": "id", "type": "int"}, {"name": "name", "type": "string"},
                {"name": "age", "type": "string"}]})
        self.users: list[Record] = []
        self.users_poison: dict[bytes, str] = {}  # value -> reason
        self.users_expected: dict[int, dict[str, Any]] = {}
        for n in range(400):
            k = rng.randrange(1, 60)
            roll = rng.random()
            if n % 25 == 12:  # poison, between valid records of the same key
                good = v2({"id": k, "name": f"p{n}", "age": n, "email": None})
                kind = n // 25 % 5
                value, reason = [
                    (good[:-2], "truncated"),
                    (b"\x01" + good[1:], "bad_magic"),
                    (b"\x00" + (4242).to_bytes(4, "big") + good[5:], "unknown_schema"),
                    (bad_age({"id": k, "name": f"p{n}", "age": "old"}), "type_mismatch"),
                    (good + b"\x07", "avro_decode"),
                ][kind]
                self.users.append((ikey(k), value))
                self.users_poison[value] = reason
                continue
            if roll < 0.08:
                self.users.append((ikey(k), None))
                self.users_expected.pop(k, None)
                continue
            age = rng.choice([None, rng.randrange(100)])
            if roll < 0.5:
                value = v1({"id": k, "name": f"u{k}-{n}", "age": age})
                row = {"id": k, "name": f"u{k}-{n}", "age": age, "email": None}
            else:
                email = rng.choice([None, f"u{k}@example.com"])
                value = v2({"id": k, "name": f"u{k}-{n}", "age": age, "email": email})
                row = {"id": k, "name": f"u{k}-{n}", "age": age, "email": email}
            self.users.append((ikey(k), value))
            self.users_expected[k] = row
        self.events: list[Record] = []
        self.events_poison: dict[bytes, str] = {}
        self.events_expected: dict[int, dict[str, Any]] = {}
        for n in range(150):
            k = rng.randrange(1, 30)
            if n % 20 == 5:
                value, reason = [(b'{"id": 1, "kind": "x"', "malformed_json"),
                                 (b"[1, 2]", "not_an_object"),
                                 (json.dumps({"kind": "x", "n": "many"}).encode(),
                                  "type_mismatch")][n // 20 % 3]
                value += b" " * n  # unique bytes per poison record
                self.events.append((json.dumps(k).encode(), value))
                self.events_poison[value] = reason
                continue
            row = {"kind": rng.choice(["view", "buy"]), "n": n}
            self.events.append((json.dumps(k).encode(), json.dumps(row).encode()))
            self.events_expected[k] = {"id": k, **row}


def config(tmp: Path, broker: DevBroker, users_topic: str, events_topic: str | None,
           policy: str, dlq: str | None = None) -> Path:
    kafka = "\n".join(f"  {k}: {json.dumps(v)}" for k, v in broker.kafka_config().items())
    extra = f"\n    dead_letter_topic: {dlq}" if dlq else ""
    text = f"""
kafka:
{kafka}
group: g-{uuid.uuid4().hex[:8]}
store:
  path: {tmp / 'data'}
schema_registry:
  path: {tmp / 'registry'}
tables:
  - name: shop.users
    topic: {users_topic}
    columns: {{id: int, name: string, age: long, email: string}}
    primary_key: [id]
    key_format: int
    value_format: avro
    on_error: {policy}{extra}
"""
    if events_topic:
        text += f"""
  - name: shop.events
    topic: {events_topic}
    columns: {{id: int, kind: string, n: int}}
    primary_key: [id]
    key_format: json
    value_format: json
    on_error: {policy}{extra}
"""
    path = tmp / f"{policy}.yaml"
    path.write_text(text)
    return path


def start(cfg: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "materializer", "run", str(cfg), "--no-api",
                             "--batch-size", "64"], cwd=ROOT, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def wait_applied(data_dir: Path, ends: dict[str, dict[int, int]], proc: subprocess.Popen[str],
                 timeout: float = 90.0) -> None:
    """Until every partition's stored next offset reaches the produced end."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"worker exited {proc.returncode}: {proc.stderr.read()[-2000:]}"
                                 if proc.stderr else "worker exited")
        try:
            with Store.open(data_dir) as store:
                done = all(
                    {s["partition"]: s["next_offset"]
                     for s in store.relation(name).partition_stats()}.get(p, 0) >= end
                    for name, per in ends.items() for p, end in per.items())
        except NotFound:
            done = False

        if done:
            return
        time.sleep(0.2)
    raise AssertionError("the worker did not catch up in time")


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    return err


def table_rows(data_dir: Path, name: str) -> dict[int, dict[str, Any]]:
    with Store.open(data_dir) as store:
        return {r["id"]: r for r in store.table(name).scan()}


def read_topic(conf: dict[str, str], topic: str, count: int, timeout: float = 60.0
               ) -> list[Message]:
    """The first `count` records of a topic (assigned, no group join)."""
    c = Consumer({**conf, "group.id": f"read-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING)
              for p in range(partition_count(conf, topic))])
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < count and time.monotonic() < deadline:
            for m in c.consume(500, 0.2):
                if m.error() is None:
                    out.append(m)
    finally:
        c.close()
    return out


@pytest.fixture(scope="module")
def produced(broker: DevBroker, tmp_path_factory: pytest.TempPathFactory
             ) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("e2e")
    registry = FileRegistry(base / "registry")
    data = Data(registry)
    users = broker.create_topic(partitions=3)
    users_one = broker.create_topic(partitions=1)
    events = broker.create_topic(partitions=2)
    conf = broker.kafka_config()
    ends = {"users": produce_records(conf, users, data.users),
            "users_one": produce_records(conf, users_one, data.users),
            "events": produce_records(conf, events, data.events)}
    return {"data": data, "registry": base / "registry", "users": users,
            "users_one": users_one, "events": events, "ends": ends}


def fresh(tmp_path: Path, produced: dict[str, Any]) -> Path:
    """A working directory with a copy of the registry the producers used."""
    (tmp_path / "registry").mkdir()
    for f in produced["registry"].iterdir():
        (tmp_path / "registry" / f.name).write_bytes(f.read_bytes())
    return tmp_path


def materialize_both(tmp: Path, cfg: Path, produced: dict[str, Any]) -> None:
    """Run the worker until both tables are caught up; each must equal its expected fold."""
    data: Data = produced["data"]
    proc = start(cfg)
    try:
        wait_applied(tmp / "data", {"shop.users": produced["ends"]["users"],
                                    "shop.events": produced["ends"]["events"]}, proc)
    finally:
        stop(proc)
    assert table_rows(tmp / "data", "shop.users") == data.users_expected
    assert table_rows(tmp / "data", "shop.events") == data.events_expected


def test_dead_letter(broker: DevBroker, produced: dict[str, Any], tmp_path: Path) -> None:
    data: Data = produced["data"]
    tmp = fresh(tmp_path, produced)
    dlq = broker.create_topic(partitions=1)
    cfg = config(tmp, broker, produced["users"], produced["events"], "dead_letter", dlq)
    materialize_both(tmp, cfg, produced)

    conf = broker.kafka_config()
    source = {m.value(): m for t in (produced["users"], produced["events"])
              for m in read_topic(conf, t, len(data.users) if t == produced["users"]
                                  else len(data.events))}
    poison = {**data.users_poison, **data.events_poison}
    letters = read_topic(conf, dlq, len(poison))
    assert len(letters) == len(poison)
    for m in letters:
        value = m.value()
        assert value in poison  # the raw value, unchanged
        orig = source[value]
        assert m.key() == orig.key()  # the raw key, unchanged
        headers = cast(list[tuple[str, bytes]], m.headers() or [])
        h = {k: v.decode() for k, v in headers}
        assert h["materializer.reason"] == poison[value]
        assert h["materializer.error"]
        assert h["materializer.topic"] == orig.topic()
        assert h["materializer.partition"] == str(orig.partition())
        assert h["materializer.offset"] == str(orig.offset())


def test_skip_counts_in_status(broker: DevBroker, produced: dict[str, Any],
                               tmp_path: Path) -> None:
    data: Data = produced["data"]
    tmp = fresh(tmp_path, produced)
    cfg = config(tmp, broker, produced["users"], produced["events"], "skip")
    materialize_both(tmp, cfg, produced)
    out = subprocess.run([sys.executable, "-m", "materializer", "status", str(cfg), "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    status = [json.loads(line) for line in out.stdout.splitlines()]
    for name, poison in (("shop.users", data.users_poison), ("shop.events",
                                                             data.events_poison)):
        mine = [s for s in status if s["relation"] == name]
        assert sum(s["rejected"] for s in mine) == len(poison)
        counted: dict[str, int] = {}
        for s in mine:
            for k, v in s["counters"].items():
                if k.startswith("skipped:"):
                    counted[k[len("skipped:"):]] = counted.get(k[len("skipped:"):], 0) + v
        want: dict[str, int] = {}
        for reason in poison.values():
            want[reason] = want.get(reason, 0) + 1
        assert counted == want


def test_fail_stops_with_the_record_and_loses_nothing(broker: DevBroker,
                                                      produced: dict[str, Any],
                                                      tmp_path: Path) -> None:
    data: Data = produced["data"]
    tmp = fresh(tmp_path, produced)
    topic = produced["users_one"]
    cfg = config(tmp, broker, topic, None, "fail")
    first_bad = next(i for i, (_, v) in enumerate(data.users) if v in data.users_poison)
    proc = start(cfg)
    try:
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err[-2000:]
    assert "shop.users" in err and f"topic {topic}" in err
    assert f"partition 0, offset {first_bad}" in err
    # everything before the bad record is applied, and its offset is where it stopped
    with Store.open(tmp / "data") as store:
        stats = store.relation("shop.users").partition_stats()
    assert stats[0]["next_offset"] == first_bad
    # run again with skip: it resumes at the bad record and nothing valid is lost
    cfg = config(tmp, broker, topic, None, "skip")
    proc = start(cfg)
    try:
        wait_applied(tmp / "data", {"shop.users": produced["ends"]["users_one"]}, proc)
    finally:
        stop(proc)
    assert table_rows(tmp / "data", "shop.users") == data.users_expected


def test_rest_registry_composite_avro_keys(broker: DevBroker, tmp_path: Path) -> None:
    """A Confluent REST registry with basic auth, configured in the YAML; Avro record
    keys make a composite primary key; logical types come back as Python values."""
    with RegistryServer(user="sr-user", password="sr-pass") as srv:
        reg = RestRegistry(srv.url, {"basic.auth.user.info": "sr-user:sr-pass"})
        kenc = avro_encoder(reg, "orders-key",
                            json.loads((SCHEMAS / "orders-key.avsc").read_text()))
        venc = avro_encoder(reg, "orders-value",
                            json.loads((SCHEMAS / "orders-value.avsc").read_text()))
        topic = broker.create_topic(partitions=2)
        rng = random.Random(3)
        expected: dict[tuple[int, int], dict[str, Any]] = {}
        records: list[Record] = []
        base = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
        for n in range(300):
            k = (rng.randrange(1, 8), rng.randrange(1000, 1010))
            total = decimal.Decimal(rng.randrange(100000)).scaleb(-2)
            placed = base + dt.timedelta(milliseconds=rng.randrange(10**9))
            status = rng.choice(["NEW", "PAID", "SHIPPED"])
            records.append((kenc({"customer_id": k[0], "order_id": k[1]}),
                            venc({"customer_id": k[0], "order_id": k[1], "total": total,
                                  "placed_at": placed, "ship_by": None, "status": status,
                                  "tags": ["t"] * (n % 3)})))
            expected[k] = {"customer_id": k[0], "order_id": k[1], "total": total,
                           "placed_at": placed, "status": status}
        ends = produce_records(broker.kafka_config(), topic, records)
        kafka = "\n".join(f"  {k}: {json.dumps(v)}" for k, v in broker.kafka_config().items())
        cfg = tmp_path / "orders.yaml"
        cfg.write_text(f"""
kafka:
{kafka}
group: g-{uuid.uuid4().hex[:8]}
store:
  path: {tmp_path / 'data'}
schema_registry:
  url: {srv.url}
  basic.auth.user.info: "sr-user:sr-pass"
tables:
  - name: shop.orders
    topic: {topic}
    columns: {{customer_id: int, order_id: int, total: "decimal(10,2)", placed_at: timestamp,
              status: string}}
    primary_key: [customer_id, order_id]
    key_format: avro
    value_format: avro
""")
        proc = start(cfg)
        try:
            wait_applied(tmp_path / "data", {"shop.orders": ends}, proc)
        finally:
            stop(proc)
    with Store.open(tmp_path / "data") as store:
        orders = store.table("shop.orders")
        got = {(r["customer_id"], r["order_id"]): r for r in orders.scan()}
        assert got == expected
        some = min(expected)
        assert orders.get(some) == expected[some]
        prefix = orders.scan(prefix=(some[0],))
        assert [(r["customer_id"], r["order_id"]) for r in prefix] == sorted(
            k for k in expected if k[0] == some[0])

"""`materializer demo`: the whole pipeline on an embedded broker, with sample data.

Starts the broker (see `devbroker`), produces a changelog of users with updates,
deletes, re-inserts and null keys, runs `materializer run` as a real child process,
waits until every record is applied, prints lookups and the status table, checks
the table against a fold of the changelog, and stops everything. Exits 0 on success.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from materializer.devbroker import DevBroker, free_port

DEMO_YAML = """\
# materializer demo: a users table from a keyed changelog topic
kafka:
  bootstrap.servers: {bootstrap}
{group_settings}
group: demo-materializer
store:
  path: {store}
api:
  listen: 127.0.0.1:{port}
tables:
  - name: shop.users
    topic: users
    columns: {{id: int, name: string, age: long, email: string}}
    primary_key: [id]
    key_format: int
    value_format: json
"""

NAMES = ["Alice", "Bob", "Chloé", "Dmitri", "Eve", "Fatima", "Göran", "Hiro", "Ines", "Jamal"]


def sample_changelog(n: int, keys: int, seed: int = 7
                     ) -> tuple[list[tuple[bytes | None, bytes | None]], dict[int, dict[str, Any]]]:
    """A changelog of users and the table it should fold to (last write wins,
    tombstones delete, null keys dropped)."""
    rnd = random.Random(seed)
    records: list[tuple[bytes | None, bytes | None]] = []
    table: dict[int, dict[str, Any]] = {}
    for i in range(n):
        roll = rnd.random()
        uid = rnd.randrange(1, keys + 1)
        if roll < 0.02:
            records.append((None, json.dumps({"id": uid, "name": "no key"}).encode()))
            continue
        key = uid.to_bytes(4, "big", signed=True)
        if roll < 0.10:
            records.append((key, None))
            table.pop(uid, None)
            continue
        name = rnd.choice(NAMES)
        row = {"id": uid, "name": f"{name} #{i}", "age": rnd.randrange(18, 90),
               "email": None if rnd.random() < 0.1 else f"{name.lower()}{uid}@example.com"}
        records.append((key, json.dumps(row).encode()))
        table[uid] = row
    return records, table


def _wait_applied(store_path: str, name: str, ends: dict[int, int], deadline: float) -> None:
    from materializer.errors import NotFound  # noqa: PLC0415
    from materializer.store import Store  # noqa: PLC0415

    while time.monotonic() < deadline:
        try:
            with Store.open(store_path) as store:
                applied = store.relation(name).next_offsets()
            if all(applied.get(p, 0) >= end for p, end in ends.items()):
                return
        except NotFound:
            pass
        time.sleep(0.1)
    raise TimeoutError("the worker did not catch up in time")


def run_demo(records: int = 20_000, keys: int = 2_000) -> int:
    from connectors.producer import produce_records  # noqa: PLC0415
    from materializer.catalog import load_catalog  # noqa: PLC0415
    from materializer.report import format_status, status_rows  # noqa: PLC0415
    from materializer.store import Store  # noqa: PLC0415

    t0 = time.monotonic()
    with DevBroker() as broker, tempfile.TemporaryDirectory(prefix="materializer-demo-") as tmp:
        print(f"broker: {broker.kind} at {broker.bootstrap}")
        broker.create_topic("users", partitions=4)
        changelog, expected = sample_changelog(records, keys)
        ends = produce_records(broker.kafka_config(), "users", changelog)
        nulls = sum(1 for k, _ in changelog if k is None)
        tombs = sum(1 for k, v in changelog if k is not None and v is None)
        distinct = len({k for k, _ in changelog if k is not None})  # of `keys` possible
        print(f"produced {len(changelog):,} records to topic users (4 partitions): "
              f"{tombs:,} tombstones, {nulls:,} null keys, {distinct:,} distinct keys")
        port = free_port()
        extra = "".join(f"  {k}: {v}\n" for k, v in broker.kafka_config().items()
                        if k != "bootstrap.servers").rstrip("\n")
        config = Path(tmp) / "demo.yaml"
        config.write_text(DEMO_YAML.format(bootstrap=broker.bootstrap, group_settings=extra,
                                           store=Path(tmp) / "data", port=port))
        catalog = load_catalog(str(config))
        print(f"$ materializer run {config}")
        worker = subprocess.Popen([sys.executable, "-m", "materializer", "run", str(config)],
                                  stderr=subprocess.DEVNULL)
        try:
            _wait_applied(catalog.store_path, "shop.users", ends, time.monotonic() + 45)
            print(f"caught up {time.monotonic() - t0:.1f} s after start\n")
            with Store.open(catalog.store_path) as store:
                users = store.table("shop.users")
                for uid in (1, 2, 3):
                    print(f"users.get({uid}) -> {users.get(uid)}")
                print(f"len(users) -> {len(users)}")
                print("users.scan(limit=3) ->")
                for row in users.scan(limit=3):
                    print(f"  {row}")
                got = users.get_many(sorted(range(1, keys + 1)))
                want = [expected.get(uid) for uid in range(1, keys + 1)]
                ok = got == want
                print(f"\ntable equals the fold of the changelog: {ok} "
                      f"({len(expected):,} rows)")
            _show_http(port)
            print("\n$ materializer status")
            print(format_status(status_rows(catalog)))
        finally:
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(20)
        print(f"\nworker stopped with exit code {code}; demo took "
              f"{time.monotonic() - t0:.1f} s")
        return 0 if ok and code == 0 else 1


def _show_http(port: int) -> None:
    url = f"http://127.0.0.1:{port}/tables/shop.users/rows/1"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                print(f"\nGET {url} -> {resp.status} {resp.read().decode()}")
                return
        except urllib.error.HTTPError as e:
            print(f"\nGET {url} -> {e.code} {e.read().decode()}")
            return
        except OSError:
            time.sleep(0.2)
    print(f"\n(the HTTP API did not answer at {url})")

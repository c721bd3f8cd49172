"""Helpers for cluster tests: workers as real processes (each `materializer run` with its API
child), their addresses, and HTTP calls to them. Every process is registered in
`tests.support.workers.STARTED`, so the autouse guard kills what a test leaves running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from materializer.cluster.record import Member, RelationState
from materializer.devbroker import DevBroker, free_port
from materializer.specs import TableSpec
from tests.support.api import columns
from tests.support.workers import STARTED, kafka_yaml, wait_until


@dataclass
class Node:
    """One worker process of a test cluster."""

    name: str
    store: Path
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL (the API child follows its parent)."""
        self.proc.kill()
        self.proc.wait(10)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def cluster_yaml(broker: DevBroker, group: str, body: str, extra: str = "") -> str:
    """A declaration file every worker of the group shares: per-worker settings come from
    the environment or the command line."""
    return (kafka_yaml(broker) + f"group: {group}\n"
            "store:\n  path: ${STORE:-./data}\n"
            "api:\n  listen: ${LISTEN:-127.0.0.1:8080}\n"
            "cluster:\n  worker_id: ${WORKER_ID:-}\n  heartbeat_ms: 300\n"
            "  member_timeout_ms: 4000\n" + extra + body)


def start_node(config: Path, name: str, *, flags: bool = True, env: dict[str, str] | None = None,
               extra: tuple[str, ...] = (), register: bool = True) -> Node:
    """`materializer run CONFIG` for worker `name`: store `<dir>/<name>` and a free port,
    given as flags (`--store`, `--listen`) or, with `flags=False`, through STORE/LISTEN.
    With `register=False` the per-test guard leaves it alone (a module's cluster: its
    fixture stops it)."""
    store = config.parent / name
    port = free_port()
    log = config.parent / f"{name}-{uuid.uuid4().hex[:6]}.log"
    args = [sys.executable, "-m", "materializer", "run", str(config), *extra]
    child_env = {**os.environ, "WORKER_ID": name, **(env or {})}
    if flags:
        args += ["--store", str(store), "--listen", f"127.0.0.1:{port}"]
    else:
        child_env.update(STORE=str(store), LISTEN=f"127.0.0.1:{port}")
    with open(log, "wb") as sink:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=sink, env=child_env)
    if register:
        STARTED.append(proc)
    return Node(name, store, port, proc, log)


def get(url: str, **kw: Any) -> httpx.Response:
    """One HTTP GET (a fresh connection; tests that load the API use a Client)."""
    return httpx.get(url, timeout=10, **kw)


def serving(node: Node) -> bool:
    try:
        return get(f"{node.url}/healthz").status_code == 200
    except httpx.TransportError:
        return False


def wait_serving(node: Node, timeout: float = 60) -> None:
    def check() -> bool:
        if node.proc.poll() is not None:
            raise AssertionError(f"worker {node.name} exited with {node.proc.returncode}:\n"
                                 f"{node.tail()}")
        return serving(node)
    wait_until(check, timeout, f"worker {node.name}'s API to serve")


# --------------------------------------------------------------------------- data

TABLES = """\
tables:
  - name: shop.users
    topic: {users}
    columns: {{id: long, name: string}}
    primary_key: [id]
    key_format: long
  - name: shop.carts
    topic: {carts}
    columns: {{cart: string, items: int}}
    primary_key: [cart]
    key_format: string
    partitioner: consistent_random
streams:
  - name: shop.clicks
    topic: {clicks}
    columns: {{user: string, url: string}}
    key: [user]
    key_format: string
"""
"""Two tables (murmur2 long keys; librdkafka consistent_random string keys) and a stream."""


def users_changelog(n: int) -> tuple[list[tuple[bytes, bytes | None]], dict[int, str | None]]:
    """Records for shop.users (two versions of each key, every 7th deleted) and their fold
    (None: absent)."""
    records: list[tuple[bytes, bytes | None]] = []
    fold: dict[int, str | None] = {}
    for version in (1, 2):
        for i in range(n):
            records.append((i.to_bytes(8, "big", signed=True),
                            json.dumps({"name": f"u{i}v{version}"}).encode()))
            fold[i] = f"u{i}v{version}"
    for i in range(0, n, 7):
        records.append((i.to_bytes(8, "big", signed=True), None))
        fold[i] = None
    return records, fold


def carts_changelog(n: int) -> tuple[list[tuple[bytes, bytes | None]], dict[str, int | None]]:
    records: list[tuple[bytes, bytes | None]] = []
    fold: dict[str, int | None] = {}
    for version in (1, 2):
        for i in range(n):
            records.append((f"c{i}".encode(), json.dumps({"items": i * version}).encode()))
            fold[f"c{i}"] = i * version
    for i in range(0, n, 5):
        records.append((f"c{i}".encode(), None))
        fold[f"c{i}"] = None
    return records, fold


def clicks_log(users: int, per_user: int) -> list[tuple[bytes, bytes | None]]:
    return [(f"p{u}".encode(), json.dumps({"url": f"/{u}/{k}"}).encode())
            for k in range(per_user) for u in range(users)]


def users_table_fold(cluster: Any, node: Node) -> dict[int, str | None]:
    """shop.users as a worker answers every key of the fold (None: absent)."""
    keys = [[i] for i in cluster.users]
    r = cluster.http.post(f"{node.url}/tables/shop.users/lookup", json={"keys": keys})
    if r.status_code != 200:
        return {}
    return {k[0]: (row["name"] if row else None) for k, row in zip(keys, r.json()["rows"],
                                                                    strict=True)}


OWN_USERS = TableSpec(name="own.users", topic="users",
                      columns=columns({"id": "long", "name": "string"}, ["id"]),
                      key_columns=("id",), key_format="json", value_format="json")
"""A two-partition table for membership records written by hand (`member_record`)."""


def member_record(wid: str, assigned: tuple[int, ...], heartbeat_at: int) -> Member:
    """Member `wid`'s record owning `assigned` partitions of OWN_USERS."""
    state = RelationState(topic="users", partitions=2, assigned=assigned, key_format="json")
    return Member(id=wid, url=f"http://127.0.0.1:9/{wid}", generation=3, assigned_at=1,
                  heartbeat_at=heartbeat_at, relations={OWN_USERS.name: state})


class Clock:
    """A monotonic clock the test moves (`now`; a stall is a jump), for modules whose
    `time` the test patches with it; wall time stays real."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return time.time()

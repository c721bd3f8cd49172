"""Builds real LMDB data directories for the HTTP API tests, writing the way the worker does.

Rows go through `RelationWriter` + `TableApplier` / `StreamApplier` from JSON-encoded
Kafka-like records, one `WriteBatch` per call, with the next offset committed alongside.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from materializer import cli
from materializer.columns import parse_type
from materializer.devbroker import free_port
from materializer.ingest.relation import Relation, open_relation
from materializer.specs import Column, RelationSpec, StreamSpec, TableSpec
from materializer.store import RelationWriter
from materializer.testing import FakeRecord

MAP_SIZE = 1 << 30


def columns(decl: Mapping[str, str], not_null: Iterable[str] = ()) -> tuple[Column, ...]:
    nn = set(not_null)
    return tuple(Column(n, parse_type(t)[0], n in nn) for n, t in decl.items())


USERS = TableSpec(
    name="public.users", topic="users",
    columns=columns({"id": "int", "name": "string", "score": "double", "born": "date",
                     "seen": "timestamp", "tags": "array<string>", "blob": "bytes",
                     "version": "long", "check": "string"}, ["id"]),
    key_columns=("id",), key_format="json", value_format="json")

ORDERS = TableSpec(
    name="shop.orders", topic="orders",
    columns=columns({"customer_id": "int", "order_id": "long", "total": "decimal(10,2)",
                     "note": "string"}, ["customer_id", "order_id"]),
    key_columns=("customer_id", "order_id"), key_format="json", value_format="json")

TAGS = TableSpec(
    name="public.tags", topic="tags",
    columns=columns({"tag": "string", "day": "date", "flag": "boolean", "weight": "double",
                     "n": "long"}, ["tag", "day", "flag", "weight"]),
    key_columns=("tag", "day", "flag", "weight"), key_format="json", value_format="json")

CLICKS = StreamSpec(
    name="public.clicks", topic="clicks",
    columns=columns({"user_id": "string", "url": "string", "n": "long"}),
    key_columns=("user_id",), key_format="json", value_format="json")


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()


@dataclass
class SpecWriter:
    """Writes JSON records into one relation, partition by partition, as the worker would."""

    data_dir: str
    spec: RelationSpec
    rel: Relation = field(init=False)
    offsets: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rel = open_relation(self.spec, self.data_dir, map_size=MAP_SIZE)

    @property
    def writer(self) -> RelationWriter:
        return self.rel.writer

    def write(self, items: Sequence[tuple[Any, Any]], partition: int = 0,
              ts: int = 1_700_000_000_000) -> None:
        """Apply (key, value) pairs (JSON-ready; value None is a tombstone) in one batch."""
        start = self.offsets.get(partition, 0)
        recs = [FakeRecord(None if k is None else _dumps(k), None if v is None else _dumps(v),
                           start + i, ts + i) for i, (k, v) in enumerate(items)]
        out = self.rel.apply({partition: recs})[partition]  # counted as the worker counts
        assert out.fatal is None, out.fatal
        self.offsets[partition] = out.next_offset


def user_row(i: int, version: int = 0) -> dict[str, Any]:
    """A users row whose every field can be checked against its key and version."""
    return {"id": i, "name": f"user-{i}", "score": i / 4, "born": f"19{i % 100:02d}-01-02",
            "seen": 1_600_000_000_000 + i, "tags": [f"t{i % 3}"], "blob": "AAE=",
            "version": version, "check": f"{i}:{version}"}


def build_data_dir(data_dir: str | os.PathLike[str], n_users: int = 200,
                   partitions: int = 3) -> dict[str, SpecWriter]:
    """A data dir with users (n_users rows over `partitions`), orders, tags and clicks."""
    d = str(data_dir)
    writers = {s.name: SpecWriter(d, s) for s in (USERS, ORDERS, TAGS, CLICKS)}
    for p in range(partitions):
        writers[USERS.name].write([(i, user_row(i)) for i in range(n_users) if i % partitions == p],
                                  partition=p)
    writers[ORDERS.name].write(
        [({"customer_id": c, "order_id": o}, {"total": f"{c}.{o:02d}", "note": f"{c}/{o}"})
         for c in range(1, 8) for o in range(1000, 1000 + c)])
    writers[TAGS.name].write(
        [({"tag": t, "day": d_, "flag": f, "weight": w}, {"n": 1})
         for t in ("a", "a/b", "ü %") for d_ in ("2024-01-01", "2024-02-29")
         for f in (False, True) for w in (-1.5, 0.0, 2.25)])
    writers[CLICKS.name].write(
        [("u1", {"url": f"/p{i}", "n": i}) for i in range(5)] + [("u2", None)]
        + [("u/3", {"url": "/x", "n": 0})])
    return writers


def user_row_json(i: int, version: int = 0) -> dict[str, Any]:
    """`user_row(i, version)` as the API and `json_form=True` answer it."""
    seen = dt.datetime.fromtimestamp((1_600_000_000_000 + i) / 1000, dt.UTC)
    return user_row(i, version) | {"born": f"19{i % 100:02d}-01-02",
                                   "seen": seen.isoformat().replace("+00:00", "Z")}


SERVE = """
import sys
from materializer.api.serve import serve
from materializer.specs import ApiSpec, Catalog
serve(Catalog(source="test", store_path=sys.argv[1], api=ApiSpec(listen=sys.argv[2],
      max_lookup_keys=100)), sys.argv[3] if len(sys.argv) > 3 else None)
"""


def wait_serving(url: str, proc: subprocess.Popen[Any], timeout: float = 30) -> bool:
    """Poll `url`/healthz until it answers 200 (True); False as soon as `proc` has exited
    or `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.05)


@contextmanager
def api_process(data_dir: str | os.PathLike[str], token: str | None = None,
                log: os.PathLike[str] | None = None) -> Iterator[str]:
    """The API served by `materializer.api.serve` in its own process; yields its base URL.
    With `log`, the process's stderr goes to that file (stdout nowhere)."""
    port = free_port()
    args = [sys.executable, "-c", SERVE, str(data_dir), f"127.0.0.1:{port}"]
    if log is None:
        proc = subprocess.Popen(args + ([token] if token else []))
    else:
        with open(log, "wb") as sink:
            proc = subprocess.Popen(args + ([token] if token else []),
                                    stdout=subprocess.DEVNULL, stderr=sink)
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_serving(url, proc):
            shown = "" if log is None else Path(log).read_text(errors="replace")
            raise RuntimeError(f"the API process did not start (exit {proc.poll()}) {shown}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cli_json(capsys: Any, *argv: str) -> tuple[int, list[Any], str]:
    """`materializer` run in process (`cli.main`): exit code, stdout's JSON lines and
    stderr (stripped), from pytest's `capsys`."""
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err.strip()

"""The API in its own process while a writer commits: no wrong answer, no error, stable paging.

The writer (a thread of the test process, writing as the worker does) upserts rows
whose every field is a function of (key, version), toggles another key range between
present and deleted, and appends bulky rows so the data file grows well past the
reader's initial map. Any answer can therefore be checked: a row must be exactly
`user_row_json(key, v)` for a version v the writer wrote for that key.
"""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.support.api import USERS, SpecWriter, api_process, user_row, user_row_json

STABLE = 2000  # keys 0..STABLE-1: always present, updated
TOGGLED = range(STABLE, STABLE + 200)  # inserted and deleted over and over
BULK = 100_000  # keys from here: large rows that grow the data file
PARTS = 3


@dataclass
class Writer:
    """Keeps writing until stopped; records each (key, version) before it is committed."""

    w: SpecWriter
    versions: dict[int, set[int]] = field(default_factory=lambda: defaultdict(set))
    stop: threading.Event = field(default_factory=threading.Event)
    batches: int = 0
    error: BaseException | None = None

    def seed(self) -> None:
        for p in range(PARTS):
            keys = [k for k in range(STABLE) if k % PARTS == p]
            for k in keys:
                self.versions[k].add(0)
            self.w.write([(k, user_row(k, 0)) for k in keys], partition=p)

    def run(self) -> None:
        rnd = random.Random(3)
        version = 0
        bulk = BULK
        try:
            while not self.stop.is_set():
                version += 1
                p = version % PARTS
                items: list[tuple[Any, Any]] = []
                for k in rnd.sample(range(p, STABLE, PARTS), 50):
                    self.versions[k].add(version)
                    items.append((k, user_row(k, version)))
                for k in rnd.sample([k for k in TOGGLED if k % PARTS == p], 10):
                    if rnd.random() < 0.5:
                        items.append((k, None))
                    else:
                        self.versions[k].add(version)
                        items.append((k, user_row(k, version)))
                for _ in range(4):
                    self.versions[bulk].add(version)
                    items.append((bulk, user_row(bulk, version) | {"tags": ["x" * 4000]}))
                    bulk += 1
                self.w.write(items, partition=p)
                self.batches += 1
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e


@pytest.fixture
def live(tmp_path: Any) -> Iterator[tuple[str, Writer]]:
    writer = Writer(SpecWriter(str(tmp_path), USERS))
    writer.seed()
    with api_process(tmp_path) as url:
        t = threading.Thread(target=writer.run, daemon=True)
        t.start()
        try:
            yield url, writer
        finally:
            writer.stop.set()
            t.join(30)
    assert writer.error is None, writer.error


def _check(k: int, status: int, row: Any, versions: dict[int, set[int]]) -> str | None:
    """Why an answer for key k is wrong, or None if it is right."""
    if status == 404:
        return None if k in TOGGLED else f"{k}: 404 for a key that is always present"
    if status != 200:
        return f"{k}: status {status}"
    v = row.get("version") if isinstance(row, dict) else None
    if not isinstance(v, int) or v not in versions[k]:
        return f"{k}: version {v} was never written"
    want = user_row_json(k, v) | ({"tags": ["x" * 4000]} if k >= BULK else {})
    if row != want:
        return f"{k}: {row} is not what was written at version {v}"
    return None


def test_12000_lookups_from_8_threads_during_writes(live: tuple[str, Writer]) -> None:
    url, writer = live
    wrong: list[str] = []
    errors: list[str] = []
    done = [0]
    lock = threading.Lock()

    def client(seed: int) -> None:
        rnd = random.Random(seed)
        with httpx.Client(base_url=url, timeout=30) as c:
            for i in range(1500):
                k = rnd.randrange(TOGGLED.stop)
                try:
                    r = c.get(f"/tables/users/rows/{k}")
                    why = _check(k, r.status_code, r.json(), writer.versions)
                    if i % 100 == 0:  # now and then, a batch lookup too
                        ks = [rnd.randrange(TOGGLED.stop) for _ in range(20)]
                        rows = c.post("/tables/users/lookup",
                                      json={"keys": [[x] for x in ks]}).json()["rows"]
                        for x, row in zip(ks, rows, strict=True):
                            why = why or _check(x, 404 if row is None else 200, row,
                                                writer.versions)
                except Exception as e:  # noqa: BLE001 - counted, not raised
                    with lock:
                        errors.append(f"{k}: {type(e).__name__}: {e}")
                    continue
                with lock:
                    done[0] += 1
                    if why:
                        wrong.append(why)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert writer.error is None, writer.error
    assert errors == [], errors[:5]
    assert wrong == [], wrong[:5]
    assert done[0] == 12_000
    assert writer.batches > 10, "the writer should have committed during the lookups"


def test_paging_under_writes_returns_each_row_once_in_key_order(
        live: tuple[str, Writer]) -> None:
    url, writer = live
    with httpx.Client(base_url=url, timeout=30) as c:
        for limit in (97, 1000):
            seen: list[int] = []
            after = None
            while True:
                params: dict[str, Any] = {"limit": limit}
                if after:
                    params["after"] = after
                r = c.get("/tables/users/rows", params=params)
                assert r.status_code == 200, r.text
                page = r.json()
                for row in page["rows"]:
                    k = row["id"]
                    assert _check(k, 200, row, writer.versions) is None
                    seen.append(k)
                after = page["next"]
                if after is None:
                    break
            assert seen == sorted(set(seen)), "keys repeat or go backwards"
            assert set(range(STABLE)) <= set(seen), "a row present throughout was skipped"
    assert writer.batches > 0

"""`run --processes N`: worker 0 alone reads the `replicated: true` tables. While it is
started again after a kill -9 (1-3 s), a miss on such a table answered 404 (absent), though
nobody read the table then; `run` now marks its partitions revoked as for the group's
(503, PartitionsNotHeld), and worker 0 clears the mark when it reads them again
(tests/ingest/test_replicated_partitions.py). Another worker's kill leaves them alone. A
grouped table on the replicated table's topic: worker 0's kill marked every partition of it
(worker 0 lists them all, for the replicated table), the other worker's too, which no
rebalance gave back (cooperative-sticky keeps them): its misses answered 503 until the stop."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from materializer.catalog.load import load_catalog
from materializer.errors import PartitionsNotHeld
from materializer.ingest.processes import Supervisor, _Child, child_status_path
from materializer.store import Store, StoreLock


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    """A supervisor of two workers (no broker, no worker process): table r (topic rep,
    replicated), table g (topic grp) and table s (topic rep, grouped)."""
    cfg = tmp_path / "t.yaml"
    table = ("  - name: {0}\n    topic: {1}\n    columns: {{id: string, v: long}}\n"
             "    primary_key: [id]\n    key_format: string\n    value_format: json\n")
    cfg.write_text(f"kafka:\n  bootstrap.servers: x:1\nstore:\n  path: {tmp_path / 'data'}\n"
                   "tables:\n" + table.format("r", "rep") + "    replicated: true\n"
                   + table.format("g", "grp") + table.format("s", "rep"))
    lock = StoreLock.acquire(load_catalog(str(cfg)).store_path, "a test")
    try:
        yield Supervisor(load_catalog(str(cfg)), 2, lock, ["run", str(cfg)],
                         threading.Event())
    finally:
        lock.release()


def _killed(sup: Supervisor, index: int, held: dict[str, list[int]]) -> None:
    """Worker `index`, holding `held` (relation: partitions), is killed."""
    topic = {"r": "rep", "g": "grp", "s": "rep"}
    parts = [{"relation": f"public.{n}", "topic": topic[n], "partition": p, "next_offset": 1,
              "end_offset": 1, "lag": 0} for n, ps in held.items() for p in ps]
    status = {"pid": 1, "updated_at": time.time(), "partitions": parts, "caught_up": True,
              "assigned": sorted({(x["topic"], x["partition"]) for x in parts}),
              "metrics": {}}
    child_status_path(sup.catalog.store_path, index).write_text(json.dumps(status))
    children = [_Child(i, None, 0.0) for i in range(2)]  # type: ignore[arg-type]
    sup._worker_killed(children[index], children)


def _revoked(sup: Supervisor) -> dict[str, frozenset[int]]:
    with Store.open(sup.catalog.store_path) as s:
        return {n: s.table(n).revoked_partitions() for n in ("r", "g", "s")}


def test_worker_0_killed_marks_its_replicated_partitions(supervisor: Supervisor) -> None:
    none = frozenset[int]()
    _killed(supervisor, 1, {"g": [1], "s": [1]})  # worker 1 never reads r
    assert _revoked(supervisor) == {"r": none, "g": {1}, "s": {1}}
    supervisor._unmark()
    _killed(supervisor, 0, {"g": [0], "s": [0], "r": [0, 1]})
    assert _revoked(supervisor) == {"r": {0, 1}, "g": {0}, "s": {0}}  # s/1 is worker 1's
    with Store.open(supervisor.catalog.store_path) as s, pytest.raises(PartitionsNotHeld):
        s.table("r").get("absent")  # the API: 503, not 404
    supervisor._unmark()  # the stop: a clean stop keeps them current
    assert _revoked(supervisor) == {"r": none, "g": none, "s": none}

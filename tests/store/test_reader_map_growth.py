"""A reader (`serve`, the API child of `run`, a `Store` view) of a relation whose file another
process grew past the reader's mapping must adopt the new size on every path, not only on
its lookups' own transactions.

The liveness check that a view runs every CHECK_INTERVAL (`store.liveness.live_writer_gone`)
began its read transaction with `env.begin` directly, so the first check after the worker's
writes (a change-event backlog of 25k events during a 150 s outage of the change topic, probe
h98) pushed a relation's file past the 10 MiB a reader maps at first answered HTTP 500
(`lmdb.MapResizedError: MDB_MAP_RESIZED` out of `GET /tables` and `GET /tables/{t}/rows/{k}`),
and a `Store` view raised LMDB's own exception from `get`."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import materializer.store.read as read
from materializer.store import Store

ROOT = Path(__file__).resolve().parents[2]
WRITE = textwrap.dedent("""
    import sys
    from materializer.ingest.relation import open_relation
    from materializer.testing import FakeRecord
    from tests.support.changes import table
    rel = open_relation(table(columns={"id": "long", "s": "string"}), sys.argv[1],
                        map_size=1 << 26)
    n, size = int(sys.argv[2]), int(sys.argv[3])
    rel.apply({0: [FakeRecord(str(i).encode(), b'{"s": "%s"}' % (b"x" * size), i)
                   for i in range(n)]})
""")


def write(data: Path, records: int, size: int) -> None:
    done = subprocess.run([sys.executable, "-c", WRITE, str(data), str(records), str(size)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_a_view_adopts_a_file_grown_past_its_map(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, 1, 10)  # the files, small: a reader opening them maps 10 MiB
    monkeypatch.setattr(read, "CHECK_INTERVAL", 0.0)  # every read runs the view's checks
    with Store.open(tmp_path) as store:
        items = store.table("shop.items")
        assert items.get(0) == {"id": 0, "s": "x" * 10}
        write(tmp_path, 3000, 5000)  # another process: about 15 MiB, past this reader's map
        assert items.get(2999) == {"id": 2999, "s": "x" * 5000}
        assert len(items) == 3000

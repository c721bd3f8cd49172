"""A reader's map and the worker's growing file. Readers mapped what py-lmdb maps by default
(10 MiB, or the file if larger), so once the worker's data outgrew that (soon after any
reader's start) the next read adopted the new size (`set_mapsize`), which in py-lmdb
invalidates every transaction and cursor of the environment: a read in progress (a diff
iterator kept across a `get`, another thread's scan) raised "Attempt to operate on
closed/deleted/dropped object". A reader of a live relation now maps READ_MAP_RESERVE
(64 GiB of address space, the worker's default ceiling) at open: the file grows within it."""

from __future__ import annotations

import marshal
import subprocess
import sys
import textwrap
from pathlib import Path

from materializer.store import Store
from materializer.store.environment import READ_MAP_RESERVE

SCRIPT = textwrap.dedent("""
    import sys
    from materializer.ingest.relation import open_relation
    from materializer.testing import FakeRecord
    from tests.support.changes import table
    rel = open_relation(table(columns={"id": "long", "s": "string"}), sys.argv[1],
                        map_size=1 << 22)
    n, size = int(sys.argv[2]), int(sys.argv[3])
    if size:
        rel.writer.env.set_mapsize(size)
    start = rel.writer.next_offsets().get(0, 0)
    rel.apply({0: [FakeRecord(str(start + i).encode(), b'{"s": "%s"}' % (b"x" * 5000),
                              start + i) for i in range(n)]})
    print(rel.writer.env.info()["map_size"])
""")


def _write(data: Path, n: int, map_size: int = 0) -> int:
    """n more rows of 5000 bytes, written by another process (the worker), its map grown to
    `map_size` first if given; returns its map size."""
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(data), str(n), str(map_size)],
                          capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_a_read_in_progress_survives_the_worker_growing_the_file(tmp_path: Path) -> None:
    assert _write(tmp_path, 300) == 1 << 22
    with Store.open(tmp_path) as store:
        view = store.table("shop.items")
        assert view.get(1)["s"] == "x" * 5000
        # a read in progress, as a diff iterator or another thread's scan holds one
        txn, parts = view._g.begin()
        cursor = txn.cursor(db=parts[0][1])
        assert cursor.first()
        pairs = iter(cursor)
        first = [next(pairs) for _ in range(100)]
        assert _write(tmp_path, 4000, 1 << 26) == 1 << 26  # about 20 MiB more
        assert view.get(4299)["s"] == "x" * 5000  # another read meanwhile
        rest = list(pairs)  # the read in progress goes on, in its own snapshot
        txn.abort()
        assert len(first) + len(rest) == 300
        assert all(marshal.loads(v)[1] == "x" * 5000 for _, v in first + rest)
        assert view._g.env.info()["map_size"] == READ_MAP_RESERVE
        assert len(view) == 4300

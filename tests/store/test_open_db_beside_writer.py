"""Opening a named database of an environment another thread of this process is writing
(a `Store` read beside an in-process worker: the Python API and `Worker` in one process)
returns once the writer commits: py-lmdb opened the handle in a write transaction whose
begin waited for the writer's lock holding the GIL the writer needed to finish: the
process hung (seen in tests/ingest/test_replicated_partitions.py under CI)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import sys, threading
    import lmdb
    from materializer.store.environment import open_existing_db
    env = lmdb.open(sys.argv[1], max_dbs=8, map_size=1 << 24)
    with env.begin(write=True) as txn:
        env.open_db(b"x", txn=txn)
    holding, done = threading.Event(), threading.Event()
    def writer():
        txn = env.begin(write=True)
        holding.set()
        for i in range(200):  # Python work inside the write transaction: needs the GIL
            txn.put(str(i).encode(), b"v")
            done.wait(0.01)
        txn.commit()
    t = threading.Thread(target=writer)
    t.start()
    holding.wait()
    open_existing_db(env, b"x")
    print("opened")
    done.set()
    t.join()
""")


def test_opening_a_db_while_this_process_writes_does_not_hang(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True,
                         text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "opened"

"""A writer killed (kill -9) between writing a store-root file's temporary and renaming it
over the file (`declared.json`, `format`, `worker.json`, a worker process's status file,
`cluster.json`) left the temporary for ever: the next holder of the store lock deletes
those of processes that no longer run, never a living writer's."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from materializer.store.lock import StoreLock

_KILLED_AT_RENAME = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from materializer.status import replace_json
    from materializer.store.layout import write_declared
    from materializer.store.lock import stamp_format
    os.replace = lambda *a, **k: os._exit(9)  # killed between the write and the rename
    store, what = Path(sys.argv[1]), sys.argv[2]
    if what == "declared":
        write_declared(store, ["public.t"])
    elif what == "format":
        stamp_format(store)
    else:
        replace_json(store / what, {"pid": os.getpid()})
""")


def _killed_writer(store: Path, what: str) -> None:
    p = subprocess.run([sys.executable, "-c", _KILLED_AT_RENAME, str(store), what],
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, timeout=60)
    assert p.returncode == 9


def test_lock_holder_removes_temporaries_of_killed_writers(tmp_path: Path) -> None:
    store = tmp_path / "data"
    store.mkdir()
    for what in ("declared", "format", "worker.json", "worker.0.json", "cluster.json"):
        _killed_writer(store, what)
    left = sorted(e.name for e in store.iterdir())
    assert len(left) == 5, left  # one temporary each, nothing renamed
    live = [store / f"worker.{os.getpid()}.tmp", store / f".declared.json.{os.getpid()}"]
    for p in live:
        p.write_text("a living writer's")
    keep = store / "notes.tmp"
    keep.write_text("not a temporary")
    lock = StoreLock.acquire(store, "test")
    try:
        assert sorted(e.name for e in store.iterdir()) == sorted(
            ["format", "lock", "notes.tmp", *(p.name for p in live)])
    finally:
        lock.release()

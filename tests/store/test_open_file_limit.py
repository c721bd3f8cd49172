"""A worker keeps 3 file descriptors open per relation (LMDB's data file twice, its lock
file). Under the common default `ulimit -n` of 1,024, a declaration of 400 tables stopped
`materializer run` with an OSError traceback ("Too many open files") while opening its
340th relation (probe h126). The soft limit is now raised as far as the relations need,
and a hard limit too low is a clear error before any relation is opened. The limits are
set in a child process, not in the test's own."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from materializer.store.descriptors import FDS_PER_WRITER, descriptors_needed
from tests.support.api import USERS, SpecWriter

CHILD = textwrap.dedent("""
    import resource, sys
    from materializer.catalog.load import load_catalog_text
    from materializer.errors import StoreError
    from materializer.ingest.opening import open_relations
    data, n, soft, hard = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    tables = "".join(f"  - {{name: t{i}, topic: t, columns: {{id: int, v: string}}, "
                     f"primary_key: [id]}}\\n" for i in range(n))
    catalog = load_catalog_text(f"store: {{path: {data}}}\\ntables:\\n{tables}", "c.yaml")
    try:
        rels = open_relations(catalog, None)
    except StoreError as e:
        print("StoreError:", e)
        sys.exit(3)
    print(len(rels), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
""")


def _child(tmp: Path, n: int, soft: int, hard: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-c", CHILD, str(tmp / "data"), str(n), str(soft),
                           str(hard)], capture_output=True, text=True, timeout=120, env=env)


def test_the_soft_limit_is_raised_for_the_relations(tmp_path: Path) -> None:
    r = _child(tmp_path, 100, 200, 4096)  # 100 relations hold 300 descriptors
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["100", str(descriptors_needed(100))]


def test_a_hard_limit_too_low_is_a_clear_error_before_any_relation_is_opened(
        tmp_path: Path) -> None:
    r = _child(tmp_path, 100, 200, 200)
    assert r.returncode == 3, (r.stdout, r.stderr[-2000:])
    assert "100 relations need about 556 open files" in r.stdout, r.stdout
    assert "ulimit -n 556" in r.stdout
    assert not (tmp_path / "data" / "relations").exists()


def test_a_writer_holds_the_descriptors_counted(tmp_path: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    SpecWriter(str(tmp_path), USERS)
    assert len(os.listdir("/proc/self/fd")) - before == FDS_PER_WRITER

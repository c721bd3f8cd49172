"""kill -9 during a snapshot (a real `materializer snapshot` process) leaves no half snapshot
listed and the live tables intact; the next snapshot removes what it left."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
from pathlib import Path

from materializer.ingest.relation import open_relation
from materializer.specs import TableSpec
from materializer.store import Store
from materializer.store.keys import KeyCodec
from materializer.versions.paths import list_snapshots, snapshot_names
from tests.support.api import columns
from tests.support.workers import STARTED, run_cli, wait_until

N = 60_000
TABLES = [TableSpec(name=f"public.t{i}", topic=f"t{i}", key_columns=("id",),
                    columns=columns({"id": "long", "pad": "string"}, ["id"])) for i in range(4)]
CONFIG = "store:\n  path: ./data\ntables:\n" + "".join(
    f"  - {{name: t{i}, topic: t{i}, columns: {{id: long, pad: string}}, primary_key: [id]}}\n"
    for i in range(4))


def fill(data: Path) -> None:
    """N rows in each table, written as the worker writes them (one batch, offsets with it)."""
    for spec in TABLES:
        rel = open_relation(spec, data, map_size=1 << 30)
        codec = KeyCodec(spec.key_types)
        with rel.writer.begin() as wb:
            wb.partition(0).put_rows({codec.encode((i,)): (i, f"{i:08d}" * 12)
                                      for i in range(N)})
            wb.set_next_offset(0, N)


def digest(data: Path) -> str:
    h = hashlib.sha256()
    with Store.open(data) as s:
        for spec in TABLES:
            view = s.table(spec.name)
            h.update(repr(view.next_offsets()).encode())
            for k, v in view.scan_raw():
                h.update(k + v)
    return h.hexdigest()


def in_progress(base: Path) -> bool:
    """A snapshot is being written: its directory holds a copied environment already."""
    try:
        return any(e.name.startswith(".tmp-") and any((e / "relations").glob("*@*/data.mdb"))
                   for e in base.iterdir())
    except OSError:
        return False


def test_kill_during_a_snapshot_lists_nothing_half_done(tmp_path: Path) -> None:
    data = tmp_path / "data"
    fill(data)
    (tmp_path / "cfg.yaml").write_text(CONFIG)
    before = digest(data)
    base = data / "snapshots"
    base.mkdir(mode=0o700)
    killed = 0
    for attempt in range(5):
        proc = subprocess.Popen([sys.executable, "-m", "materializer", "snapshot",
                                 str(tmp_path / "cfg.yaml"), "S"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        STARTED.append(proc)
        wait_until(lambda p=proc: in_progress(base) or p.poll() is not None, 60,
                   "the snapshot to start copying")
        proc.send_signal(signal.SIGKILL)  # nothing if it has finished (and was reaped)
        code = proc.wait(10)
        if code == -signal.SIGKILL and "S" not in snapshot_names(data):
            killed += 1
            break
        assert code == 0, f"attempt {attempt}: exit {code}"  # it finished before the kill
        r = run_cli("snapshot", str(tmp_path / "cfg.yaml"), "--drop", "S")
        assert r.returncode == 0, r.stderr
    assert killed, "the snapshot always finished before it could be killed"
    assert snapshot_names(data) == [] and list_snapshots(data) == []
    assert [e.name for e in base.iterdir() if e.name.startswith(".tmp-")]  # what it left
    r = run_cli("snapshots", str(tmp_path / "cfg.yaml"))
    assert r.returncode == 0 and "no snapshots yet" in r.stdout
    assert digest(data) == before  # the live tables are intact

    r = run_cli("snapshot", str(tmp_path / "cfg.yaml"), "S")  # the name is free
    assert r.returncode == 0, r.stderr
    assert sorted(e.name for e in base.iterdir()) == [".lock", "S"]  # leftovers removed
    with Store.open(data) as s:
        assert len(s.table("t3", as_of="S")) == N

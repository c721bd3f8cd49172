"""Reads on other threads of the process that writes (a `Store` beside an in-process worker:
tests, an app that embeds the worker) while the writer fills its map (probes h113, h115).

The readers of such a process share the writer's LMDB environment (`open_env`). The
writer's map started at 1 GiB and doubled when full, up to `store.map_size`, and py-lmdb's
`set_mapsize` invalidates every transaction and cursor of the environment in the process:
at each doubling the reads in progress on other threads raised lmdb's own Error ("Attempt
to operate on closed/deleted/dropped object", "mdb_txn_begin: Invalid argument"), a scan
held open among them. The writer now maps its ceiling at open (address space only), so it
never grows below it: what a full map makes a batch do (`RelationWriter.grow`, as
`Relation.apply` calls it) says "at the ceiling" and changes nothing."""

from __future__ import annotations

import json
import marshal
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

from materializer.ingest.relation import open_relation
from materializer.specs import DEFAULT_MAP_SIZE
from materializer.store import Store
from materializer.testing import FakeRecord
from materializer.versions.take import take_snapshot
from tests.support.changes import table

SPEC = table(columns={"id": "long", "s": "string"})
FIRST = 400  # rows written before the readers start: every read must find them
BATCH = 200
BATCHES = 30  # about 1.5 MB more: hundreds of pages, the map's size never in question
PAD = "x" * 200


def _value(i: int) -> str:
    return f"{i}:{PAD}"


def _records(start: int, n: int) -> dict[int, list[FakeRecord]]:
    """Rows start..start+n-1, even keys in partition 0 and odd ones in partition 1."""
    parts: dict[int, list[FakeRecord]] = {0: [], 1: []}
    for i in range(start, start + n):
        parts[i % 2].append(FakeRecord(str(i).encode(), json.dumps({"s": _value(i)}).encode(),
                                       i // 2))
    return parts


def test_reads_on_threads_never_fail_nor_miss_while_the_writer_fills_its_map(
        tmp_path: Path) -> None:
    rel = open_relation(SPEC, tmp_path, map_size=DEFAULT_MAP_SIZE)
    rel.apply(_records(0, FIRST))
    ceiling = rel.writer.ceiling
    mapped = rel.writer.env.info()["map_size"]
    ends = {FIRST}  # row counts a read may see: one per committed batch
    failures: list[str] = []
    wrong: list[str] = []
    reads = {"get": 0, "get_many": 0, "scan": 0, "len": 0}
    stop = threading.Event()

    with Store.open(tmp_path) as store:
        items = store.table(SPEC.name)
        assert items._g.env is rel.writer.env  # the scenario: one environment, shared

        def get() -> None:
            for i in (0, 1, FIRST // 2, FIRST - 1):
                row = items.get(i)
                if row != {"id": i, "s": _value(i)}:
                    wrong.append(f"get({i}) = {row!r}")

        def get_many() -> None:
            keys = list(range(0, FIRST, 7))
            if items.get_many(keys) != [{"id": i, "s": _value(i)} for i in keys]:
                wrong.append("get_many: not the rows written")

        def scan() -> None:
            rows = items.scan()
            ids = [r["id"] for r in rows]
            if sorted(ids) != list(range(len(ids))) or len(ids) not in ends:
                wrong.append(f"scan: {len(ids)} rows, ids not 0..n-1 of a committed batch")
            elif any(r["s"] != _value(r["id"]) for r in rows):
                wrong.append("scan: a row not as written")

        def count() -> None:
            n = len(items)
            if n not in ends:
                wrong.append(f"len = {n}: no committed batch left that many rows")

        def reader(name: str, read: Callable[[], None], started: threading.Event) -> None:
            while not stop.is_set():
                try:
                    read()
                except Exception as e:  # noqa: BLE001 - what a read raised is the finding
                    failures.append(f"{name}: {type(e).__module__}.{type(e).__name__}: {e}")
                reads[name] += 1
                started.set()

        # a read in progress across everything the writer does (as a diff iterator keeps
        # one): it must go on in its own snapshot, whole, nothing missed nor repeated
        held_txn, held_parts = items._g.begin()
        held = [iter(held_txn.cursor(db=db)) for _, db in held_parts]
        first_half = [next(it) for it in held for _ in range(FIRST // 4)]

        started = [threading.Event() for _ in reads]
        threads = [threading.Thread(target=reader, args=(name, read, ev), daemon=True)
                   for (name, read), ev in zip(
                       {"get": get, "get_many": get_many, "scan": scan, "len": count}.items(),
                       started, strict=True)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        for ev in started:
            assert ev.wait(max(0.0, deadline - time.monotonic())), "a reader never read"
        grew = []
        try:
            for b in range(BATCHES):
                start = FIRST + b * BATCH
                ends.add(start + BATCH)  # before: a read may see it once it commits
                rel.apply(_records(start, BATCH))
                # what `Relation.apply` does when a batch finds the map full
                grew.append(rel.writer.grow())
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        try:
            rest = [kv for it in held for kv in it]
        except Exception as e:  # noqa: BLE001
            failures.append(f"held scan: {type(e).__module__}.{type(e).__name__}: {e}")
            rest = []
        held_txn.abort()

        assert not failures, f"{len(failures)} reads failed, e.g. {sorted(set(failures))[:3]}"
        assert not wrong, wrong[:5]
        assert all(reads.values()), reads
        assert mapped == ceiling and not any(grew)  # at its ceiling from the start
        assert rel.writer.env.info()["map_size"] == ceiling
        pairs = first_half + rest
        assert len(pairs) == FIRST and len({k for k, _ in pairs}) == FIRST
        assert all(marshal.loads(v)[1] == _value(marshal.loads(v)[0]) for _, v in pairs)
        assert len(items) == FIRST + BATCHES * BATCH


def test_the_map_is_address_space_not_disk(tmp_path: Path) -> None:
    """Mapping the ceiling costs no disk: the file holds what was written (LMDB without
    MDB_WRITEMAP extends it page by page), however large the ceiling."""
    rel = open_relation(SPEC, tmp_path, map_size=1 << 40)
    rel.apply(_records(0, 10))
    assert rel.writer.env.info()["map_size"] == 1 << 40
    st = os.stat(rel.writer.path / "data.mdb")
    assert st.st_size < 1 << 20 and st.st_blocks * 512 < 1 << 20, st


def test_a_snapshot_maps_what_it_holds_not_the_writers_map(tmp_path: Path) -> None:
    """A snapshot's file records the map of the writer it was copied from (its whole
    `store.map_size` now); it never grows, so its readers map only what it holds."""
    rel = open_relation(SPEC, tmp_path, map_size=DEFAULT_MAP_SIZE)
    rel.apply(_records(0, 10))
    take_snapshot(tmp_path, "before")
    with Store.open(tmp_path) as store:
        view = store.table(SPEC.name, as_of="before")
        assert view.get(3) == {"id": 3, "s": _value(3)}
        mapped = view._g.env.info()["map_size"]
        assert mapped == os.path.getsize(view._g.path / "data.mdb") < 1 << 20


def test_an_address_space_too_small_names_what_to_change(tmp_path: Path) -> None:
    """A process whose address space cannot hold a writer's ceiling (`ulimit -v`, or the
    ceilings of the relations it already has open) is told which setting it is."""
    script = textwrap.dedent("""
        import resource, sys
        from materializer.errors import StoreError
        from materializer.ingest.relation import open_relation
        from tests.support.changes import table
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        soft = 8 << 30 if hard == resource.RLIM_INFINITY else min(8 << 30, hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        try:
            open_relation(table(columns={"id": "long", "s": "string"}), sys.argv[1],
                          map_size=64 << 30)
        except StoreError as e:
            print(e)
    """)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                          text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert "68,719,476,736 bytes of address space" in done.stdout, done.stdout
    assert "ulimit -v" in done.stdout and "store.map_size" in done.stdout, done.stdout

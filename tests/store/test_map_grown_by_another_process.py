"""A store shared by processes (`run --processes N`, its supervisor's change-event drainer):
when one process grows a relation's LMDB map, the others adopt the new size on their next
transaction instead of failing (LMDB's MDB_MAP_RESIZED)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from materializer.changes.outbox import OUTBOX_DB
from materializer.ingest.relation import open_relation
from materializer.testing import FakeRecord
from tests.support.changes import table

COLUMNS = {"id": "long", "s": "string"}
SPEC = table(columns=COLUMNS)
SMALL = 1 << 22  # this process's map (`store.map_size`): 4 MiB
GROW = textwrap.dedent(f"""
    import sys
    from materializer.ingest.relation import open_relation
    from materializer.testing import FakeRecord
    from tests.support.changes import table
    rel = open_relation(table(columns={COLUMNS}), sys.argv[1], map_size=1 << 26)
    rel.writer.env.set_mapsize(1 << 25)
    rel.apply({{0: [FakeRecord(str(i).encode(), b'{{"s": "%s"}}' % (b"x" * 5000), i)
                    for i in range(2000)]}})  # about 10 MiB: past the other map's end
    print(rel.writer.env.info()["map_size"])
""")


def test_a_map_grown_by_another_process_is_adopted(tmp_path: Path) -> None:
    rel = open_relation(SPEC, tmp_path, map_size=SMALL)
    assert rel.writer.env.info()["map_size"] == SMALL
    outbox = rel.writer.side_table(OUTBOX_DB)
    done = subprocess.run([sys.executable, "-c", GROW, str(tmp_path)], capture_output=True,
                          text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == 1 << 25
    assert outbox.entries() == 0  # a read first: the size is adopted there
    assert rel.writer.env.info()["map_size"] == 1 << 25
    rel.apply({0: [FakeRecord(b"2", b'{"s": "y"}', 2000)]})  # then a write
    with rel.writer.reading() as committed:
        assert committed.next_offset(0) == 2001
    assert rel.writer.next_offsets() == {0: 2001}


def test_a_write_first_adopts_the_size_too(tmp_path: Path) -> None:
    rel = open_relation(SPEC, tmp_path, map_size=SMALL)
    done = subprocess.run([sys.executable, "-c", GROW, str(tmp_path)], capture_output=True,
                          text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    rel.apply({0: [FakeRecord(b"2", b'{"s": "y"}', 2000)]})
    assert rel.writer.next_offsets() == {0: 2001}


def test_opening_a_named_db_adopts_the_size_too(tmp_path: Path) -> None:
    """A reader that opens a named database (a relation's meta or a new partition's) after
    another process grew the map got MDB_MAP_RESIZED from `open_db` (a `materializer
    snapshot` beside a growing worker exited so once): adopted there too."""
    import lmdb

    from materializer.store.environment import open_existing_db, partition_db_name

    def run(script: str) -> None:
        done = subprocess.run([sys.executable, "-c", script, str(tmp_path)],
                              capture_output=True, text=True, timeout=60,
                              cwd=Path(__file__).resolve().parents[2])
        assert done.returncode == 0, done.stderr

    run(GROW.replace("1 << 26", str(SMALL)).replace("rel.writer.env.set_mapsize(1 << 25)", "")
        .replace("range(2000)", "range(1)"))  # the files, one record in a 4 MiB map
    reader = lmdb.open(str(next(tmp_path.rglob("data.mdb")).parent), map_size=0, max_dbs=64,
                       readonly=True, lock=True)
    reader.begin().abort()  # this process maps the files as they are
    run(GROW)  # then another process grows them past that
    try:
        with pytest.raises(lmdb.MapResizedError):  # what LMDB does: the case is real
            reader.open_db(partition_db_name(0), create=False)
        db = open_existing_db(reader, partition_db_name(0))
        with reader.begin(db=db) as txn:
            assert txn.stat(db)["entries"] == 2000
    finally:
        reader.close()


def test_a_side_table_opened_after_another_process_grew_the_map(tmp_path: Path) -> None:
    """The supervisor's drainer opens a relation's outbox (`side_table`) when it first
    drains it, which may be after a worker process grew the map: opened, not
    MDB_MAP_RESIZED (probe h98)."""
    rel = open_relation(SPEC, tmp_path, map_size=SMALL)
    done = subprocess.run([sys.executable, "-c", GROW, str(tmp_path)], capture_output=True,
                          text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    outbox = rel.writer.side_table(b"another-outbox")
    assert outbox.entries() == 0

"""Versions benchmark: snapshot time against ingest time, ingestion during a snapshot, and
diff speed, all measured in the same run on the same table.

1. ingest: N rows (default 1,000,000; 4 partitions; 4 columns: id long, name string,
   score double, active boolean; JSON values) applied through the worker's own write path
   (`open_relation` + `Relation.apply`, batches of 20,000, one LMDB transaction each), no
   broker: a stricter reference than `materializer run`, which also consumes from Kafka;
2. snapshot: `take_snapshot` of that table (freeze, compacting copy, publish);
3. ingestion during a snapshot: batches of 20,000 updates applied in this process while a
   snapshot process (`materializer.versions.child`, as the worker's schedule starts it)
   copies the table; the slowest batch is compared with the median batch before it;
4. diff: 1% of the rows changed (80% updated, 10% deleted, 10% inserted) and snapshotted
   again; the diff of the two 1M-row snapshots walked in full, in rows compared per
   second, against a bare walk of both snapshots' cursors (py-lmdb iteration alone, the
   floor of any diff that reads every row).

    python bench/versions.py [--rows N] [--partitions P] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import tempfile
import time
from itertools import islice
from pathlib import Path
from typing import Any

from materializer.columns import parse_type
from materializer.ingest.relation import Relation, open_relation
from materializer.specs import BATCH_SIZE, Column, TableSpec
from materializer.testing import FakeRecord
from materializer.versions.child import command
from materializer.versions.diff import RelationDiff
from materializer.versions.paths import read_manifest
from materializer.versions.take import take_snapshot
from materializer.versions.walk import FETCH

SPEC = TableSpec(name="public.bench", topic="bench", key_columns=("id",), key_format="long",
                 columns=tuple(Column(n, parse_type(t)[0], n == "id") for n, t in (
                     ("id", "long"), ("name", "string"), ("score", "double"),
                     ("active", "boolean"))))


def record(key: int, offset: int, row: dict[str, Any] | None) -> FakeRecord:
    return FakeRecord(key.to_bytes(8, "big", signed=True),
                      None if row is None else json.dumps(row).encode(), offset)


def row(key: int, version: int, rnd: random.Random) -> dict[str, Any]:
    return {"name": f"user-{key}-{version}", "score": rnd.random() * 100,
            "active": key % 3 == 0}


class Feeder:
    """Applies records to the table partition by partition (key % partitions), in batches."""

    def __init__(self, rel: Relation, partitions: int) -> None:
        self.rel = rel
        self.partitions = partitions
        self.offsets = dict.fromkeys(range(partitions), 0)

    def apply(self, items: list[tuple[int, dict[str, Any] | None]]) -> float:
        parts: dict[int, list[FakeRecord]] = {}
        for key, value in items:
            p = key % self.partitions
            parts.setdefault(p, []).append(record(key, self.offsets[p], value))
            self.offsets[p] += 1
        t0 = time.perf_counter()
        self.rel.apply(parts)
        return time.perf_counter() - t0


def bare_walk(store: Path, a: str, b: str) -> tuple[float, float, int]:
    """Wall and CPU seconds to iterate every (key, value) of both snapshots, partition by
    partition, both cursors in turn as a diff reads them (py-lmdb iteration alone: what any
    diff that reads every row costs at least), and how many entries."""
    with RelationDiff(store, "bench", a, b) as d:
        t0, c0 = time.perf_counter(), time.process_time()
        n = 0
        for p in d.partitions:
            ia, ib = d.a.items(p, None), d.b.items(p, None)
            while True:
                x, y = list(islice(ia, FETCH)), list(islice(ib, FETCH))
                if not x and not y:
                    break
                n += len(x) + len(y)
        return time.perf_counter() - t0, time.process_time() - c0, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--keep", metavar="DIR", help="build the store in DIR and leave it there")
    args = ap.parse_args()
    rnd = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(args.keep or tmp) / "data"
        rel = open_relation(SPEC, store, map_size=1 << 34)
        feed = Feeder(rel, args.partitions)
        t0 = time.perf_counter()
        for start in range(0, args.rows, BATCH_SIZE):
            feed.apply([(k, row(k, 0, rnd)) for k in range(start, min(args.rows,
                                                                       start + BATCH_SIZE))])
        ingest_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        a = take_snapshot(store, "A")
        snap_s = time.perf_counter() - t0

        # ingestion while a snapshot process copies the table
        before = [feed.apply([(rnd.randrange(args.rows), row(0, 1, rnd))
                              for _ in range(BATCH_SIZE)]) for _ in range(5)]
        proc = subprocess.Popen(command(str(store), "during"), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        during = []
        while proc.poll() is None or not during:
            during.append(feed.apply([(rnd.randrange(args.rows), row(0, 2, rnd))
                                      for _ in range(BATCH_SIZE)]))
        proc.wait()
        assert read_manifest(store, "during").relations["public.bench"].rows == args.rows

        take_snapshot(store, "A2")  # the reference of the diff: 1% changes from here
        # 1% changed: updates, deletes, inserts
        n = args.rows // 100
        keys = rnd.sample(range(args.rows), n)
        changes: list[tuple[int, dict[str, Any] | None]] = \
            [(k, row(k, 3, rnd)) for k in keys[: n * 8 // 10]]
        changes += [(k, None) for k in keys[n * 8 // 10: n * 9 // 10]]
        changes += [(args.rows + i, row(args.rows + i, 0, rnd)) for i in range(n // 10)]
        feed.apply(changes)
        take_snapshot(store, "B")
        bare_walk(store, "A2", "B")  # both files' pages in memory first
        walk_s, walk_cpu, walked = bare_walk(store, "A2", "B")
        with RelationDiff(store, "bench", "A2", "B") as d:
            t0, c0 = time.perf_counter(), time.process_time()
            found = sum(1 for _ in d.changes())
            diff_s, diff_cpu = time.perf_counter() - t0, time.process_time() - c0
        compared = walked // 2

    print(f"rows: {args.rows:,}, partitions: {args.partitions}, snapshot size "
          f"{a.bytes / 1e6:.1f} MB\n")
    print("| measure | seconds | figure |")
    print("|---|---|---|")
    print(f"| ingest {args.rows:,} rows (apply path, no broker) | {ingest_s:.2f} | "
          f"{args.rows / ingest_s:,.0f} rows/s |")
    print(f"| snapshot of the {args.rows:,}-row table | {snap_s:.3f} | "
          f"**{snap_s / ingest_s:.1%}** of the ingest time |")
    med = statistics.median(before)
    print(f"| batch of {BATCH_SIZE:,} updates, median before the snapshot | {med:.3f} | 1.00 |")
    print(f"| slowest batch while a snapshot process copies ({len(during)} batches) | "
          f"{max(during):.3f} | **{max(during) / med:.2f}** x the median |")
    print(f"| bare walk of both snapshots ({walked:,} entries), CPU {walk_cpu:.3f} s | "
          f"{walk_s:.3f} | {compared / walk_s:,.0f} rows/s |")
    print(f"| diff of two {args.rows:,}-row snapshots, 1% changed ({found:,} changes), CPU "
          f"{diff_cpu:.3f} s | {diff_s:.3f} | **{compared / diff_s:,.0f}** rows compared/s "
          f"({compared / diff_cpu:,.0f} per CPU second; {walk_s / diff_s:.2f} of the bare "
          "walk's rate) |")


if __name__ == "__main__":
    main()

"""Apply-only benchmark and profiler: one workload's records applied in-process, no broker.

Records of a workload (bench/workloads.py) are built in memory, split by key hash into 4
partitions, then applied through `Relation.apply` in batches of `--batch` records (the
worker's default), the way the worker does; the figure is the materializer's own cost
per record (decode, shape, key, LMDB; with `--changes`, envelope encoding and staging
too, without sending). `--profile` prints the top of a cProfile of the apply loop.

    python bench/apply_only.py WORKLOAD [--records N] [--batch B] [--changes] [--profile]

WORKLOAD is value/key/columns/keys as the matrix names it, e.g. json-rich/int/10c/1k
(keys may be a number, 1k or 1M; "all" means as many keys as records).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workloads import Workload, changelog  # noqa: E402

from connectors.partitioners import partition_for  # noqa: E402
from connectors.registry import FileRegistry  # noqa: E402
from materializer.catalog.load import load_catalog_text  # noqa: E402
from materializer.ingest.relation import open_relation  # noqa: E402
from materializer.testing import FakeRecord  # noqa: E402

PARTITIONS = 4


def parse_workload(text: str, records: int) -> Workload:
    value, key, cols, keys = text.split("/")
    mult = {"k": 1000, "M": 1_000_000}
    n = records if keys == "all" else (int(keys[:-1]) * mult[keys[-1]]
                                       if keys[-1] in mult else int(keys))
    return Workload(value, key, int(cols.rstrip("c")), n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workload")
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=20_000)
    ap.add_argument("--changes", action="store_true", help="stage change events too")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    w = parse_workload(args.workload, args.records)
    tmp = Path(tempfile.mkdtemp(prefix="bench-apply-"))
    registry = FileRegistry(tmp / "registry")
    (tmp / "registry").mkdir()
    parts: dict[int, list[FakeRecord]] = {p: [] for p in range(PARTITIONS)}
    for k, v in changelog(w, args.records, registry):
        p = partition_for(k or b"", PARTITIONS)
        parts[p].append(FakeRecord(k, v, len(parts[p])))
    total = sum(len(v) for v in parts.values())
    import yaml
    table = {**w.declaration(), "topic": "bench"}
    if args.changes:
        table["changes"] = {"topic": "bench.changes",
                            "format": "debezium-avro" if w.avro else "debezium-json"}
    doc = {"kafka": {"bootstrap.servers": "127.0.0.1:1"}, "store": {"path": str(tmp / "data")},
           "tables": [table], "schema_registry": {"path": str(tmp / "registry")}}
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)  # as bench/matrix.py
    catalog = load_catalog_text(text, "bench.yaml")
    spec = catalog.relations[0]
    for rep in range(args.repeat):
        rel = open_relation(spec, tmp / f"data{rep}", registry=registry, map_size=1 << 34)
        if args.changes:
            from materializer.changes.outbox import ChangeOutbox

            rel.outbox = ChangeOutbox(spec, rel.writer, rel.applier.layout,  # type: ignore
                                      None, PARTITIONS, registry)  # type: ignore[arg-type]
        per = max(1, args.batch // PARTITIONS)
        longest = max(len(v) for v in parts.values())
        prof = cProfile.Profile() if args.profile else None
        t0 = time.perf_counter()
        c0 = time.process_time()
        if prof:
            prof.enable()
        for start in range(0, longest, per):
            chunk = {p: rs[start:start + per] for p, rs in parts.items() if rs[start:start + per]}
            rel.apply(chunk)
        if prof:
            prof.disable()
        secs = time.perf_counter() - t0
        cpu = time.process_time() - c0
        print(f"{w.name}{' +changes' if args.changes else ''}: {total:,} records, "
              f"{total / secs:,.0f} records/s, {cpu * 1e6 / total:.2f} us/record CPU", flush=True)
        if prof:
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()

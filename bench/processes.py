"""Ingest with several worker processes: `materializer run --processes N` against one process.

    python bench/processes.py [--records N] [--repeat R] [--processes 1,2] [--workload NAME]
                              [--changes]

One workload (default json-ascii/long/10c with every record a new key; see
bench/workloads.py) is produced once to a 4-partition topic of the embedded broker. Then,
`--repeat` times and interleaved: a bare confluent-kafka consume of the topic (the
reference of bench/matrix.py) and `materializer run` with `workers: N` for each N of
`--processes`, each a fresh process (tree) with a fresh store and group, until every record
is applied. Printed: steady-state records/s (10% to 90% of the records: process start and
the group join left out), time from start to the last record, the ratio to the bare
consume and the ratio to one process (target on 2 cores: 2 processes >= 1.6x one),
medians and spread over the repeats. `--changes`: the table emits change events
(debezium-json, or debezium-avro for Avro workloads), staged by every worker, sent by
worker 0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from matrix import produce, write_config  # noqa: E402
from measure import Result, run_worker, time_bare  # noqa: E402
from workloads import Workload  # noqa: E402

from materializer.devbroker import DevBroker  # noqa: E402


def _spread(values: list[float]) -> str:
    return (f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"
            if values else "n/a")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=400_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--processes", default="1,2", help="worker process counts to compare")
    ap.add_argument("--workload", default="json-ascii/long/10c/all",
                    help="VALUE/KEY/COLUMNS/KEYS, KEYS a count or `all` (one key per record)")
    ap.add_argument("--changes", action="store_true", help="the table emits change events")
    args = ap.parse_args()
    value, key, cols, keys = args.workload.split("/")
    n = args.records
    w = Workload(value, key, int(cols.rstrip("c")), n if keys == "all" else int(keys))
    counts = [int(x) for x in args.processes.split(",")]
    runs: dict[str, list[Result]] = {"bare": [], **{f"x{c}": [] for c in counts}}
    with DevBroker() as broker, tempfile.TemporaryDirectory(prefix="bench-procs-") as tmp:
        registry = Path(tmp) / "registry"
        registry.mkdir()
        topic, total = produce(broker, w, n, registry)
        for r in range(args.repeat):
            runs["bare"].append(time_bare(broker, topic, total))
            for c in counts:
                cfg, store = write_config(Path(tmp) / f"r{r}-x{c}", broker, w, topic,
                                          registry if w.avro else None, changes=args.changes,
                                          workers=c)
                result, _ = run_worker(cfg, store, total)
                runs[f"x{c}"].append(result)
            line = "  ".join(f"{name} {res[-1].rate:,.0f}/s" for name, res in runs.items())
            print(f"round {r + 1}: {line}", flush=True)
    print(f"\n{w.name}{' with change events' if args.changes else ''}, {total:,} records, "
          f"4 partitions, {args.repeat} rounds\n")
    print(f"{'run':>6} {'records/s':>22} {'start to end s':>16} {'vs bare':>18} "
          f"{'vs 1 process':>18} {'CPU us/rec':>10}")
    base = runs.get("x1", [])
    for name, res in runs.items():
        rates = [x.rate for x in res]
        vs_bare = [x.rate / b.rate for x, b in zip(res, runs["bare"], strict=True)]
        vs_one = ([x.rate / b.rate for x, b in zip(res, base, strict=True)]
                  if base and name != "bare" else [])
        print(f"{name:>6} {statistics.median(rates):>12,.0f} ({min(rates):,.0f}-"
              f"{max(rates):,.0f}) {statistics.median([x.total_s for x in res]):>10.1f} "
              f"{_spread(vs_bare):>18} {_spread(vs_one):>18} "
              f"{statistics.median([x.cpu_us for x in res]):>10.1f}")
    print(f"\n({os.cpu_count()} CPUs; CPU us/rec counts every process of a run: if two "
          "processes need no more CPU per record than one, what keeps them from 1.6-2x is "
          "the CPU the machine has free)")


if __name__ == "__main__":
    main()

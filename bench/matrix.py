"""The benchmark matrix: `materializer run` against a bare confluent-kafka consume, per workload.

    python bench/matrix.py [--quick] [--records N] [--repeat R] [--only REGEX] [--all]
                           [--no-changes] [--growth N1,N2] [--lookups] [--json FILE]
                           [--processes N]

For each workload (see bench/workloads.py: value format, key format, columns, distinct
keys) the records are produced once to a 4-partition topic of the embedded broker; then,
`--repeat` times, in the same run and on the same topic: a bare confluent-kafka consume
(a fresh process that joins a group and reads every record), `materializer run` (a
fresh process, until every record is applied) and `materializer run` with change events
(debezium-json, or debezium-avro for Avro workloads). Printed per workload: records/s
(steady state: from 10% to 90% of the records, so process start and the group join are
left out), the ratio to the bare consume of the same repeat (median, and min-max over
repeats), the worker's CPU microseconds per record over that window, the CPU ratio
(the bare consume's CPU per record over the worker's: what the rate ratio would be if
both got the same share of a core; steadier than wall time on a shared machine) and
the worker's peak RSS.

Sizes: `--records` (default 1,000,000; `--quick` 200,000); "1M keys" workloads use as
many keys as records (every record a new key: the table grows to that many rows).
`--all` runs the full cross product (5 value formats x 4 key formats x 2 column counts x
2 key counts) instead of the 11 workloads that cover every value of every dimension.

`--growth N1,N2`: one workload (json-ascii/long/10c, every record a new key) of N2
records; prints the worker's RssAnon at N1 and N2 rows, the ingest rate around N1 and
around N2, then times `materializer rebuild` of the N2-row table against the run.
`--lookups`: afterwards runs bench/lookup.py (HTTP and Store.get figures).
`--processes N`: every `materializer run` with `workers: N` (the bare consume stays one
process: the ratio is then N processes against one consumer).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import Result, run_worker, time_bare  # noqa: E402
from workloads import KEYS, VALUES, Workload, changelog  # noqa: E402

from connectors.producer import produce_records  # noqa: E402
from materializer.devbroker import DevBroker  # noqa: E402

PARTITIONS = 4


def default_matrix(big: int) -> list[Workload]:
    """Every value of every dimension at least once."""
    return [Workload("json-ascii", "long", 10, big), Workload("json-ascii", "int", 30, 1000),
            Workload("json-rich", "int", 10, big), Workload("json-rich", "string", 30, 1000),
            Workload("json-rich", "json", 10, 1000), Workload("avro", "long", 10, big),
            Workload("avro", "int", 30, 1000), Workload("debezium-json", "json", 10, big),
            Workload("debezium-json", "long", 30, 1000),
            Workload("debezium-avro", "string", 10, 1000),
            Workload("debezium-avro", "long", 30, big)]


def full_matrix(big: int) -> list[Workload]:
    return [Workload(v, k, c, n) for v in VALUES for k in KEYS for c in (10, 30)
            for n in (1000, big)]


def write_config(dirpath: Path, broker: DevBroker, w: Workload, topic: str,
                 registry: Path | None, changes: bool, workers: int = 1) -> tuple[Path, Path]:
    """The declaration file of `w` on `topic` (store and config under `dirpath`), run by
    `workers` worker processes."""
    dirpath.mkdir(parents=True, exist_ok=True)
    store = dirpath / "data"
    table = {**w.declaration(), "topic": topic}
    if changes:
        table["changes"] = {"topic": f"{topic}.changes-{time.monotonic_ns()}",
                            "format": "debezium-avro" if w.avro else "debezium-json"}
    doc: dict[str, Any] = {"kafka": broker.kafka_config(), "group": f"mat-{time.monotonic_ns()}",
                           "store": {"path": str(store)}, "workers": workers,
                           "tables": [table]}
    if registry is not None:
        doc["schema_registry"] = {"path": str(registry)}
    cfg = dirpath / "bench.yaml"
    cfg.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    return cfg, store


def produce(broker: DevBroker, w: Workload, n: int, registry: Path) -> tuple[str, int]:
    from connectors.registry import FileRegistry

    topic = broker.create_topic(partitions=PARTITIONS)
    t0 = time.perf_counter()
    ends = produce_records(broker.kafka_config(), topic,
                           changelog(w, n, FileRegistry(registry) if w.avro else None))
    total = sum(ends.values())
    print(f"  produced {total:,} records in {time.perf_counter() - t0:.1f} s", flush=True)
    return topic, total


def _fmt(results: list[Result], refs: list[Result]) -> str:
    ratios = [r.rate / b.rate for r, b in zip(results, refs, strict=True)]
    cpu_ratios = [b.cpu_us / r.cpu_us for r, b in zip(results, refs, strict=True)]
    rate = statistics.median(r.rate for r in results)
    cpu = statistics.median(r.cpu_us for r in results)
    rss = max(r.peak_rss for r in results) / 2**20
    spread = f"{min(ratios):.2f}-{max(ratios):.2f}" if len(ratios) > 1 else ""
    return (f"{rate:>10,.0f} {statistics.median(ratios):>5.2f} {spread:>9} {cpu:>6.1f} "
            f"{statistics.median(cpu_ratios):>5.2f} {rss:>6.0f}")


def run_workload(broker: DevBroker, w: Workload, n: int, repeat: int, changes: bool,
                 tmp: Path, workers: int = 1) -> dict[str, Any]:
    print(f"{w.name}", flush=True)
    registry = tmp / "registry"
    registry.mkdir(parents=True, exist_ok=True)
    topic, total = produce(broker, w, n, registry)
    reg = registry if w.avro else None
    out: dict[str, list[Result]] = {"bare": [], "run": [], "changes": []}
    for r in range(repeat):
        out["bare"].append(time_bare(broker, topic, total))
        cfg, store = write_config(tmp / f"run{r}", broker, w, topic, reg, False, workers)
        out["run"].append(run_worker(cfg, store, total)[0])
        if changes:
            cfg, store = write_config(tmp / f"chg{r}", broker, w, topic, reg, True, workers)
            out["changes"].append(run_worker(cfg, store, total)[0])
        b, m = out["bare"][-1], out["run"][-1]
        line = (f"  repeat {r + 1}: bare {b.rate:,.0f}/s  run {m.rate:,.0f}/s "
                f"({m.rate / b.rate:.2f}x, {m.cpu_us:.1f} us/rec)")
        if changes:
            c = out["changes"][-1]
            line += f"  changes {c.rate:,.0f}/s ({c.rate / b.rate:.2f}x, {c.cpu_us:.1f} us/rec)"
        print(line, flush=True)
    return {"workload": w.name, "records": total,
            **{k: [vars(x) for x in v] for k, v in out.items()},
            "row": (f"{w.name:32} {statistics.median(x.rate for x in out['bare']):>10,.0f} "
                    f"{statistics.median(x.cpu_us for x in out['bare']):>6.1f} "
                    f"| {_fmt(out['run'], out['bare'])}"
                    + (f" | {_fmt(out['changes'], out['bare'])}" if changes else ""))}


def growth(broker: DevBroker, n1: int, n2: int, tmp: Path) -> None:
    """RssAnon and ingest rate at n1 and n2 rows; rebuild of the n2-row table vs the run."""
    w = Workload("json-ascii", "long", 10, n2)
    print(f"growth: {w.name}, {n2:,} records, marks at {n1:,} and {n2:,} rows", flush=True)
    topic, total = produce(broker, w, n2, tmp / "registry")
    cfg, store = write_config(tmp / "growth", broker, w, topic, None, False)
    half = n1 // 2
    res, sampler = run_worker(cfg, store, total, marks=(half, n1, total), interval=0.1)
    rate1, _ = sampler.window(half, n1)
    rate2, _ = sampler.window(total - half, total)
    anon = res.extra["anon_at"]
    print(f"  RssAnon at {half:,} rows {anon[half] / 2**20:,.0f} MiB, at {n1:,} "
          f"{anon[n1] / 2**20:,.0f} MiB, at {total:,} {anon[total] / 2**20:,.0f} MiB "
          f"(peak RSS {res.peak_rss / 2**20:,.0f} MiB)")
    print(f"  ingest around {n1:,} rows: {rate1:,.0f}/s; around {total:,} rows: "
          f"{rate2:,.0f}/s ({rate2 / rate1:.2f}x)")
    run_rate = total / res.total_s
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "materializer", "rebuild", str(cfg), "bench"],
                   check=True, capture_output=True, timeout=3600)
    secs = time.perf_counter() - t0
    print(f"  rebuild: {secs:.1f} s, {total / secs:,.0f} records/s from process start; "
          f"the run took {res.total_s:.1f} s ({run_rate:,.0f}/s): rebuild/run "
          f"{(total / secs) / run_rate:.2f}x", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="200,000 records per workload")
    ap.add_argument("--records", type=int, help="records per workload (default 1,000,000)")
    ap.add_argument("--repeat", type=int, default=2, help="measurements per workload")
    ap.add_argument("--only", help="run the workloads whose name matches this regex")
    ap.add_argument("--all", action="store_true", help="the full cross product")
    ap.add_argument("--no-changes", action="store_true", help="skip the change-event runs")
    ap.add_argument("--growth", help="N1,N2: memory and rate as a table grows (alone)")
    ap.add_argument("--lookups", action="store_true", help="also run bench/lookup.py")
    ap.add_argument("--json", help="write every figure to this file")
    ap.add_argument("--processes", type=int, default=1,
                    help="worker processes per run (`workers:`; CPU counts all of them)")
    args = ap.parse_args()
    # SIGTERM unwinds like Ctrl-C: the broker and the workers started here are stopped
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    n = args.records or (200_000 if args.quick else 1_000_000)
    with DevBroker() as broker, tempfile.TemporaryDirectory(prefix="bench-matrix-") as tmp:
        if args.growth:
            n1, n2 = (int(float(x)) for x in args.growth.split(","))
            growth(broker, n1, n2, Path(tmp))
            return
        matrix = full_matrix(n) if args.all else default_matrix(n)
        if args.only:
            matrix = [w for w in matrix if re.search(args.only, w.name)]
        print(f"{len(matrix)} workload(s), {n:,} records each, {args.repeat} repeat(s), "
              f"{args.processes} worker process(es), broker {broker.kind}", flush=True)
        results = []
        for i, w in enumerate(matrix):
            results.append(run_workload(broker, w, n, args.repeat, not args.no_changes,
                                        Path(tmp) / f"w{i}", args.processes))
        cols = "  records/s ratio    spread us/rec cpu-r RSS MB"
        print(f"\n{'workload':32} {'bare rec/s':>10} {'us/rec':>6} |{cols}"
              + (f" |{cols}  (with change events)" if not args.no_changes else ""))
        for r in results:
            print(r["row"])
        if args.json:
            Path(args.json).write_text(json.dumps(
                {"date": time.strftime("%Y-%m-%d"), "records": n, "results": results},
                indent=1))
    if args.lookups:
        subprocess.run([sys.executable, str(Path(__file__).parent / "lookup.py")], check=True)


if __name__ == "__main__":
    main()

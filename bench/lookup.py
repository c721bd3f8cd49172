"""Lookup benchmark: HTTP point lookups and Python `Store` gets while ingestion runs.

Setup: a table `bench.kv` (long key, 4 value columns) of --rows rows over --partitions
partitions, written the way the worker writes (RelationWriter + TableApplier). Then:
  1. a writer process keeps upserting random keys at --ingest-rate records/s (batches
     of 500, one LMDB transaction each, as the worker commits);
  2. the API runs as its own process through `materializer.api.serve` (the code path
     of `materializer serve`), on a free loopback port;
  3. for each concurrency level (default 8 and 64), a load generator in this process
     (raw asyncio streams, HTTP/1.1 keep-alive, one connection per client) issues
     `GET /tables/bench.kv/rows/{k}` for random existing keys for --seconds seconds and
     checks every answer (status 200, the row of the key asked);
  4. the Python API: `Store.table().get(k)` on one thread for --seconds seconds, with
     the writer still running.

    python bench/lookup.py [--rows N] [--seconds S] [--concurrency 8,64]
                           [--ingest-rate R] [--partitions P]

Targets (2-core machine): >= 5,000 HTTP lookups/s with p99 < 20 ms while ingesting;
>= 200,000 Python gets/s on one thread.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from typing import Any

from materializer.columns import parse_type
from materializer.devbroker import free_port
from materializer.specs import Column, TableSpec
from materializer.testing import FakeRecord

TABLE = "bench.kv"
BATCH = 500


def bench_spec() -> TableSpec:
    cols = {"id": "long", "name": "string", "score": "double", "active": "boolean",
            "version": "long"}
    return TableSpec(name=TABLE, topic="kv",
                     columns=tuple(Column(n, parse_type(t)[0], n == "id") for n, t in cols.items()),
                     key_columns=("id",), key_format="long", value_format="json")


def writer_main(data: str, rows: int, partitions: int, rate: float, ready: Event, stop: Event,
                written: Synchronized[int]) -> None:
    """Seed `rows` rows, signal `ready`, then upsert random keys at `rate`/s until `stop`."""
    from materializer.ingest.relation import open_relation  # noqa: PLC0415 - child process

    spec = bench_spec()
    rel = open_relation(spec, data, map_size=1 << 32)
    offsets = [0] * partitions
    version = 0

    def apply(keys: list[int]) -> None:
        nonlocal version
        version += 1
        by_p: dict[int, list[FakeRecord]] = {}
        for k in keys:
            p = k % partitions
            recs = by_p.setdefault(p, [])
            recs.append(FakeRecord(k.to_bytes(8, "big", signed=True), json.dumps(
                {"name": f"user-{k}", "score": k / 8, "active": k % 2 == 0,
                 "version": version}).encode(), offsets[p] + len(recs)))
        for p, out in rel.apply(by_p).items():
            offsets[p] = out.next_offset

    for start in range(0, rows, 5000):
        apply(list(range(start, min(rows, start + 5000))))
    ready.set()
    t0 = time.perf_counter()
    n = 0
    rnd = random.Random(1)
    while not stop.is_set():
        apply([rnd.randrange(rows) for _ in range(BATCH)])
        n += BATCH
        written.value = n
        ahead = n / rate - (time.perf_counter() - t0)
        if ahead > 0:
            time.sleep(ahead)


SERVE = """
import sys
from materializer.api.serve import serve
from materializer.specs import ApiSpec, Catalog
serve(Catalog(source="bench", store_path=sys.argv[1], api=ApiSpec(listen=sys.argv[2])), None)
"""


def start_api(data: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVE, data, f"127.0.0.1:{port}"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            asyncio.run(_one_get(port, "/healthz"))
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the API did not start")


async def _one_get(port: int, path: str) -> bytes:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(f"GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode())
    data = await r.read()
    w.close()
    return data


@dataclass
class LoadResult:
    clients: int
    requests: int
    seconds: float
    wrong: int
    errors: int
    latencies_ns: list[int]

    def pct(self, q: float) -> float:
        lat = sorted(self.latencies_ns)
        return lat[min(len(lat) - 1, int(q * len(lat)))] / 1e6 if lat else float("nan")


async def _client(port: int, rows: int, until: float, seed: int, lat: list[int],
                  counts: list[int]) -> None:
    rnd = random.Random(seed)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    perf = time.perf_counter_ns
    try:
        while time.monotonic() < until:
            k = rnd.randrange(rows)
            t0 = perf()
            writer.write(b"GET /tables/bench.kv/rows/%d HTTP/1.1\r\nHost: b\r\n\r\n" % k)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            lat.append(perf() - t0)
            if not head.startswith(b"HTTP/1.1 200"):
                counts[1] += 1
            elif not body.startswith(b'{"id":%d,"name":"user-%d"' % (k, k)):
                counts[0] += 1
    except (OSError, asyncio.IncompleteReadError):
        counts[1] += 1
    finally:
        writer.close()


async def _load(port: int, rows: int, clients: int, seconds: float) -> LoadResult:
    lat: list[int] = []
    counts = [0, 0]  # wrong, errors
    t0 = time.perf_counter()
    until = time.monotonic() + seconds
    await asyncio.gather(*(_client(port, rows, until, i, lat, counts) for i in range(clients)))
    return LoadResult(clients, len(lat), time.perf_counter() - t0, counts[0], counts[1], lat)


def python_gets(data: str, rows: int, seconds: float) -> tuple[int, float]:
    from materializer.store import Store  # noqa: PLC0415

    view = Store.open(data).table(TABLE)
    rnd = random.Random(7)
    keys = [rnd.randrange(rows) for _ in range(100_000)]
    get = view.get
    n = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while time.perf_counter() < end:
        for k in keys[:10_000]:
            get(k)
        n += 10_000
    return n, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", default="8,64")
    ap.add_argument("--ingest-rate", type=float, default=10_000.0,
                    help="records/s the writer upserts during the measurements (0: none)")
    args = ap.parse_args(argv)
    levels = [int(x) for x in args.concurrency.split(",")]

    ctx = mp.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    written: Any = ctx.Value("q", 0)
    results: list[LoadResult] = []
    with tempfile.TemporaryDirectory(prefix="bench-lookup-") as data:
        wproc = ctx.Process(target=writer_main, daemon=True,
                            args=(data, args.rows, args.partitions,
                                  max(args.ingest_rate, 1e-9), ready, stop, written))
        wproc.start()
        if not ready.wait(300):
            raise RuntimeError("the writer did not seed the table")
        if args.ingest_rate <= 0:
            stop.set()
        api, port = start_api(data)
        try:
            t_ingest = time.perf_counter()
            w0 = written.value
            asyncio.run(_load(port, args.rows, 4, 1.0))  # warm-up
            for c in levels:
                results.append(asyncio.run(_load(port, args.rows, c, args.seconds)))
            n_py, s_py = python_gets(data, args.rows, args.seconds)
            ingested = (written.value - w0) / (time.perf_counter() - t_ingest)
        finally:
            stop.set()
            api.terminate()
            api.wait(10)
            wproc.join(10)

    print(f"\ntable {TABLE}: {args.rows:,} rows, {args.partitions} partitions; "
          f"writer upserting {ingested:,.0f} records/s during the runs "
          f"(asked {args.ingest_rate:,.0f}); {os.cpu_count()} CPUs\n")
    print(f"{'HTTP clients':>12} {'lookups/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'requests':>9} {'wrong':>6} {'errors':>7}")
    for r in results:
        print(f"{r.clients:>12} {r.requests / r.seconds:>11,.0f} {r.pct(0.5):>8.2f} "
              f"{r.pct(0.99):>8.2f} {max(r.latencies_ns, default=0) / 1e6:>8.2f} "
              f"{r.requests:>9,} {r.wrong:>6} {r.errors:>7}")
    print(f"\nPython Store.table().get on one thread: {n_py / s_py:,.0f} gets/s")
    bad = sum(r.wrong + r.errors for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

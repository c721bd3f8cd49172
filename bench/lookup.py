"""Lookup benchmark: Python `Store.get` and HTTP point lookups, against references run in
the same run on the same machine.

Setup: a table `bench.kv` (long key, 4 value columns) of --rows rows over --partitions
partitions, written the way the worker writes (RelationWriter + TableApplier); a writer
process may keep upserting random keys at --ingest-rate records/s meanwhile (batches of
500, one LMDB transaction each, as the worker commits; default 0: none).

1. `Store.table().get(k)` on one thread, random existing keys: gets/s (wall clock) and
   gets per CPU-second of that thread (what a busy shared machine disturbs least).
2. HTTP, under `wrk` (a C load generator: a Python client saturates before the server
   does), `-t1 -c32`, `GET /tables/bench.kv/rows/{k}` for random existing keys:
   - `hello`: the reference, a hello-world ASGI app on uvicorn with httptools + uvloop;
   - `api x1`: `materializer.api.serve` (the code path of `materializer serve`);
   - `api x2`: the same with `api.processes: 2` (two processes on one port);
   run one after the other, --repeat times, interleaved. Printed: requests/s, p99,
   server CPU microseconds per request (all its processes), non-2xx answers, and the
   ratios the targets are about: api x1 / hello (target >= 0.5) and api x2 / api x1
   (target >= 1.6 on 2 cores), median and spread over the repeats.
   Without `wrk` on the PATH (`apt-get install wrk`) this part says so and falls back
   to a Python client (asyncio streams, keep-alive), whose figures are the client's
   limit, not the server's.
3. Every answer's body is checked once at the end (status 200, the row of the key asked)
   with the Python client at 8 connections: a fast wrong answer is no result.

    python bench/lookup.py [--rows N] [--seconds S] [--repeat R] [--connections C]
                           [--ingest-rate R] [--partitions P] [--no-http]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path
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
    from materializer.ingest.relation import open_relation

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
    if rate <= 0:
        return
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


# --------------------------------------------------------------------------- servers

HELLO = """
import sys, uvicorn
BODY = b'{"message":"Hello, world!"}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            access_log=False, server_header=False, lifespan="off", backlog=2048,
            http="httptools", loop="uvloop")
"""

SERVE = """
import sys
from materializer.api.serve import serve
from materializer.specs import ApiSpec, Catalog
if __name__ == "__main__":
    serve(Catalog(source="bench", store_path=sys.argv[1],
                  api=ApiSpec(listen=sys.argv[2], processes=int(sys.argv[3]))), None)
"""


def _listeners(port: int) -> int:
    """How many sockets listen on `port` (Linux /proc; -1 where that cannot be read)."""
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return -1
    return sum(1 for line in lines
               if (f := line.split())[1].endswith(f":{port:04X}") and f[3] == "0A")


@dataclass
class Server:
    """A server in its own process group (so every process it starts stops with it)."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    processes: int = 1

    @classmethod
    def start(cls, name: str, args: list[str], port: int, processes: int = 1) -> Server:
        proc = subprocess.Popen([sys.executable, *args], start_new_session=True)
        server = cls(name, port, proc, processes)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}")
            n = _listeners(port)  # -1: cannot tell, trust the first answer
            if (n >= processes or n < 0) and _answers(port):
                return server
            time.sleep(0.1)
        server.stop()
        raise RuntimeError(f"{name} did not start")

    def cpu_seconds(self) -> float:
        """User + system CPU of every process of the group so far (Linux; else 0)."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                f = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(f[2]) == self.proc.pid:  # process group
                total += int(f[11]) + int(f[12])
        return total / tick

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _answers(port: int) -> bool:
    try:
        return asyncio.run(_one_get(port, "/healthz")).startswith(b"HTTP/1.1")
    except OSError:
        return False


async def _one_get(port: int, path: str) -> bytes:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(f"GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode())
    data = await r.read()
    w.close()
    return data


# --------------------------------------------------------------------------- load

@dataclass
class Run:
    """One measured load run against one server."""

    server: str
    rps: float
    p99_ms: float
    cpu_us: float  # server CPU per request, all its processes
    requests: int
    bad: int  # non-2xx answers and socket errors


WRK_LUA = """
math.randomseed(%d)
request = function()
  return wrk.format("GET", "/tables/bench.kv/rows/" .. math.random(0, %d))
end
"""


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]


def wrk_run(server: Server, script: str, connections: int, seconds: float) -> Run:
    url = f"http://127.0.0.1:{server.port}/"
    base = ["wrk", "-t1", f"-c{connections}", "--latency", "-s", script]
    subprocess.run([*base, "-d1s", url], capture_output=True, check=True)  # warm-up
    c0 = server.cpu_seconds()
    out = subprocess.run([*base, f"-d{seconds:.0f}s", url], capture_output=True, text=True,
                         check=True).stdout
    cpu = server.cpu_seconds() - c0
    n = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+(\S+)", out)
    bad = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    bad += sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return Run(server.name, rps, _ms(p99.group(1)) if p99 else float("nan"),
               1e6 * cpu / max(n, 1), n, bad)


@dataclass
class ClientResult:
    requests: int = 0
    wrong: int = 0
    errors: int = 0
    latencies_ns: list[int] = field(default_factory=list)


async def _client(port: int, rows: int, until: float, seed: int, out: ClientResult,
                  check: bool) -> None:
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
            out.latencies_ns.append(perf() - t0)
            out.requests += 1
            if not head.startswith(b"HTTP/1.1 200"):
                out.errors += 1
            elif check and not body.startswith(b'{"id":%d,"name":"user-%d"' % (k, k)):
                out.wrong += 1
    except (OSError, asyncio.IncompleteReadError):
        out.errors += 1
    finally:
        writer.close()


def python_load(port: int, rows: int, clients: int, seconds: float, check: bool = True
                ) -> tuple[ClientResult, float]:
    async def run() -> ClientResult:
        out = ClientResult()
        until = time.monotonic() + seconds
        await asyncio.gather(*(_client(port, rows, until, i, out, check)
                               for i in range(clients)))
        return out
    t0 = time.perf_counter()
    res = asyncio.run(run())
    return res, time.perf_counter() - t0


def python_run(server: Server, rows: int, connections: int, seconds: float) -> Run:
    c0 = server.cpu_seconds()
    res, took = python_load(server.port, rows, connections, seconds, check=False)
    cpu = server.cpu_seconds() - c0
    lat = sorted(res.latencies_ns)
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] / 1e6 if lat else float("nan")
    return Run(server.name, res.requests / took, p99, 1e6 * cpu / max(res.requests, 1),
               res.requests, res.errors)


# --------------------------------------------------------------------------- Store.get

def python_gets(data: str, rows: int, seconds: float) -> tuple[float, float]:
    """(gets/s wall clock, gets per CPU-second of the thread) on one thread."""
    from materializer.store import Store

    view = Store.open(data).table(TABLE)
    rnd = random.Random(7)
    keys = [rnd.randrange(rows) for _ in range(10_000)]
    get = view.get
    for k in keys:  # warm-up: pages in, generation opened
        get(k)
    n = 0
    t0, c0 = time.perf_counter(), time.thread_time()
    while time.perf_counter() - t0 < seconds:
        for k in keys:
            get(k)
        n += len(keys)
    return n / (time.perf_counter() - t0), n / (time.thread_time() - c0)


# --------------------------------------------------------------------------- report

def _median_spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    med = statistics.median(values)
    return f"{med:.2f}x (spread {min(values):.2f}-{max(values):.2f})"


def report(runs: list[list[Run]], using_wrk: bool, connections: int) -> None:
    tool = "wrk -t1" if using_wrk else "Python client (NOT wrk: the client's limit)"
    print(f"\nHTTP point lookups, {tool}, {connections} connections, random existing keys\n")
    print(f"{'round':>5} {'server':>8} {'req/s':>9} {'p99 ms':>8} {'cpu us/req':>11} "
          f"{'requests':>9} {'bad':>5}")
    for i, rnd in enumerate(runs, 1):
        for r in rnd:
            print(f"{i:>5} {r.server:>8} {r.rps:>9,.0f} {r.p99_ms:>8.2f} {r.cpu_us:>11.1f} "
                  f"{r.requests:>9,} {r.bad:>5}")
    by = [{r.server: r for r in rnd} for rnd in runs]
    one = [b["api x1"].rps / b["hello"].rps for b in by]
    two = [b["api x2"].rps / b["api x1"].rps for b in by]
    cpu = [b["hello"].cpu_us / b["api x1"].cpu_us for b in by]
    print(f"\napi x1 / hello, requests/s:      {_median_spread(one)}   target >= 0.5")
    print(f"api x2 / api x1, requests/s:     {_median_spread(two)}   target >= 1.6 "
          f"({os.cpu_count()} CPUs)")
    print(f"hello / api x1, CPU per request: {_median_spread(cpu)}   "
          "(the same ratio by CPU time, less disturbed by other load)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=5.0, help="per measured run")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved rounds of HTTP runs")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--ingest-rate", type=float, default=0.0,
                    help="records/s the writer upserts during the measurements (0: none)")
    ap.add_argument("--no-http", action="store_true", help="Store.get only")
    args = ap.parse_args(argv)

    ctx = mp.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    written: Any = ctx.Value("q", 0)
    wrk = shutil.which("wrk")
    bad = 0
    with tempfile.TemporaryDirectory(prefix="bench-lookup-") as data:
        wproc = ctx.Process(target=writer_main, daemon=True,
                            args=(data, args.rows, args.partitions, args.ingest_rate, ready,
                                  stop, written))
        wproc.start()
        if not ready.wait(600):
            raise RuntimeError("the writer did not seed the table")
        t_ingest, w0 = time.perf_counter(), written.value
        wall, per_cpu = python_gets(data, args.rows, args.seconds)
        print(f"\ntable {TABLE}: {args.rows:,} rows, {args.partitions} partitions; "
              f"{os.cpu_count()} CPUs")
        print(f"Python Store.table().get on one thread: {wall:,.0f} gets/s "
              f"({per_cpu:,.0f} per CPU-second)")
        servers: list[Server] = []
        runs: list[list[Run]] = []
        try:
            if not args.no_http:
                if wrk is None:
                    print("\nwrk is not installed (apt-get install wrk): HTTP figures below "
                          "come from a Python client, which saturates before the server does; "
                          "they are not the server's limit and not comparable with wrk's")
                lua = Path(data) / "keys.lua"
                lua.write_text(WRK_LUA % (42, args.rows - 1))
                ports = [free_port() for _ in range(3)]
                servers = [
                    Server.start("hello", ["-c", HELLO, str(ports[0])], ports[0]),
                    Server.start("api x1", ["-c", SERVE, data, f"127.0.0.1:{ports[1]}", "1"],
                                 ports[1]),
                    Server.start("api x2", ["-c", SERVE, data, f"127.0.0.1:{ports[2]}", "2"],
                                 ports[2], processes=2),
                ]
                for _ in range(args.repeat):
                    runs.append([wrk_run(s, str(lua), args.connections, args.seconds) if wrk
                                 else python_run(s, args.rows, args.connections, args.seconds)
                                 for s in servers])
                check, took = python_load(ports[2], args.rows, 8, min(args.seconds, 3.0))
                bad = check.wrong + check.errors + sum(r.bad for rnd in runs for r in rnd
                                                       if r.server != "hello")
                report(runs, wrk is not None, args.connections)
                print(f"answers checked (Python client, 8 connections, api x2): "
                      f"{check.requests:,} requests, {check.wrong} wrong, {check.errors} errors")
        finally:
            for s in servers:
                s.stop()
            ingested = (written.value - w0) / (time.perf_counter() - t_ingest)
            stop.set()
            wproc.join(10)
    if args.ingest_rate > 0:
        print(f"writer upserting {ingested:,.0f} records/s during the runs "
              f"(asked {args.ingest_rate:,.0f})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

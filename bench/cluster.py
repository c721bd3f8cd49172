"""Cluster benchmark: local vs forwarded point lookups, the client's one hop, failover time.

Setup: the embedded broker (or KAFKA_BOOTSTRAP_SERVERS), a `shop.users` table (long keys,
murmur2) of --rows rows over 6 partitions, --workers workers (`materializer run`, each with
its API process) in one group with `standby_replicas: 1`, all caught up.

1. HTTP point lookups against worker a, under `wrk` (a C load generator; without it a
   Python asyncio client, whose figures are then the client's limit), --connections
   connections, --seconds each, --repeat rounds interleaved:
   - `local`: keys of partitions a owns (answered from its store: the reference);
   - `forwarded`: keys of partitions other workers own (a forwards each, one hop).
   Printed: requests/s, p50, p99, and forwarded/local ratios (median over the rounds).
2. One hop from Python: 4 threads for --seconds each, keys other workers own, through
   (a) plain HTTP to worker a (forwarded), (b) `materializer.Client` (sent to the owner).
3. Failover: 8 `materializer.Client` threads look up keys; `kill -9` of the last worker;
   printed: when its partitions were owned (and answered) by the others again, the
   longest wait of a client, and how many answers were wrong (each is checked against
   the table).

    python bench/cluster.py [--rows N] [--workers W] [--seconds S] [--repeat R]
                            [--connections C]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from connectors.producer import produce_records
from materializer import Client
from materializer.cluster.partitioning import murmur2_partition
from materializer.devbroker import DevBroker, free_port

TABLE = """\
standby_replicas: 1
cluster: {{worker_id: "${{WORKER_ID:-}}", heartbeat_ms: 500, member_timeout_ms: 5000}}
tables:
  - name: shop.users
    topic: {topic}
    columns: {{id: long, name: string, score: double, city: string}}
    primary_key: [id]
    key_format: long
"""
WRK_LUA = """
math.randomseed(%d)
keys = {%s}
request = function()
  return wrk.format("GET", "/tables/shop.users/rows/" .. keys[math.random(#keys)])
end
"""


def start_worker(cfg: Path, name: str, base: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = open(base / f"{name}.log", "wb")  # noqa: SIM115 - kept open by the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "materializer", "run", str(cfg), "--store", str(base / name),
         "--listen", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=log,
        env={**os.environ, "WORKER_ID": name})
    return proc, f"http://127.0.0.1:{port}"


def wait(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def wrk_run(url: str, lua: str, connections: int, seconds: float) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
                          "--latency", "-s", lua, url], capture_output=True, text=True,
                         check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    pct = dict(re.findall(r"\s+(\d+)%\s+([\d.]+\w+)", out))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": _ms(pct.get("50", "nan")), "p99": _ms(pct.get("99", "nan")),
            "bad": float(bad.group(1)) if bad else 0.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)] if m else \
        float("nan")


def py_run(url: str, keys: list[int], connections: int, seconds: float) -> dict[str, float]:
    """The fallback without wrk: threads with keep-alive clients (the client's limit)."""
    lat: list[float] = []
    bad = [0]
    until = time.monotonic() + seconds

    def go(seed: int) -> None:
        rnd = random.Random(seed)
        with httpx.Client(base_url=url, timeout=10) as c:
            while time.monotonic() < until:
                t0 = time.perf_counter()
                r = c.get(f"/tables/shop.users/rows/{rnd.choice(keys)}")
                lat.append(time.perf_counter() - t0)
                bad[0] += r.status_code != 200
    threads = [threading.Thread(target=go, args=(i,)) for i in range(connections)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat.sort()
    return {"rps": len(lat) / (time.perf_counter() - t0), "p50": lat[len(lat) // 2] * 1e3,
            "p99": lat[int(len(lat) * 0.99)] * 1e3, "bad": bad[0]}


def owners(url: str) -> dict[int, str]:
    rel = httpx.get(f"{url}/cluster", timeout=5).json()["relations"].get("shop.users", {})
    return {int(p): o for p, o in rel.get("owners", {}).items() if o}


def one_hop(urls: list[str], keys: list[int], seconds: float) -> tuple[float, float]:
    """Lookups/s of 4 threads: plain HTTP to worker a (forwarded) vs materializer.Client."""
    def rate(get: Any) -> float:
        n = [0]
        until = time.monotonic() + seconds

        def go(seed: int) -> None:
            rnd = random.Random(seed)
            lookup = get()
            while time.monotonic() < until:
                assert lookup(rnd.choice(keys)) is not None
                n[0] += 1
        threads = [threading.Thread(target=go, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return n[0] / seconds

    def plain() -> Any:
        c = httpx.Client(base_url=urls[0], timeout=10)
        return lambda k: c.get(f"/tables/shop.users/rows/{k}").json()

    def client() -> Any:
        return Client(urls[0]).table("shop.users").get
    return rate(plain), rate(client)


def failover(procs: list[subprocess.Popen[bytes]], urls: list[str], names: list[str],
             table: dict[int, str]) -> dict[str, Any]:
    victim = names[-1]
    lost = {p for p, o in owners(urls[0]).items() if o == victim}
    keys = list(table)
    stop = threading.Event()
    wrong: list[str] = []
    longest = [0.0]
    killed = [0.0]
    answered = [0]

    def go(i: int) -> None:
        rnd = random.Random(i)
        with Client(urls[i % (len(urls) - 1)], retry_for=120) as cl:
            users = cl.table("shop.users")
            last = time.monotonic()
            while not stop.is_set():
                k = rnd.choice(keys)
                row = users.get(k)
                now = time.monotonic()
                longest[0] = max(longest[0], now - last)
                last = now
                answered[0] += 1
                if row is None or row["name"] != table[k]:
                    part = murmur2_partition(k.to_bytes(8, "big", signed=True), 6)
                    wrong.append(f"key {k} (partition {part}) {now - killed[0]:.2f} s after "
                                 f"the kill: {row}")
    threads = [threading.Thread(target=go, args=(i,), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    time.sleep(2)  # not a synchronisation: the clients in their stride before the kill
    procs[-1].kill()
    killed[0] = time.monotonic()
    wait(lambda: victim not in set(owners(urls[0]).values()) and len(owners(urls[0])) == 6,
         120, "the victim's partitions to move")
    moved = time.monotonic() - killed[0]
    time.sleep(1)  # not a synchronisation: a little more load after the move
    stop.set()
    for t in threads:
        t.join(130)
    for w in wrong[:5]:
        print("WRONG", w)
    return {"partitions": sorted(lost), "moved_s": moved, "longest_wait_s": longest[0],
            "wrong": len(wrong), "lookups": answered[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--connections", type=int, default=16)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with DevBroker() as broker:
            topic = broker.create_topic(f"users-{os.getpid()}", partitions=6)
            table = {i: f"user-{i}" for i in range(args.rows)}
            produce_records(broker.kafka_config(), topic, [
                (i.to_bytes(8, "big", signed=True),
                 json.dumps({"name": n, "score": i / 3, "city": "x" * 20}).encode())
                for i, n in table.items()])
            cfg = base / "cluster.yaml"
            cfg.write_text("kafka:\n" + "".join(f"  {k}: '{v}'\n" for k, v in
                                                broker.kafka_config().items())
                           + f"group: bench-{os.getpid()}\n" + TABLE.format(topic=topic))
            names = [chr(ord("a") + i) for i in range(args.workers)]
            started = [start_worker(cfg, n, base) for n in names]
            procs = [p for p, _ in started]
            urls = [u for _, u in started]
            wait(lambda: all(set(owners(u).values()) == set(names) and len(owners(u)) == 6
                             for u in urls), 180, "every worker to own partitions")
            keys = list(table)
            wait(lambda: all(r is not None for r in httpx.post(
                f"{urls[0]}/tables/shop.users/lookup", json={"keys": keys[:1000]},
                timeout=30).json().get("rows", [None])), 120, "the table")
            own = owners(urls[0])
            part = {k: murmur2_partition(k.to_bytes(8, "big", signed=True), 6) for k in keys}
            local = [k for k in keys if own[part[k]] == "a"]
            remote = [k for k in keys if own[part[k]] != "a"]
            have_wrk = shutil.which("wrk") is not None
            runs: dict[str, list[dict[str, float]]] = {"local": [], "forwarded": []}
            for r in range(args.repeat):
                for name, ks in (("local", local), ("forwarded", remote)):
                    if have_wrk:
                        lua = base / f"{name}.lua"
                        sample = random.Random(r).sample(ks, min(len(ks), 5000))
                        lua.write_text(WRK_LUA % (r, ",".join(map(str, sample))))
                        runs[name].append(wrk_run(urls[0], str(lua), args.connections,
                                                  args.seconds))
                    else:
                        runs[name].append(py_run(urls[0], ks, args.connections, args.seconds))
            print(f"\nHTTP point lookups against worker a ({'wrk' if have_wrk else 'Python'} "
                  f"-c{args.connections}, {args.seconds:.0f} s x {args.repeat}, {args.rows} "
                  f"rows, {args.workers} workers)")
            print(f"{'':12} {'lookups/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non-200':>8}")
            for name, rs in runs.items():
                med = {k: statistics.median(x[k] for x in rs) for k in rs[0]}
                print(f"{name:12} {med['rps']:10.0f} {med['p50']:8.2f} {med['p99']:8.2f} "
                      f"{sum(x['bad'] for x in rs):8.0f}")
            ratios = [f["rps"] / loc["rps"] for loc, f in zip(runs["local"], runs["forwarded"],
                                                                strict=True)]
            p99s = [f["p99"] / loc["p99"] for loc, f in zip(runs["local"], runs["forwarded"],
                                                             strict=True)]
            print(f"forwarded / local: throughput {statistics.median(ratios):.2f}x "
                  f"({min(ratios):.2f}-{max(ratios):.2f}), p99 {statistics.median(p99s):.2f}x")
            plain, client = one_hop(urls, remote, args.seconds)
            print(f"\nPython, 4 threads, keys other workers own: plain HTTP to a (forwarded) "
                  f"{plain:.0f}/s, materializer.Client (one hop to the owner) {client:.0f}/s "
                  f"({client / plain:.2f}x)")
            result = failover(procs, urls, names, table)
            print(f"\nfailover (kill -9 of worker {names[-1]}, 8 clients, "
                  f"{result['lookups']} lookups): its partitions {result['partitions']} "
                  f"answered by the others after {result['moved_s']:.1f} s, longest wait of "
                  f"a client {result['longest_wait_s']:.1f} s, wrong answers "
                  f"{result['wrong']}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        if os.environ.get("KEEP_BENCH"):
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

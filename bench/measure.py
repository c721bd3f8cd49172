"""Measuring one benchmark run: a bare consume, and a `materializer run` process.

Both report the steady-state rate: records between 10% and 90% of the topic divided
by the time between those two points (process start, imports and the group join left
out), the process's CPU time over the same window per record, its peak RSS (VmHWM)
and its largest anonymous RSS (RssAnon) seen.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from materializer.devbroker import DevBroker
from materializer.errors import NotFound
from materializer.store import Store

_TICKS = os.sysconf("SC_CLK_TCK")
LOW, HIGH = 0.10, 0.90

BARE_SCRIPT = r"""
import json, os, resource, sys, time
from confluent_kafka import Consumer
topic, group, want = sys.argv[1], sys.argv[2], int(sys.argv[3])
low, high = float(sys.argv[4]), float(sys.argv[5])
conf = dict(a.split("=", 1) for a in sys.argv[6:])
c = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest",
              "enable.auto.commit": False, "partition.assignment.strategy": "cooperative-sticky",
              "fetch.wait.max.ms": 100, "queued.min.messages": 200000})
c.subscribe([topic])
lo, hi = int(want * low), int(want * high)
marks = {}
n = 0
while n < want:
    for m in c.consume(10000, 0.25):
        if m.error() is None:
            n += 1
    now = time.monotonic()
    for name, at in (("lo", lo), ("hi", hi)):
        if name not in marks and n >= at:
            t = os.times()
            marks[name] = (now, n, t.user + t.system)
c.close()
t = os.times()
print(json.dumps({"marks": marks, "cpu": t.user + t.system,
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


@dataclass
class Result:
    """One measured run."""

    rate: float  # records/s, steady state
    cpu_us: float  # CPU microseconds per record over the steady-state window
    peak_rss: int  # bytes (VmHWM)
    anon_rss: int = 0  # bytes, largest RssAnon sampled
    total_s: float = 0.0  # process start to the last record
    extra: dict[str, Any] = field(default_factory=dict)


def time_bare(broker: DevBroker, topic: str, n: int) -> Result:
    """A fresh process joins a group and consumes all `n` records of `topic`."""
    args = [f"{k}={v}" for k, v in broker.kafka_config().items()]
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", BARE_SCRIPT, topic,
                          f"bare-{os.getpid()}-{time.monotonic_ns()}", str(n), str(LOW),
                          str(HIGH), *args],
                         check=True, timeout=900, capture_output=True, text=True)
    total = time.perf_counter() - t0
    got = json.loads(out.stdout.strip().splitlines()[-1])
    (t_lo, n_lo, c_lo), (t_hi, n_hi, c_hi) = got["marks"]["lo"], got["marks"]["hi"]
    count = max(1, n_hi - n_lo)
    return Result(count / max(1e-9, t_hi - t_lo), (c_hi - c_lo) * 1e6 / count,
                  got["maxrss_kb"] * 1024, 0, total)


def proc_figures(pid: int) -> tuple[float, int, int]:
    """(CPU seconds, VmHWM bytes, RssAnon bytes) of a process and its children (the worker
    processes of `run --processes N`), summed; processes that have exited count no more."""
    total = [0.0, 0, 0]
    for p in [pid, *_children(pid)]:
        try:
            figures = _one_process(p)
        except OSError:
            continue
        total = [total[0] + figures[0], total[1] + figures[1], total[2] + figures[2]]
    return total[0], int(total[1]), int(total[2])


_CHILDREN: dict[int, tuple[float, list[int]]] = {}


def _children(pid: int) -> list[int]:
    """The children of `pid`, looked up at most once a second (a scan of /proc per
    sample would load the machine the measured run shares)."""
    seen = _CHILDREN.get(pid)
    now = time.monotonic()
    if seen is not None and now - seen[0] < 1.0:
        return seen[1]
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, ValueError, IndexError):
                continue
    _CHILDREN[pid] = (now, out)
    return out


def _one_process(pid: int) -> tuple[float, int, int]:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / _TICKS
    hwm = anon = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
            elif line.startswith("RssAnon:"):
                anon = int(line.split()[1]) * 1024
    return cpu, hwm, anon


class Sampler:
    """Polls a worker's applied position (sum of next offsets) and its /proc figures."""

    def __init__(self, store: Path, name: str, pid: int) -> None:
        self.store, self.name, self.pid = store, name, pid
        self.samples: list[tuple[float, int, float, int]] = []  # (t, applied, cpu, anon)
        self._view: Any = None

    def applied(self) -> int:
        if self._view is None:
            try:
                self._view = Store.open(self.store).relation(self.name)
            except NotFound:
                return 0
        return sum(self._view.next_offsets().values())

    def sample(self) -> tuple[int, int]:
        n = self.applied()
        cpu, _, anon = proc_figures(self.pid)
        self.samples.append((time.monotonic(), n, cpu, anon))
        return n, anon

    def at(self, target: int) -> tuple[float, float]:
        """(time, cpu) interpolated where the applied count crossed `target`."""
        prev = self.samples[0]
        for s in self.samples:
            if s[1] >= target:
                if s[1] == prev[1]:
                    return s[0], s[2]
                f = (target - prev[1]) / (s[1] - prev[1])
                return prev[0] + f * (s[0] - prev[0]), prev[2] + f * (s[2] - prev[2])
            prev = s
        return self.samples[-1][0], self.samples[-1][2]

    def window(self, lo: int, hi: int) -> tuple[float, float]:
        """(records/s, CPU µs per record) between applied counts `lo` and `hi`."""
        (t_lo, c_lo), (t_hi, c_hi) = self.at(lo), self.at(hi)
        count = max(1, hi - lo)
        return count / max(1e-9, t_hi - t_lo), (c_hi - c_lo) * 1e6 / count


def run_worker(config: Path, store: Path, total: int, *, marks: tuple[int, ...] = (),
               interval: float = 0.02, timeout: float = 1800.0
               ) -> tuple[Result, Sampler]:
    """Start `materializer run CONFIG --no-api`, wait until `total` records are applied,
    stop it; the steady-state figures of the table `bench`. `marks`: applied counts at
    which the worker's RssAnon is recorded into `extra["anon_at"]`."""
    t0 = time.perf_counter()
    log = config.with_suffix(".log")
    with open(log, "wb") as err:  # a file, not a pipe: a full pipe would stall the worker
        proc = subprocess.Popen([sys.executable, "-m", "materializer", "run", str(config),
                                 "--no-api"], stderr=err, stdout=subprocess.DEVNULL)
    sampler = Sampler(store, "bench", proc.pid)
    anon_at: dict[int, int] = {}
    pending = sorted(marks)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                err = log.read_text(errors="replace")
                raise RuntimeError(f"materializer exited early with {proc.returncode}:\n"
                                   f"{err[-3000:]}")
            n, anon = sampler.sample()
            while pending and n >= pending[0]:
                anon_at[pending.pop(0)] = anon
            if n >= total:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {n:,} of {total:,} records applied")
            time.sleep(interval)
        total_s = time.perf_counter() - t0
        _, hwm, _ = proc_figures(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    rate, cpu_us = sampler.window(int(total * LOW), int(total * HIGH))
    anon = max(s[3] for s in sampler.samples)
    return Result(rate, cpu_us, hwm, anon, total_s, {"anon_at": anon_at}), sampler

"""Ingest benchmark: `materializer run` against a bare confluent-kafka consumer.

Produces N records (default 1,000,000 over 100,000 keys, 4 partitions, JSON values
of 4 columns) to the embedded broker, then, in the same run and on the same topic:
  1. bare: a fresh process that joins a consumer group and consumes every record;
  2. materializer: a fresh `materializer run` process, until every record is applied.
Both are timed from process start (imports and group join included). The figure
to quote is the ratio, because these machines are noisy.

    python bench/ingest.py [--records N] [--keys K] [--partitions P] [--changes] [--avro]
                           [--tombstones F]

With --avro the same records are also produced as Avro values (Confluent wire format,
a file registry) to a second topic, and measured the same way against that topic (with
--changes too: also with change events, in the default debezium-json), and so is the
issue's Avro reference: a minimal consume + fastavro + LMDB loop (one write transaction
per consumed batch). With --changes, also a bare consume that produces every record it
reads to a second topic (the change events' producer settings): the floor of a run with
change events on this machine and broker. The last column compares a run with its second
reference (the loop, the copy). --tombstones 0.02 makes 2% of the records delete their
key (as the issue's held-out runs).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from materializer.errors import NotFound
from materializer.store import Store

_CONSUMER = r"""
import sys
from confluent_kafka import Consumer, Producer
topic, group, want, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
conf = dict(a.split("=", 1) for a in sys.argv[5:])
c = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest",
              "enable.auto.commit": False, "partition.assignment.strategy": "cooperative-sticky",
              "fetch.wait.max.ms": 100, "queued.min.messages": 200000})
c.subscribe([topic])
n = 0
"""
"""A consumer of `topic` in a new group; arguments: topic, group, records, output topic
(`-`: none), then the Kafka settings as key=value."""

BARE_SCRIPT = _CONSUMER + r"""
while n < want:
    for m in c.consume(20000, 0.25):
        if m.error() is None:
            n += 1
c.close()
"""

COPY_SCRIPT = _CONSUMER + r"""
pconf = {k: v for k, v in conf.items() if k not in ("session.timeout.ms", "max.poll.interval.ms")}
p = Producer({**pconf, "linger.ms": 5, "enable.idempotence": False,
              "max.in.flight.requests.per.connection": 1, "delivery.report.only.error": True})
while n < want:
    for m in c.consume(20000, 0.25):
        if m.error() is None:
            n += 1
            while True:
                try:
                    p.produce(out, m.value(), m.key())
                    break
                except BufferError:
                    p.poll(0.05)
    p.poll(0)
if p.flush(60):
    raise SystemExit("not every copy was delivered")
c.close()
"""

LOOP_SCRIPT = _CONSUMER + r"""
import io, json, marshal, os
import lmdb
from fastavro import parse_schema, schemaless_reader
schema = parse_schema(json.loads(os.environ["BENCH_AVRO_SCHEMA"]))
env = lmdb.open(out, map_size=1 << 34)
while n < want:
    msgs = c.consume(20000, 0.25)
    with env.begin(write=True) as txn:
        for m in msgs:
            if m.error() is not None:
                continue
            n += 1
            v = m.value()
            if v is None:
                txn.delete(m.key())
                continue
            bio = io.BytesIO(v)
            bio.seek(5)
            txn.put(m.key(), marshal.dumps(tuple(schemaless_reader(bio, schema, None).values())))
c.close()
"""
"""The issue's Avro reference: a minimal consume + fastavro + LMDB loop (one write
transaction per consumed batch, the row's values marshalled, tombstones deleted)."""

CONFIG = """\
kafka:
{kafka}
group: {group}
store:
  path: {store}
tables:
  - name: bench
    topic: {topic}
    columns: {{id: long, name: string, score: double, active: boolean}}
    primary_key: [id]
    key_format: long
    value_format: {value_format}
{changes}{registry}"""

AVRO_VALUE = {"type": "record", "name": "BenchRow", "fields": [
    {"name": "id", "type": "long"}, {"name": "name", "type": "string"},
    {"name": "score", "type": "double"}, {"name": "active", "type": "boolean"}]}


def changelog(n: int, keys: int, encode: Callable[[dict[str, Any]], bytes], seed: int = 1,
              tombstones: float = 0.0) -> list[tuple[bytes | None, bytes | None]]:
    """`n` records over `keys` keys; a `tombstones` fraction of them deletes its key."""
    rnd = random.Random(seed)
    out: list[tuple[bytes | None, bytes | None]] = []
    for i in range(n):
        k = rnd.randrange(keys)
        key = k.to_bytes(8, "big", signed=True)
        if tombstones and rnd.random() < tombstones:
            out.append((key, None))
            continue
        row = {"id": k, "name": f"user-{k}-{i % 97}", "score": rnd.random() * 100,
               "active": i % 3 == 0}
        out.append((key, encode(row)))
    return out


def json_encoder(row: dict[str, Any]) -> bytes:
    return json.dumps(row).encode()


def _time_script(broker: DevBroker, script: str, topic: str, n: int, out: str = "-") -> float:
    """Seconds for a fresh process running `script` (a `_CONSUMER` script) to read `n`
    records of `topic` in a new group."""
    args = [f"{k}={v}" for k, v in broker.kafka_config().items()]
    env = {**os.environ, "BENCH_AVRO_SCHEMA": json.dumps(AVRO_VALUE)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", script, topic, f"ref-{time.monotonic_ns()}", str(n),
                    out, *args], check=True, timeout=600, env=env)
    return time.perf_counter() - t0


def time_bare(broker: DevBroker, topic: str, n: int) -> float:
    return _time_script(broker, BARE_SCRIPT, topic, n)


def time_copy(broker: DevBroker, topic: str, n: int) -> float:
    """A bare consume that also produces each record to a new topic, with the change
    events' producer settings (one request in flight): the floor of a change-event run on
    this machine and broker, where every record read is also a message written."""
    return _time_script(broker, COPY_SCRIPT, topic, n, broker.create_topic(partitions=1))


def time_fastavro_loop(broker: DevBroker, topic: str, n: int, path: str) -> float:
    """The minimal consume + fastavro + LMDB loop (`LOOP_SCRIPT`) into a new LMDB at `path`."""
    return _time_script(broker, LOOP_SCRIPT, topic, n, path)


def time_materializer(broker: DevBroker, topic: str, ends: dict[int, int], tmp: str,
                      changes: bool, registry: str | None = None) -> float:
    kafka = "".join(f"  {k}: {v}\n" for k, v in broker.kafka_config().items()).rstrip("\n")
    store = Path(tmp) / "data"
    Path(tmp).mkdir(parents=True, exist_ok=True)
    cfg = Path(tmp) / "bench.yaml"
    cfg.write_text(CONFIG.format(kafka=kafka, group=f"mat-{os.getpid()}", store=store,
                                 topic=topic, changes=f"    changes: {{topic: {topic}.changes}}\n"
                                 if changes else "", value_format="avro" if registry else "json",
                                 registry=f"schema_registry:\n  path: {registry}\n"
                                 if registry else ""))
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "materializer", "run", str(cfg), "--no-api"],
                            stderr=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"materializer exited early with {proc.returncode}")
            try:
                with Store.open(store) as s:
                    got = s.relation("bench").next_offsets()
                if all(got.get(p, 0) >= e for p, e in ends.items()):
                    break
            except NotFound:  # the worker has not created the table yet
                pass
            time.sleep(0.02)
        return time.perf_counter() - t0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--changes", action="store_true", help="also run with change events on")
    ap.add_argument("--avro", action="store_true", help="also run with Avro values")
    ap.add_argument("--tombstones", type=float, default=0.0,
                    help="the fraction of records that delete their key (e.g. 0.02)")
    args = ap.parse_args()
    with DevBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        # (name, seconds, the bare consume's seconds[, a second reference's, its name])
        rows: list[tuple[Any, ...]] = []
        topic = broker.create_topic(partitions=args.partitions)
        t0 = time.perf_counter()
        ends = produce_records(broker.kafka_config(), topic,
                               changelog(args.records, args.keys, json_encoder,
                                         tombstones=args.tombstones))
        print(f"produced {args.records:,} records ({args.keys:,} keys, {args.partitions} "
              f"partitions) in {time.perf_counter() - t0:.1f} s on {broker.kind}")
        bare = time_bare(broker, topic, args.records)
        rows.append(("bare confluent-kafka consume (json topic)", bare, bare))
        rows.append(("materializer run (json)",
                     time_materializer(broker, topic, ends, tmp + "/a", changes=False), bare))
        if args.changes:
            copy = time_copy(broker, topic, args.records)
            rows.append(("bare consume + produce of each record", copy, bare))
            rows.append(("materializer run (json + change events)",
                         time_materializer(broker, topic, ends, tmp + "/b", changes=True), bare))
            rows[-1] += (copy, "copy")
        if args.avro:
            from connectors.registry import FileRegistry
            from materializer.formats.wire import avro_encoder

            registry = Path(tmp) / "registry"
            registry.mkdir()
            avro_topic = broker.create_topic(partitions=args.partitions)
            encode = avro_encoder(FileRegistry(registry), f"{avro_topic}-value", AVRO_VALUE)
            avro_ends = produce_records(broker.kafka_config(), avro_topic,
                                        changelog(args.records, args.keys, encode,
                                                  tombstones=args.tombstones))
            avro_bare = time_bare(broker, avro_topic, args.records)
            rows.append(("bare confluent-kafka consume (avro topic)", avro_bare, avro_bare))
            loop = time_fastavro_loop(broker, avro_topic, args.records, tmp + "/loop")
            rows.append(("consume + fastavro + LMDB loop", loop, avro_bare))
            rows.append(("materializer run (avro)",
                         time_materializer(broker, avro_topic, avro_ends, tmp + "/c",
                                           changes=False, registry=str(registry)), avro_bare,
                         loop, "loop"))
            if args.changes:
                avro_copy = time_copy(broker, avro_topic, args.records)
                rows.append(("bare consume + produce of each record", avro_copy, avro_bare))
                rows.append(("materializer run (avro + change events)",
                             time_materializer(broker, avro_topic, avro_ends, tmp + "/d",
                                               changes=True, registry=str(registry)),
                             avro_bare, avro_copy, "copy"))
        print(f"{'':44} {'seconds':>8} {'records/s':>12} {'ratio':>6}  second reference")
        for name, secs, ref, *second in rows:
            against = f"{second[0] / secs:.2f}x the {second[1]}" if second else ""
            print(f"{name:44} {secs:8.2f} {args.records / secs:12,.0f} {ref / secs:6.2f}  "
                  f"{against}")


if __name__ == "__main__":
    main()

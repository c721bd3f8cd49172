"""Change-event micro-benchmark: apply + stage + commit + drain, in one process.

N records (default 200,000 over 50,000 keys, 4 partitions, JSON values of 4
columns, about 1 in 10 a delete) are applied in batches of B records per write
transaction, the way the worker does, in these modes:

  no-changes     the table without `changes` (blind writes: no read before write)
  read-before    the same, but forced to read the stored row first (the before-image cost)
  stage-json     `changes` in debezium-json: events staged in the batch txn, never drained
  json           debezium-json, staged and drained to the broker after every commit
  avro           debezium-avro (file registry), staged and drained after every commit

Records are built in memory first, so the figures are the materializer's own cost
(decode, merge, LMDB, envelope, produce + wait for acks), not the consumer's.

    python bench/changes.py [--records N] [--keys K] [--batch B] [--modes a,b,...]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time

from connectors.producer import Sink
from connectors.registry import FileRegistry
from materializer.changes.outbox import ChangeOutbox
from materializer.columns import parse_type
from materializer.devbroker import DevBroker
from materializer.ingest.relation import open_relation
from materializer.specs import ChangesSpec, Column, TableSpec
from materializer.testing import FakeRecord

PARTITIONS = 4
COLUMNS = {"id": "long", "name": "string", "score": "double", "active": "boolean"}


def records(n: int, keys: int) -> dict[int, list[FakeRecord]]:
    rng = random.Random(1)
    out: dict[int, list[FakeRecord]] = {p: [] for p in range(PARTITIONS)}
    for _ in range(n):
        k = rng.randrange(keys)
        p = k % PARTITIONS
        v = None if rng.random() < 0.1 else json.dumps(
            {"name": f"user-{rng.randrange(1000)}", "score": rng.random() * 100,
             "active": rng.random() < 0.5}).encode()
        out[p].append(FakeRecord(k.to_bytes(8, "big", signed=True), v, len(out[p])))
    return out


def spec(topic: str, changes: ChangesSpec | None) -> TableSpec:
    cols = tuple(Column(n, *parse_type(t)) for n, t in COLUMNS.items())
    return TableSpec(name="bench", topic=topic, columns=cols, key_columns=("id",),
                     key_format="long", value_format="json", changes=changes)


def run(mode: str, recs: dict[int, list[FakeRecord]], batch: int, broker: DevBroker
        ) -> dict[str, float]:
    conf = broker.kafka_config()
    topic = f"bench-{mode}-{time.monotonic_ns()}"
    fmt = "debezium-avro" if mode == "avro" else "debezium-json"
    changes = None if mode in ("no-changes", "read-before") else ChangesSpec(f"{topic}.changes",
                                                                            fmt)
    s = spec(topic, changes)
    data = tempfile.mkdtemp(prefix="bench-changes-")
    rel = open_relation(s, data, map_size=1 << 32)
    if mode == "read-before":
        rel.applier.blind = False  # type: ignore[union-attr]
    outbox = None
    if changes is not None:
        registry = FileRegistry(tempfile.mkdtemp(prefix="bench-registry-"))
        outbox = rel.outbox = ChangeOutbox(s, rel.writer, s.column_names, Sink(conf),
                                           PARTITIONS, registry, max_backlog=10**9,
                                           kafka_conf=conf)
        outbox.drain()  # creates the change topic before the clock starts
    drain = mode in ("json", "avro")
    per_batch = max(1, batch // PARTITIONS)
    total = sum(len(v) for v in recs.values())
    events = 0
    t0 = time.perf_counter()
    for start in range(0, max(len(v) for v in recs.values()), per_batch):
        chunks = {p: rs[start:start + per_batch] for p, rs in recs.items()
                  if rs[start:start + per_batch]}
        for out in rel.apply(chunks).values():
            events += len(out.changes)
        if outbox is not None and drain:
            outbox.drain()
    elapsed = time.perf_counter() - t0
    if outbox is not None and drain:
        assert outbox.backlog() == 0, "events left behind"
    return {"records_per_s": total / elapsed, "seconds": elapsed, "events": events}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--keys", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=10_000, help="records per write transaction")
    ap.add_argument("--modes", default="no-changes,read-before,stage-json,json,avro")
    args = ap.parse_args()
    recs = records(args.records, args.keys)
    with DevBroker() as broker:
        base = None
        for mode in args.modes.split(","):
            r = run(mode, recs, args.batch, broker)
            base = base or r["records_per_s"]
            print(f"{mode:12s} {r['records_per_s']:>10,.0f} records/s  "
                  f"({r['seconds']:.2f} s, {int(r['events']):,} events, "
                  f"{r['records_per_s'] / base:.0%} of {args.modes.split(',')[0]})",
                  flush=True)


if __name__ == "__main__":
    main()

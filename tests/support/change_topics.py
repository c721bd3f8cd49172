"""Change-topic test helpers: a deterministic source changelog, the events it must give,
reading a topic back, materializing a relation from records, folding change events."""

from __future__ import annotations

import json
import random
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, cast

from confluent_kafka import Consumer, TopicPartition

from connectors.kafka_admin import partition_count
from connectors.producer import produce_records
from materializer.changes.outbox import ChangeOutbox
from materializer.columns import parse_type
from materializer.ingest.relation import Relation
from materializer.protocols import SourceRecord
from materializer.specs import ChangesSpec, Column, TableSpec
from materializer.store import Store
from tests.support.registry_server import RegistryServer
from tests.support.workers import caught_up, start_worker, unique, wait_until, write_config

COLUMNS = {"id": "int not null", "name": "string", "age": "long", "born": "date",
           "score": "decimal(6,2)"}


def table_spec(topic: str, changes: ChangesSpec | None, name: str = "shop.users",
               value_format: str = "json", key_format: str = "json") -> TableSpec:
    cols = tuple(Column(n, *parse_type(t)) for n, t in COLUMNS.items())
    return TableSpec(name=name, topic=topic, columns=cols, key_columns=("id",),
                     key_format=key_format, value_format=value_format,
                     changes=changes)


class Message(NamedTuple):
    """A consumed record, kept after its consumer is closed."""

    partition: int
    offset: int
    key: bytes
    value: bytes | None


def kept(m: Any) -> Message:
    return Message(m.partition(), m.offset(), m.key(), m.value())


# --------------------------------------------------------------------- the changelog


def changelog(seed: int, keys: int = 150, records: int = 2500, replays: int = 300
              ) -> list[tuple[bytes, bytes | None]]:
    """Inserts, updates, deletes (also of absent keys), re-inserts, and `replays`
    verbatim repeats of a key's current value, which must emit nothing."""
    rng = random.Random(seed)
    current: dict[int, bytes | None] = {}
    out: list[tuple[bytes, bytes | None]] = []
    replayed = 0
    while len(out) < records or replayed < replays:
        k = rng.randrange(keys)
        kb = str(k).encode()
        r = rng.random()
        present = current.get(k) is not None
        if present and replayed < replays and r < 0.15:
            out.append((kb, current[k]))  # verbatim replay
            replayed += 1
            continue
        if len(out) >= records:
            continue
        if r < 0.30:
            out.append((kb, None))  # delete; of an absent key it is a no-op
            current[k] = None
            continue
        value = json.dumps({"name": rng.choice(["ada", "bob", "cy", None]),
                            "age": rng.randrange(4), "born": f"19{rng.randrange(10, 99)}-01-02",
                            "score": str(rng.randrange(10000) / 100)}).encode()
        out.append((kb, value))
        current[k] = value
    return out


def expected_events(msgs: list[Message]) -> tuple[dict[Any, dict[str, Any]],
                                                  set[tuple[int, int, str]]]:
    """An independent model of SPEC §4/§5 for `overwrite`: final table and the events
    (source partition, offset, op) that must be emitted."""
    table: dict[Any, dict[str, Any]] = {}
    events: set[tuple[int, int, str]] = set()
    for m in sorted(msgs, key=lambda m: (m.partition, m.offset)):
        k = json.loads(m.key)
        raw = m.value
        if raw is None:
            if k in table:
                del table[k]
                events.add((m.partition, m.offset, "d"))
            continue
        v = json.loads(raw)
        row = {"id": k, "name": v["name"], "age": v["age"], "born": v["born"],
               "score": f"{float(v['score']):.2f}"}
        old = table.get(k)
        if old != row:
            events.add((m.partition, m.offset, "c" if old is None else "u"))
            table[k] = row
    return table, events


# --------------------------------------------------------------------- Kafka helpers


def consumer(conf: dict[str, str]) -> Consumer:
    return Consumer({**conf, "group.id": f"test-{uuid.uuid4().hex[:8]}",
                     "enable.auto.commit": False, "auto.offset.reset": "earliest",
                     "enable.partition.eof": False})


def read_all(conf: dict[str, str], topic: str, done: Any, timeout: float = 60.0
             ) -> list[Message]:
    """Every message of `topic` from the beginning until `done(messages)` holds."""
    c = consumer(conf)
    n = partition_count(conf, topic)
    c.assign([TopicPartition(topic, p, 0) for p in range(n)])
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while not done(out):
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: gave up after {len(out)} messages")
            for m in c.consume(1000, 0.5):
                if m.error() is None:
                    out.append(kept(m))
    finally:
        c.close()
    return out


def materialize(conf: dict[str, str], rel: Relation, ends: dict[int, int],
                outbox: ChangeOutbox | None, batch: int = 300) -> list[Message]:
    """Apply `spec.topic` up to `ends` the way the worker does: per poll one write
    transaction with rows, offsets and staged events, then drain. Returns the records."""
    spec = rel.spec
    rel.outbox = outbox
    nxt = rel.next_offsets
    c = consumer(conf)
    c.assign([TopicPartition(spec.topic, p, nxt.get(p, 0)) for p in ends])
    seen: list[Message] = []
    if outbox is not None:
        outbox.drain()
    try:
        deadline = time.monotonic() + 120
        while any(nxt.get(p, 0) < e for p, e in ends.items()):
            assert time.monotonic() < deadline, "the source did not arrive"
            msgs = [m for m in c.consume(batch, 0.5) if m.error() is None]
            by_p: dict[int, list[SourceRecord]] = {}
            for m in msgs:
                by_p.setdefault(cast(int, m.partition()), []).append(cast(SourceRecord, m))
            if not by_p:
                continue
            seen.extend(kept(m) for m in msgs)
            for out in rel.apply(by_p).values():
                assert out.fatal is None and not out.rejected
            if outbox is not None:
                outbox.drain()
    finally:
        c.close()
    return seen


def table_rows(data: Path, name: str) -> dict[Any, dict[str, Any]]:
    with Store.open(data) as store:
        return {r["id"]: r for r in store.table(name).scan(json_form=True)}


@dataclass
class Fold:
    """The change topic folded per key, with the protocol checks of SPEC §5."""

    table: dict[Any, dict[str, Any]] = field(default_factory=dict)
    events: list[tuple[int, int, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def in_topic_order(msgs: list[Message]) -> list[Message]:
    return sorted(msgs, key=lambda m: (m.partition, m.offset))


def json_key(m: Message) -> Any:
    return json.loads(m.key)["id"]


def json_value(m: Message) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(m.value or b""))


def fold(msgs: list[Message], strict: bool = True, key_of: Callable[[Message], Any] = json_key,
         value_of: Callable[[Message], dict[str, Any]] = json_value) -> Fold:
    """Fold messages given in topic order (`in_topic_order`): c/u/r set the row to `after`,
    d removes it; each d must be followed by a tombstone for its key and (strict: no
    repeats expected) each u/d must carry the previous `after`. `key_of` and `value_of`
    decode a message's key (to the `id`) and value (to the event)."""
    f = Fold()
    last: dict[Any, dict[str, Any] | None] = {}
    awaiting_tombstone: set[Any] = set()
    for m in msgs:
        key = key_of(m)
        raw = m.value
        if raw is None:
            if key not in awaiting_tombstone:
                f.problems.append(f"tombstone for {key} not after a delete")
            awaiting_tombstone.discard(key)
            continue
        if key in awaiting_tombstone:
            f.problems.append(f"no tombstone after the delete of {key}")
            awaiting_tombstone.discard(key)
        ev = value_of(m)
        src = ev["source"]
        f.events.append((src["partition"], src["offset"], ev["op"]))
        if strict and ev["op"] in ("u", "d") and ev["before"] != last.get(key):
            f.problems.append(f"{key}: before {ev['before']} != previous after {last.get(key)}")
        if strict and ev["op"] == "c" and last.get(key) is not None:
            f.problems.append(f"{key}: c for a key that exists")
        if ev["op"] == "d":
            f.table.pop(key, None)
            awaiting_tombstone.add(key)
            last[key] = None
        else:
            f.table[key] = ev["after"]
            last[key] = ev["after"]
    for key in awaiting_tombstone:
        f.problems.append(f"no tombstone after the delete of {key}")
    return f


def each_key_in_applied_order(msgs: list[Message]) -> bool:
    """Whether, in `msgs` (topic order), the first copy of each event comes after the first
    copies of its key's earlier events (source partition, offset): repeats allowed."""
    seen: set[tuple[int, int, str]] = set()
    last: dict[Any, tuple[int, int]] = {}
    for m in msgs:
        if m.value is None:
            continue
        ev = json.loads(m.value)
        pos = (ev["source"]["partition"], ev["source"]["offset"])
        if (*pos, ev["op"]) in seen:
            continue
        seen.add((*pos, ev["op"]))
        key = (ev["after"] or ev["before"])["id"]
        if key in last and pos <= last[key]:
            return False
        last[key] = pos
    return True


def drain_all(conf: dict[str, str], topic: str, idle: float = 2.0) -> list[Message]:
    """Every message of `topic`, read until nothing new came for `idle` seconds."""
    c = consumer(conf)
    c.assign([TopicPartition(topic, p, 0) for p in range(partition_count(conf, topic))])
    out: list[Message] = []
    quiet_since = time.monotonic()
    try:
        while time.monotonic() - quiet_since < idle:
            got = [kept(m) for m in c.consume(1000, 0.2) if m.error() is None]
            if got:
                out.extend(got)
                quiet_since = time.monotonic()
    finally:
        c.close()
    return out


def wait_for_rows(data: Path, names: tuple[str, ...], want: dict[Any, dict[str, Any]],
                  proc: Any = None, timeout: float = 60) -> None:
    """Wait until each of the tables `names` of the store `data` holds exactly `want`
    (`table_rows`), failing at the deadline (or when the worker `proc` exits)."""
    for name in names:
        def holds(name: str = name) -> bool:
            return table_rows(data, name) == want
        wait_until(holds, timeout, f"{name} to hold the rows {want}", proc)


def mirror_through_registry(broker: Any, tmp_path: Path, body: str, prefix: str,
                            records: list[tuple[bytes | None, bytes | None]],
                            mirrors: tuple[str, ...]) -> tuple[Path, dict[Any, dict[str, Any]]]:
    """A worker over `body` (`.format(registry=, topic=, changes=)`: a table `src` on
    `topic` with change events to `changes`, and tables reading them back) with a schema
    registry: `records` go into `topic` (one partition) and the worker runs until `src` has
    them all and every `public.<mirror>` equals it, then stops with exit 0. Returns the data
    directory and `src`'s rows."""
    topic = broker.create_topic(unique(prefix), partitions=1)
    changes = broker.create_topic(unique(f"{prefix}.changes"), partitions=1)
    cfg = tmp_path / "c.yaml"
    data = tmp_path / "data"
    with RegistryServer() as srv:
        write_config(cfg, broker, body.format(registry=srv.url, topic=topic, changes=changes))
        ends = produce_records(broker.kafka_config(), topic, records)
        worker = start_worker(cfg)
        try:
            wait_until(caught_up(data, "public.src", ends), 90, "src to catch up", worker)
            source = table_rows(data, "public.src")
            wait_for_rows(data, tuple(f"public.{m}" for m in mirrors), source, worker)
        finally:
            worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    return data, source

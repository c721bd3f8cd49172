"""Change events read by standard readers, for every column type and a composite key.

debezium-avro keys and values are read with confluent-kafka's own AvroDeserializer through
a Confluent-compatible REST registry and compared, value by value, with the table's rows;
the envelope registered after `add-columns` is checked BACKWARD and FORWARD compatible
(Avro schema resolution, by fastavro) with the one before it; debezium-json with
`schemas: true` is read the way Kafka Connect's JsonConverter reads it (`connect_read`).
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
import pytest

from connectors.producer import Sink, produce_records
from connectors.rest_registry import RestRegistry
from materializer.changes.outbox import ChangeOutbox
from materializer.columns import parse_type
from materializer.devbroker import DevBroker
from materializer.ingest.relation import open_relation
from materializer.specs import ChangesSpec, Column, TableSpec
from materializer.store import Store
from tests.support.change_topics import Message, drain_all, materialize
from tests.support.connect_json import connect_message, expected_row
from tests.support.registry_server import RegistryServer

pytestmark = pytest.mark.integration

KEY = {"k_int": "int", "k_str": "string", "k_date": "date", "k_uuid": "uuid",
       "k_dec": "decimal(12,3)", "k_ts": "timestamp", "k_time": "time", "k_long": "long",
       "k_bytes": "bytes", "k_bool": "boolean", "k_dbl": "double"}
VALUE = {"b": "boolean", "i": "int", "l": "long", "f": "float", "d": "double",
         "dec": "decimal(20,4)", "s": "string", "by": "bytes", "da": "date", "ti": "time",
         "ts": "timestamp", "u": "uuid", "j": "json", "arr_i": "array<int>",
         "arr_dec": "array<decimal(8,2)>", "arr_ts": "array<timestamp>",
         "m_s": "map<string,string>", "m_da": "map<string,date>",
         "nn": "string not null"}


def spec_of(topic: str, changes: ChangesSpec | None, columns: dict[str, str] | None = None
            ) -> TableSpec:
    cols = tuple(Column(n, *parse_type(t)) for n, t in {**KEY, **VALUE, **(columns or {})}.items())
    return TableSpec(name="shop.zoo", topic=topic, columns=cols, key_columns=tuple(KEY),
                     key_format="json", value_format="json", changes=changes)


def _key(rng: random.Random, n: int) -> dict[str, Any]:
    return {"k_int": n % 7 - 3, "k_str": f"ü{n % 5}", "k_date": f"19{60 + n % 3}-02-2{n % 9}",
            "k_uuid": str(uuid.UUID(int=n % 4 * 0x1234567890ABCDEF)),
            "k_dec": f"{n % 3 - 1}.{n % 1000:03d}",
            "k_ts": f"2024-03-0{n % 3 + 1}T01:02:03.{n % 7:06d}Z",
            "k_time": f"23:59:5{n % 10}.12345{n % 10}", "k_long": -(1 << 40) + n % 2,
            "k_bytes": base64.b64encode(bytes([n % 3, 255, 0])).decode(),
            "k_bool": n % 2 == 0, "k_dbl": [0.1, -2.5e-300, 1e300][n % 3]}


def _value(rng: random.Random) -> dict[str, Any]:
    def maybe(v: Any) -> Any:
        return None if rng.random() < 0.2 else v
    return {"b": maybe(rng.random() < 0.5), "i": maybe(rng.randint(-2**31, 2**31 - 1)),
            "l": maybe(rng.randint(-2**63, 2**63 - 1)), "f": maybe(rng.uniform(-1e6, 1e6)),
            "d": maybe(rng.choice([0.1, -0.0, 1e308, -2.5e-300, rng.random()])),
            "dec": maybe(f"{rng.randint(-10**15, 10**15)}.{rng.randint(0, 9999):04d}"),
            "s": maybe(rng.choice(["", "a\u0000b", "日本", "x" * 300])),
            "by": maybe(base64.b64encode(rng.randbytes(rng.randint(0, 40))).decode()),
            "da": maybe(rng.choice(["0001-01-01", "1969-12-31", "9999-12-31", "2024-02-29"])),
            "ti": maybe(rng.choice(["00:00:00", "12:34:56.789012", "23:59:59.999999"])),
            "ts": maybe(rng.choice(["1969-12-31T23:59:59.999999Z", "2024-02-29T12:00:00.5Z",
                                    "1900-01-01T00:00:00Z"])),
            "u": maybe(str(uuid.UUID(int=rng.getrandbits(128)))),
            "j": maybe(rng.choice([{"a": [1, 2.5, None]}, [], "text", 1, True])),
            "arr_i": maybe([rng.choice([None, 1, -5]) for _ in range(rng.randint(0, 3))]),
            "arr_dec": maybe([rng.choice([None, "1.25", "-999999.99"])
                              for _ in range(rng.randint(0, 3))]),
            "arr_ts": maybe(["2020-01-01T00:00:00.000001Z", None]),
            "m_s": maybe({"k": "v", "e": None, "": "empty key"}),
            "m_da": maybe({"a": "2000-01-01", "b": None}),
            "nn": rng.choice(["x", "y"])}


def zoo_changelog(seed: int, records: int = 300) -> list[tuple[bytes, bytes | None]]:
    """Inserts, updates and deletes over 40 composite keys of every key type."""
    rng = random.Random(seed)
    out: list[tuple[bytes, bytes | None]] = []
    for _ in range(records):
        key = json.dumps(_key(rng, rng.randrange(40))).encode()
        value = None if rng.random() < 0.15 else json.dumps(_value(rng)).encode()
        out.append((key, value))
    return out


@pytest.fixture(scope="module")
def broker(session_broker: DevBroker) -> Iterator[DevBroker]:
    yield session_broker


def _key_tuple(spec: TableSpec, row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[k] for k in spec.key_columns)


def test_avro_events_of_every_type_read_back_exactly(broker: DevBroker, tmp_path: Path) -> None:
    from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: PLC0415
    from confluent_kafka.schema_registry.avro import AvroDeserializer  # noqa: PLC0415
    from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: PLC0415

    conf = broker.kafka_config()
    source = broker.create_topic(partitions=2)
    changes = f"{source}.changes"
    spec = spec_of(source, ChangesSpec(topic=changes, format="debezium-avro", columns=True))
    ends = produce_records(conf, source, zoo_changelog(seed=1))
    with RegistryServer() as srv:
        registry = RestRegistry(srv.url)
        rel = open_relation(spec, tmp_path, map_size=1 << 30, registry=registry)
        outbox = ChangeOutbox(spec, rel.writer, spec.column_names, Sink(conf), 2, registry,
                              kafka_conf=conf)
        seen = materialize(conf, rel, ends, outbox)
        msgs = drain_all(conf, changes)
        client = SchemaRegistryClient({"url": srv.url})
        keys, values = AvroDeserializer(client), AvroDeserializer(client)
        table: dict[tuple[Any, ...], dict[str, Any]] = {}
        decoded = []
        for m in sorted(msgs, key=lambda m: (m.partition, m.offset)):
            k = keys(m.key, SerializationContext(changes, MessageField.KEY))
            assert isinstance(k, dict) and list(k) == list(KEY)
            k = _plain(k)
            kt = tuple(k.values())
            if m.value is None:
                decoded.append((m, k, None))
                continue
            ev = _plain(values(m.value, SerializationContext(changes, MessageField.VALUE)))
            assert isinstance(ev, dict)
            decoded.append((m, k, ev))
            row = ev["after"] if ev["op"] != "d" else ev["before"]
            assert _key_tuple(spec, row) == kt  # the key record is the row's key columns
            if ev["op"] == "d":
                table.pop(kt, None)
            else:
                table[kt] = ev["after"]
    with Store.open(tmp_path) as store:
        want = {_key_tuple(spec, r): r for r in store.table(spec.name).scan()}
    ops = check_protocol(decoded, seen, spec)
    assert ops["d"] == ops["tombstone"] > 0 and ops["c"] > 0 and ops["u"] > 0
    assert set(table) == set(want)
    for kt, row in want.items():
        got = table[kt]
        assert list(got) == list(row)
        for col, v in row.items():
            g = got[col]
            if col == "j" and g is not None:  # io.debezium.data.Json: the JSON text
                g = json.loads(g)
            assert _same(g, v), (col, got[col], v)
    print("AVRO", len(msgs), ops, len(want))


def _plain(v: Any) -> Any:
    """A decoded value with uuid.UUID (fastavro's reading of logicalType uuid) as the text the
    store serves."""
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b and str(a) == str(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _body(m: Message) -> tuple[int, bytes]:
    assert m.value is not None and m.value[:1] == b"\x00"
    return int.from_bytes(m.value[1:5], "big"), m.value[5:]


def test_avro_envelope_after_add_columns_is_backward_and_forward_compatible(
        broker: DevBroker, tmp_path: Path) -> None:
    """`add-columns` (a nullable column) registers a second envelope under the same subject:
    a consumer holding the new schema reads the old events (BACKWARD, a Confluent
    registry's default check) and one holding the old schema reads the new (FORWARD), by
    Avro's resolution rules; the key schema stays one version."""
    conf = broker.kafka_config()
    source = broker.create_topic(partitions=2)
    changes = f"{source}.changes"
    spec = spec_of(source, ChangesSpec(topic=changes, format="debezium-avro"))
    wider = spec_of(source, spec.changes, {"extra": "decimal(5,1)", "tags": "array<string>"})
    log = zoo_changelog(seed=2, records=120)
    with RegistryServer() as srv:
        registry = RestRegistry(srv.url)
        rel = open_relation(spec, tmp_path, map_size=1 << 30, registry=registry)
        rel.outbox = None
        ends = produce_records(conf, source, log)
        materialize(conf, rel, ends, ChangeOutbox(spec, rel.writer, rel.applier.layout,
                                                  Sink(conf), 2, registry, kafka_conf=conf))
        rel = open_relation(wider, tmp_path, map_size=1 << 30, registry=registry,
                            add_columns=True)
        more = [(k, None if v is None else json.dumps(
                    {**json.loads(v), "extra": "-12.5", "tags": ["a", None]}).encode())
                for k, v in zoo_changelog(seed=3, records=120)]
        ends = produce_records(conf, source, more)
        materialize(conf, rel, ends, ChangeOutbox(wider, rel.writer, rel.applier.layout,
                                                  Sink(conf), 2, registry, kafka_conf=conf))
        msgs = [m for m in drain_all(conf, changes) if m.value is not None]
        assert len(srv.subjects[f"{changes}-value"]) == 2
        assert len(srv.subjects[f"{changes}-key"]) == 1
        old_id, new_id = srv.subjects[f"{changes}-value"]
        old = fastavro.parse_schema(json.loads(srv.schemas[old_id]))
        new = fastavro.parse_schema(json.loads(srv.schemas[new_id]))
    by_id: dict[int, int] = {}
    for m in msgs:
        sid, body = _body(m)
        by_id[sid] = by_id.get(sid, 0) + 1
        writer, readers = (old, (old, new)) if sid == old_id else (new, (new, old))
        for reader in readers:
            buf = io.BytesIO(body)
            ev = fastavro.schemaless_reader(buf, writer, reader)
            assert buf.tell() == len(body)
            assert isinstance(ev, dict) and ev["op"] in ("c", "u", "d")
            for row in (ev["before"], ev["after"]):
                if row is None:
                    continue
                if reader is new and sid == old_id:
                    assert row["extra"] is None and row["tags"] is None  # the defaults
                if reader is old:
                    assert "extra" not in row
    assert by_id.get(old_id, 0) > 0 and by_id.get(new_id, 0) > 0
    print("EVOLUTION", by_id)


def test_add_columns_refuses_a_changed_column_type(tmp_path: Path) -> None:
    from materializer.errors import SchemaChangedError  # noqa: PLC0415
    from materializer.specs import ChangesSpec as CS  # noqa: PLC0415, N817

    spec = spec_of("t", CS(topic="t.changes"))
    open_relation(spec, tmp_path, map_size=1 << 26)
    changed = dataclasses.replace(spec, columns=tuple(
        Column(c.name, *parse_type("long")) if c.name == "i" else c for c in spec.columns))
    with pytest.raises(SchemaChangedError):
        open_relation(changed, tmp_path, map_size=1 << 26, add_columns=True)


def test_json_schemas_events_read_as_connect_reads_them(broker: DevBroker,
                                                        tmp_path: Path) -> None:
    conf = broker.kafka_config()
    source = broker.create_topic(partitions=2)
    changes = f"{source}.changes"
    spec = spec_of(source, ChangesSpec(topic=changes, schemas=True, columns=True))
    ends = produce_records(conf, source, zoo_changelog(seed=4))
    rel = open_relation(spec, tmp_path, map_size=1 << 30)
    outbox = ChangeOutbox(spec, rel.writer, rel.applier.layout, Sink(conf), 2,
                          kafka_conf=conf)
    seen = materialize(conf, rel, ends, outbox)
    msgs = drain_all(conf, changes)
    table: dict[tuple[Any, ...], dict[str, Any]] = {}
    decoded = []
    for m in sorted(msgs, key=lambda m: (m.partition, m.offset)):
        k = connect_message(m.key, f"key@{m.partition}:{m.offset}")
        kt = tuple(k[c] for c in spec.key_columns)
        assert list(k) == list(spec.key_columns)
        if m.value is None:
            decoded.append((m, k, None))
            continue
        ev = connect_message(m.value, f"value@{m.partition}:{m.offset}")
        decoded.append((m, k, ev))
        row = ev["before"] if ev["op"] == "d" else ev["after"]
        assert tuple(row[c] for c in spec.key_columns) == kt
        if ev["op"] == "d":
            table.pop(kt, None)
        else:
            table[kt] = ev["after"]
    with Store.open(tmp_path) as store:
        want = {}
        for r in store.table(spec.name).scan():
            e = expected_row(spec, r)
            want[tuple(e[c] for c in spec.key_columns)] = e
    ops = check_protocol(decoded, seen, spec)
    assert ops["d"] == ops["tombstone"] > 0 and ops["c"] > 0 and ops["u"] > 0
    assert set(table) == set(want)
    for kt, row in want.items():
        for col, v in row.items():
            g = table[kt][col]
            assert _same(g, v), (col, g, v)
    print("CONNECT", len(msgs), ops, len(want))


SOURCE_FIELDS = ["version", "connector", "name", "ts_ms", "snapshot", "db", "table", "topic",
                 "partition", "offset"]


def check_protocol(decoded: list[tuple[Message, dict[str, Any], dict[str, Any] | None]],
                   source: list[Message], spec: TableSpec) -> dict[str, int]:
    """SPEC §5 / README "Change events" over decoded events in topic order: op codes and
    before/after, a tombstone right after each delete (same partition, same key bytes),
    `ts_ms`, and `source` with the fields README lists pointing at the source record the
    change came from. Returns counts."""
    import time  # noqa: PLC0415

    by_pos = {(m.partition, m.offset): m for m in source}
    now = time.time() * 1000
    last: dict[tuple[Any, ...], dict[str, Any] | None] = {}
    counts = {"c": 0, "u": 0, "d": 0, "tombstone": 0}
    positions: set[tuple[int, int]] = set()
    pending: Message | None = None  # a delete whose tombstone must come next
    for m, key, ev in decoded:
        kt = tuple(key[c] for c in spec.key_columns)
        if pending is not None and pending.partition == m.partition:
            assert ev is None and m.key == pending.key, f"no tombstone right after {pending}"
            pending = None
            counts["tombstone"] += 1
            continue
        assert ev is not None, f"a tombstone not after a delete: {m}"
        op = ev["op"]
        counts[op] += 1
        assert (ev["before"] is None) == (op == "c") and (ev["after"] is None) == (op == "d")
        if op != "c":
            assert ev["before"] == last.get(kt), (op, kt)
        else:
            assert last.get(kt) is None
        last[kt] = ev["after"]
        assert isinstance(ev["ts_ms"], int) and abs(ev["ts_ms"] - now) < 600_000
        src = ev["source"]
        assert list(src) == SOURCE_FIELDS, list(src)
        assert (src["connector"], src["name"], src["snapshot"], src["db"], src["table"],
                src["topic"]) == ("materializer", "materializer", "false", "shop", spec.name,
                                  spec.topic)
        assert isinstance(src["ts_ms"], int) and abs(src["ts_ms"] - now) < 600_000
        pos = (src["partition"], src["offset"])
        assert pos not in positions
        positions.add(pos)
        rec = by_pos[pos]
        rk = json.loads(rec.key)
        assert (rk["k_int"], rk["k_str"], rk["k_long"]) == (kt[0], kt[1], kt[7])
        assert (rec.value is None) == (op == "d")
        assert m.partition == src["partition"]
        if op == "u" and "changed" in ev:
            assert ev["changed"] == [c for c in spec.column_names
                                     if ev["before"][c] != ev["after"][c]]
        if op == "d":
            pending = m
    assert pending is None
    return counts

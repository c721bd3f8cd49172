"""Benchmark workloads: a table declaration and a deterministic changelog to produce.

A workload is (value format, key format, column count, distinct keys):

  value  json-ascii     flat JSON: ASCII strings, longs, doubles, booleans, no nulls
         json-rich      JSON with non-ASCII strings (raw UTF-8), 1/3 null columns,
                        nested arrays and maps, decimals (text) and ISO 8601 timestamps
         avro           Confluent-wire Avro of the rich row (unions with null, arrays, maps,
                        bytes decimals, timestamp-millis), file registry
         debezium-json  Debezium envelopes (op c/u, d plus tombstone), rich `after` rows with
                        decimals as text and timestamps as epoch ms
         debezium-avro  the same as Avro, with Connect logical-type names
  key    int (4-byte), long (8-byte), string (UTF-8), json (composite {"region", "id"})
  cols   total columns, key columns included (10 or 30)
  keys   distinct keys: a key is drawn at random from `keys`, or, with at least as many
         keys as records, every record is a new key (the table grows to `records` rows)

About 2% of records delete their key (a tombstone; for Debezium an op d event and then a
tombstone).
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from fastavro import parse_schema, schemaless_writer

VALUES = ("json-ascii", "json-rich", "avro", "debezium-json", "debezium-avro")
KEYS = ("int", "long", "string", "json")

# (column name, declared type, kind used to generate values); rich cycles through these
RICH = [("name", "string", "text"), ("e_mail", "string", "nullable_text"),
        ("score", "double", "double"), ("active", "boolean", "boolean"),
        ("balance", "decimal(12,2)", "decimal"), ("created_at", "timestamp", "timestamp"),
        ("tags", "array<string>", "array"), ("attrs", "map<string,string>", "map"),
        ("visits", "long", "long"), ("note", "string", "nullable_text")]
ASCII = [("name", "string", "ascii"), ("visits", "long", "long"),
         ("score", "double", "double"), ("active", "boolean", "boolean")]
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
UNICODE_WORDS = ["Zürich", "Ålesund", "Łódź", "Москва", "東京", "São Paulo", "İzmir",
                 "Kraków", "naïve café", "😀 ok"]
REGIONS = ["eu-west", "us-east", "ap-south", "sa-east", "af-north"]
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Workload:
    value: str
    key: str
    columns: int
    keys: int

    @property
    def name(self) -> str:
        k = f"{self.keys // 1_000_000}M" if self.keys >= 1_000_000 and self.keys % 1_000_000 == 0 \
            else f"{self.keys // 1000}k" if self.keys % 1000 == 0 else str(self.keys)
        return f"{self.value}/{self.key}/{self.columns}c/{k}"

    @property
    def avro(self) -> bool:
        return self.value in ("avro", "debezium-avro")

    def key_columns(self) -> list[tuple[str, str]]:
        if self.key == "json":
            return [("region", "string"), ("id", "long")]
        return [("id", {"int": "int", "long": "long", "string": "string"}[self.key])]

    def value_columns(self) -> list[tuple[str, str, str]]:
        """(name, declared type, generator kind) of the non-key columns."""
        pool = ASCII if self.value == "json-ascii" else RICH
        n = self.columns - len(self.key_columns())
        out = []
        for i in range(n):
            name, typ, kind = pool[i % len(pool)]
            out.append((name if i < len(pool) else f"{name}_{i // len(pool)}", typ, kind))
        return out

    def declaration(self) -> dict[str, Any]:
        """The table's YAML mapping (without changes)."""
        cols = {n: t for n, t in self.key_columns()}
        cols.update({n: t for n, t, _ in self.value_columns()})
        value_format = "json" if self.value.startswith("json") else self.value
        return {"name": "bench", "columns": cols,
                "primary_key": [n for n, _ in self.key_columns()],
                "key_format": "json" if self.key == "json" else self.key,
                "value_format": value_format}


def _avro_type(typ: str, kind: str, debezium: bool) -> Any:
    if typ == "string":
        return ["null", "string"] if kind == "nullable_text" else "string"
    if typ == "decimal(12,2)":
        t: dict[str, Any] = {"type": "bytes", "logicalType": "decimal", "precision": 12,
                             "scale": 2}
        if debezium:
            t.update({"connect.name": "org.apache.kafka.connect.data.Decimal",
                      "connect.parameters": {"scale": "2", "connect.decimal.precision": "12"}})
        return t
    if typ == "timestamp":
        if debezium:
            return {"type": "long", "connect.name": "io.debezium.time.Timestamp"}
        return {"type": "long", "logicalType": "timestamp-millis"}
    if typ == "array<string>":
        return {"type": "array", "items": "string"}
    if typ == "map<string,string>":
        return {"type": "map", "values": "string"}
    return typ


def row_schema(w: Workload, debezium: bool) -> dict[str, Any]:
    fields = [{"name": n, "type": t} for n, t in w.key_columns()]
    fields += [{"name": n, "type": _avro_type(t, k, debezium)} for n, t, k in w.value_columns()]
    return {"type": "record", "name": "Value", "namespace": "bench.public.bench",
            "fields": fields}


def envelope_schema(w: Workload) -> dict[str, Any]:
    source = {"type": "record", "name": "Source", "namespace": "io.debezium.connector.postgresql",
              "fields": [{"name": n, "type": "string"} for n in
                         ("version", "connector", "name", "db", "schema", "table")]
              + [{"name": "ts_ms", "type": "long"}, {"name": "lsn", "type": ["null", "long"]}]}
    row = row_schema(w, True)
    return {"type": "record", "name": "Envelope", "namespace": "bench.public.bench",
            "fields": [{"name": "before", "type": ["null", row]},
                       {"name": "after", "type": ["null", "Value"]},
                       {"name": "source", "type": source},
                       {"name": "op", "type": "string"},
                       {"name": "ts_ms", "type": ["null", "long"]}]}


def _values(rnd: random.Random, cols: list[tuple[str, str, str]], k: int, i: int, avro: bool,
            debezium: bool) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name, _, kind in cols:
        if kind == "ascii":
            v: Any = f"user-{k}-{WORDS[i % 8]}"
        elif kind == "text":
            v = f"{UNICODE_WORDS[i % 10]} {k}"
        elif kind == "nullable_text":
            v = None if i % 3 == 0 else f"{UNICODE_WORDS[(i + k) % 10]}-{WORDS[k % 8]}"
        elif kind == "double":
            v = rnd.random() * 1000
        elif kind == "boolean":
            v = i % 2 == 0
        elif kind == "long":
            v = rnd.randrange(1 << 40)
        elif kind == "decimal":
            cents = rnd.randrange(-10**9, 10**9)
            v = decimal.Decimal(cents).scaleb(-2) if avro else f"{cents / 100:.2f}"
        elif kind == "timestamp":
            ms = 1_700_000_000_000 + rnd.randrange(10**10)
            if avro and not debezium:
                v = EPOCH + dt.timedelta(milliseconds=ms)
            elif debezium:
                v = ms
            else:
                v = (EPOCH + dt.timedelta(milliseconds=ms)).isoformat(
                    timespec="milliseconds").replace("+00:00", "Z")
        elif kind == "array":
            v = WORDS[: i % 4]
        else:  # map
            v = {WORDS[j]: UNICODE_WORDS[(k + j) % 10] for j in range(i % 3)}
        row[name] = v
    return row


def _key_bytes(w: Workload) -> Callable[[int], tuple[bytes, dict[str, Any]]]:
    if w.key == "int":
        return lambda k: (k.to_bytes(4, "big", signed=True), {"id": k})
    if w.key == "long":
        return lambda k: (k.to_bytes(8, "big", signed=True), {"id": k})
    if w.key == "string":
        return lambda k: (f"cust-{k:08d}".encode(), {"id": f"cust-{k:08d}"})

    def composite(k: int) -> tuple[bytes, dict[str, Any]]:
        obj = {"region": REGIONS[k % 5], "id": k}
        return orjson.dumps(obj), obj
    return composite


def changelog(w: Workload, n: int, registry: Any = None, seed: int = 1
              ) -> Iterator[tuple[bytes | None, bytes | None]]:
    """`n` (key, value) records of workload `w`; Avro ones register their schema in
    `registry` (a FileRegistry) under subject `bench-value`."""
    rnd = random.Random(seed)
    key_of = _key_bytes(w)
    cols = w.value_columns()
    debezium = w.value.startswith("debezium")
    encode: Callable[[Any], bytes]
    if w.avro:
        schema = envelope_schema(w) if debezium else row_schema(w, False)
        sid = registry.register("bench-value", schema)
        parsed = parse_schema(schema)
        head = b"\x00" + sid.to_bytes(4, "big")

        def encode(datum: Any) -> bytes:
            out = io.BytesIO()
            out.write(head)
            schemaless_writer(out, parsed, datum)
            return out.getvalue()
    else:
        encode = orjson.dumps
    source = {"version": "2.5.0.Final", "connector": "postgresql", "name": "bench", "db": "db",
              "schema": "public", "table": "bench", "ts_ms": 0, "lsn": None}
    seen: set[int] = set()
    for i in range(n):
        k = i if w.keys >= n else rnd.randrange(w.keys)
        kb, key_fields = key_of(k)
        delete = rnd.random() < 0.02
        if not debezium:
            yield kb, None if delete else encode(key_fields | _values(rnd, cols, k, i, w.avro,
                                                                      False))
            continue
        row = key_fields | _values(rnd, cols, k, i, w.avro, True)
        op = "d" if delete else ("u" if k in seen else "c")
        if delete:
            seen.discard(k)
        else:
            seen.add(k)
        env = {"before": row if op != "c" else None, "after": None if delete else row,
               "source": source, "op": op, "ts_ms": 1_700_000_000_000 + i}
        yield kb, encode(env)
        if delete:
            yield kb, None

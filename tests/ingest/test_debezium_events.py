"""Debezium's own event sequences, as its connectors write them, applied to a table on real
LMDB: a primary-key update (a DELETE and tombstone for the old key, a CREATE for the new,
possibly on two partitions, applied in either order), tombstones with and without
`tombstones.on.delete`, incremental-snapshot `r` events between streaming ones, and the
records of Debezium's other topics (heartbeats, transaction metadata, schema changes,
logical decoding messages, truncates) when a relation is pointed at them: each is a counted
rejection or drop, never a row."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connectors.registry import FileRegistry
from materializer.formats.wire import avro_encoder
from materializer.testing import FakeRecord
from tests.ingest.test_apply_rules import Harness, spec_of
from tests.ingest.test_debezium_unavailable import AvroHarness

SOURCE = {"version": "2.5.0.Final", "connector": "postgresql", "name": "dbserver1",
          "ts_ms": 1700000000000, "snapshot": "false", "db": "inventory",
          "sequence": '["1","2"]', "schema": "inventory", "table": "customers", "txId": 7,
          "lsn": 1, "xmin": None}


def table(tmp_path: Path, with_: str = "changes_topic='c'") -> Harness:
    return Harness(tmp_path, spec_of(
        "CREATE TABLE t (id INT PRIMARY KEY, name STRING) WITH (kafka_topic='t', "
        f"key_format='JSON', value_format='debezium-json', on_error='skip', {with_})"))


def key(i: int) -> bytes:
    return json.dumps({"id": i}).encode()


def event(op: str, before: Any, after: Any, snapshot: str = "false") -> bytes:
    return json.dumps({"before": before, "after": after, "op": op, "ts_ms": 1,
                       "source": {**SOURCE, "snapshot": snapshot},
                       "transaction": None}).encode()


def a_row(i: int, name: str) -> dict[str, Any]:
    return {"id": i, "name": name}


@pytest.mark.parametrize("old_first", [True, False])
def test_a_key_update_across_partitions_ends_right_in_either_order(tmp_path: Path,
                                                                   old_first: bool) -> None:
    """UPDATE ... SET id = 2 WHERE id = 1: Debezium writes a DELETE and a tombstone for key
    1 (on its partition, 0) and a CREATE for key 2 (on its partition, 1)."""
    h = table(tmp_path)
    h.apply([FakeRecord(key(1), event("c", None, a_row(1, "a")), 0)], partition=0)
    old = [FakeRecord(key(1), event("d", a_row(1, "a"), None), 1),
           FakeRecord(key(1), None, 2)]
    new = [FakeRecord(key(2), event("c", None, a_row(2, "a")), 0)]
    steps = [(0, old, 1), (1, new, 0)]
    for partition, records, start in steps if old_first else steps[::-1]:
        out = h.apply(records, partition=partition, start=start)
        assert out.rejected == [] and out.fatal is None
        if partition == 0:
            assert [(c.op, c.key, c.before, c.after) for c in out.changes] == [
                ("d", (1,), (1, "a"), None)]
            assert (out.applied, out.unchanged) == (1, 1)  # the tombstone finds no row
        else:
            assert [(c.op, c.key, c.after) for c in out.changes] == [("c", (2,), (2, "a"))]
    assert h.rows() == [a_row(2, "a")]


def test_key_updates_back_and_forth(tmp_path: Path) -> None:
    """1 -> 2 -> 1: each key's events stay in its partition, in order."""
    h = table(tmp_path)
    h.apply([FakeRecord(key(1), event("c", None, a_row(1, "a")), 0),
             FakeRecord(key(1), event("d", a_row(1, "a"), None), 1),
             FakeRecord(key(1), None, 2),
             FakeRecord(key(1), event("c", None, a_row(1, "b")), 3)], partition=0)
    h.apply([FakeRecord(key(2), event("c", None, a_row(2, "a")), 0),
             FakeRecord(key(2), event("d", a_row(2, "a"), None), 1),
             FakeRecord(key(2), None, 2)], partition=1)
    assert h.rows() == [a_row(1, "b")]


@pytest.mark.parametrize("with_", ["changes_topic='c'", "partial_update='name'",
                                   "on_existing='ignore'"])
@pytest.mark.parametrize("tombstones", [True, False])
def test_deletes_with_and_without_tombstones(tmp_path: Path, with_: str, tombstones: bool
                                             ) -> None:
    h = table(tmp_path, with_)
    recs: list[tuple[Any, Any]] = [(1, json.loads(event("c", None, a_row(1, "a")))),
                                   (1, json.loads(event("d", a_row(1, "a"), None)))]
    if tombstones:
        recs.append((1, None))
    recs += [(3, None),  # a tombstone for a key that never had a row
             (4, json.loads(event("d", a_row(4, "x"), None)))]  # a delete of an absent key
    out = h.feed(*recs)
    assert out.rejected == [] and h.rows() == []
    assert (out.applied, out.unchanged) == (2, len(recs) - 2)
    out = h.feed((1, json.loads(event("c", None, a_row(1, "b")))))  # the key comes back
    assert out.applied == 1 and h.rows() == [a_row(1, "b")]


def test_incremental_snapshot_reads_between_streaming_events(tmp_path: Path) -> None:
    """Debezium's watermarks drop a chunk's row that a streaming event changed inside the
    window, so an `r` it emits holds the row as of its place in the topic: applied in
    order, it sets what the streaming events before it left (and changes nothing)."""
    h = table(tmp_path, "changes_topic='c', changes_columns=true")
    out = h.feed((1, json.loads(event("r", None, a_row(1, "a"), "first"))),
                 (2, json.loads(event("r", None, a_row(2, "b"), "last"))),
                 (1, json.loads(event("u", None, a_row(1, "a2")))),
                 (1, json.loads(event("r", None, a_row(1, "a2"), "incremental"))),
                 (2, json.loads(event("d", a_row(2, "b"), None))),
                 (3, json.loads(event("r", None, a_row(3, "c"), "incremental"))),
                 (3, json.loads(event("u", None, a_row(3, "c2")))))
    assert out.rejected == []
    assert [(c.op, c.key) for c in out.changes] == [
        ("c", (1,)), ("c", (2,)), ("u", (1,)), ("d", (2,)), ("c", (3,)), ("u", (3,))]
    assert out.unchanged == 1  # the `r` repeating the update
    assert h.rows() == [a_row(1, "a2"), a_row(3, "c2")]


def w(name: str, fields: list[tuple[str, str]], payload: Any) -> dict[str, Any]:
    """JsonConverter's wrapper (schemas.enable=true) of a struct."""
    return {"schema": {"type": "struct", "name": name, "optional": False, "fields": [
        {"field": f, "type": t, "optional": False} for f, t in fields]}, "payload": payload}


MESSAGE = {"op": "m", "ts_ms": 1, "source": SOURCE,
           "message": {"prefix": "audit", "content": "aGVsbG8="}}
TRUNCATE = {"op": "t", "ts_ms": 1, "source": SOURCE}  # no before, no after
HEARTBEAT = w("io.debezium.connector.common.Heartbeat", [("ts_ms", "int64")],
              {"ts_ms": 1700000000000})
BEGIN = {"status": "BEGIN", "id": "571:53195829", "ts_ms": 1, "event_count": None,
         "data_collections": None}
END = {**BEGIN, "status": "END", "event_count": 2,
       "data_collections": [{"data_collection": "inventory.customers", "event_count": 2}]}
SCHEMA_CHANGE = {"source": SOURCE, "ts_ms": 1, "databaseName": "inventory",
                 "schemaName": None, "ddl": "ALTER TABLE customers ADD COLUMN x INT",
                 "tableChanges": []}


@pytest.mark.parametrize(("record", "reason"), [
    # the records as Debezium keys them
    ((w("io.debezium.connector.postgresql.MessageKey", [("prefix", "string")],
        {"prefix": "audit"}), MESSAGE), "key_mismatch"),
    ((w("io.debezium.connector.common.ServerNameKey", [("serverName", "string")],
        {"serverName": "dbserver1"}), HEARTBEAT), "key_mismatch"),
    (({"id": "571:53195829"}, BEGIN), "key_mismatch"),
    (({"databaseName": "inventory"}, SCHEMA_CHANGE), "key_mismatch"),
    # the same values under a key that fits the table
    ((1, MESSAGE), "unsupported_op"),
    ((1, TRUNCATE), "unsupported_op"),
    ((1, HEARTBEAT), "not_debezium"),
    ((1, BEGIN), "not_debezium"),
    ((1, END), "not_debezium"),
    ((1, SCHEMA_CHANGE), "not_debezium"),
])
def test_records_of_debezium_s_other_topics_are_rejected(tmp_path: Path, record: Any,
                                                         reason: str) -> None:
    h = table(tmp_path)
    h.feed((1, json.loads(event("c", None, a_row(1, "a")))))
    out = h.feed(record)
    assert [r.reason for r in out.rejected] == [reason] and out.changes == []
    assert h.rows() == [a_row(1, "a")]


def test_a_truncate_with_a_null_key_is_an_unsupported_op(tmp_path: Path) -> None:
    """As Debezium writes it: no key. It was dropped as a null key (counted under NULL
    KEYS only) and the table went on serving every row the source had emptied; it is the
    truncate's `unsupported_op`, routed by `on_error` (here skip; by default the worker
    stops saying to rebuild). Other records without a key stay `null_key`."""
    h = table(tmp_path)
    h.feed((1, json.loads(event("c", None, a_row(1, "a")))))
    out = h.apply([FakeRecord(None, json.dumps(TRUNCATE).encode(), 1),
                   FakeRecord(None, event("c", None, a_row(2, "b")), 2)], start=1)
    truncate, keyless = out.rejected
    assert (truncate.reason, truncate.policy) == ("unsupported_op", "skip")
    assert "a truncate" in truncate.message and "rebuild" in truncate.message
    assert (keyless.reason, keyless.policy) == ("null_key", "drop")
    assert h.rows() == [a_row(1, "a")]


def avro_value(extra: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "record", "name": "Value", "fields": [
        {"name": "id", "type": "int"}, {"name": "name", "type": ["null", "string"],
                                        "default": None}, *extra]}


def avro_envelope(value: dict[str, Any], source_extra: list[dict[str, Any]]
                  ) -> dict[str, Any]:
    snapshot = {"type": "string", "connect.version": 1, "connect.name": "io.debezium.data.Enum",
                "connect.parameters": {"allowed": "true,last,false,incremental"},
                "connect.default": "false"}
    source = {"type": "record", "name": "Source", "namespace": "io.debezium.connector.postgresql",
              "fields": [{"name": "version", "type": "string"},
                         {"name": "snapshot", "type": [snapshot, "null"], "default": "false"},
                         {"name": "lsn", "type": ["null", "long"], "default": None},
                         *source_extra]}
    return {"type": "record", "name": "Envelope", "namespace": "dbserver1.inventory.customers",
            "fields": [{"name": "before", "type": ["null", value], "default": None},
                       {"name": "after", "type": ["null", "Value"], "default": None},
                       {"name": "source", "type": source}, {"name": "op", "type": "string"},
                       {"name": "ts_ms", "type": ["null", "long"], "default": None}]}


def test_debezium_avro_a_column_added_mid_stream(tmp_path: Path) -> None:
    """ALTER TABLE ADD COLUMN: Debezium's next records carry a new writer schema with the
    optional field (and here a `source` with fields no reader knows, of every Avro type)."""
    reg = FileRegistry(tmp_path / "registry")
    unknown = [{"name": "m", "type": {"type": "map", "values": "long"}},
               {"name": "a", "type": {"type": "array", "items": ["null", "string"]}},
               {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["X", "Y"]}},
               {"name": "f", "type": {"type": "fixed", "name": "F", "size": 3}},
               {"name": "r", "type": {"type": "record", "name": "R",
                                      "fields": [{"name": "q", "type": "double"}]}},
               {"name": "ts_us", "type": ["null", "long"], "default": None}]
    v1 = avro_encoder(reg, "t-value", avro_envelope(avro_value([]), []))
    v2 = avro_encoder(reg, "t-value", avro_envelope(avro_value(
        [{"name": "email", "type": ["null", "string"], "default": None}]), unknown))
    src1 = {"version": "2.5.0.Final", "snapshot": "last", "lsn": 1}
    src2 = {**src1, "snapshot": "false", "m": {"k": 1}, "a": [None, "x"], "e": "Y",
            "f": b"abc", "r": {"q": 1.5}, "ts_us": 5}

    def env(op: str, after: Any, source: dict[str, Any]) -> dict[str, Any]:
        return {"before": None, "after": after, "source": source, "op": op, "ts_ms": 1}

    spec = spec_of("CREATE TABLE t (id INT PRIMARY KEY, name STRING, email STRING) WITH "
                   "(kafka_topic='t', key_format='JSON', value_format='debezium-avro', "
                   "on_error='skip', changes_topic='c')")
    h = AvroHarness(tmp_path / "data", spec, registry=reg)
    out = h.apply([FakeRecord(key(1), v1(env("r", a_row(1, "a"), src1)), 0),
                   FakeRecord(key(2), v1(env("r", a_row(2, "b"), src1)), 1),
                   FakeRecord(key(1), v2(env("u", {**a_row(1, "a"), "email": "a@x"}, src2)), 2),
                   FakeRecord(key(3), v2(env("c", {**a_row(3, "c"), "email": None}, src2)), 3),
                   FakeRecord(key(4), v2(env("u", None, src2)), 4),
                   FakeRecord(key(4), v2(env("t", None, src2)), 5),
                   FakeRecord(key(2), v2(env("d", None, src2)), 6),
                   FakeRecord(None, v2(env("t", None, src2)), 7)])  # a truncate as written
    assert [(r.offset, r.reason) for r in out.rejected] == [(4, "not_debezium"),
                                                           (5, "unsupported_op"),
                                                           (7, "unsupported_op")]
    assert h.rows() == [{**a_row(1, "a"), "email": "a@x"}, {**a_row(3, "c"), "email": None}]

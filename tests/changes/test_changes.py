"""Change events without a broker: envelopes, Avro schema, placement hash, outbox staging
(Connect JSON schemas: test_connect_schemas.py)."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import marshal
import uuid
from pathlib import Path
from typing import Any, cast

import fastavro
import pytest

from connectors.partitioners import murmur2, partition_for
from connectors.producer import Sink
from connectors.registry import FileRegistry
from materializer.changes.avro_envelope import (
    AvroEnvelope,
    avro_name,
    envelope_schema,
    key_schema,
)
from materializer.changes.envelope import JsonEnvelope, encoder_for
from materializer.changes.event import Change
from materializer.changes.outbox import OUTBOX_DB, ChangeOutbox
from materializer.errors import ConfigError, InfrastructureError, UsageError
from materializer.formats.base import DELETE
from materializer.formats.codecs import key_decoder, value_decoder
from materializer.specs import ChangesSpec, TableSpec, storage_identity
from materializer.store import RelationWriter
from tests.support.changes import JSON_ROW, ROW, source, stored, table


def test_json_envelope_c_u_d_and_tombstone() -> None:
    spec = table()
    enc = JsonEnvelope(spec, spec.column_names)
    row1 = stored(spec, ROW)
    row2 = stored(spec, {**ROW, "name": "Bob"})
    key = (7,)
    msgs = enc.encode([
        Change("c", 2, 40, 1000, key, None, row1),
        Change("u", 2, 41, 1001, key, row1, row2),
        Change("d", 2, 42, 1002, key, row2, None),
    ], now_ms=5)
    assert [m[0] for m in msgs] == [2, 2, 2, 2]
    assert {m[1] for m in msgs} == {b'{"id":7}'}
    assert msgs[3][2] is None  # the tombstone after the delete
    c, u, d = (json.loads(m[2]) for m in msgs[:3] if m[2] is not None)
    assert c == {"before": None, "after": JSON_ROW, "op": "c", "ts_ms": 5,
                 "source": source(2, 40, 1000)}
    assert u["before"] == JSON_ROW and u["after"] == {**JSON_ROW, "name": "Bob"}
    assert u["op"] == "u" and "changed" not in u
    assert d["before"] == {**JSON_ROW, "name": "Bob"} and d["after"] is None
    assert d["source"]["offset"] == 42


def test_json_envelope_changed_columns_and_short_rows() -> None:
    spec = table(ChangesSpec(topic="x", columns=True),
                 {"id": "int", "a": "string", "b": "long", "c": "string"})
    enc = JsonEnvelope(spec, spec.column_names)
    old_short = (1, "x", 2)  # stored before nullable column `c` was added
    new = (1, "y", 2, "z")
    (msg,) = enc.encode([Change("u", 0, 9, 0, (1,), old_short, new)], 0)
    ev = json.loads(msg[2] or b"")
    assert ev["before"] == {"id": 1, "a": "x", "b": 2, "c": None}
    assert ev["changed"] == ["a", "c"]
    (cmsg,) = enc.encode([Change("c", 0, 9, 0, (1,), None, new)], 0)
    assert "changed" not in json.loads(cmsg[2] or b"")


def test_json_composite_key_is_a_json_object_of_key_columns() -> None:
    spec = table(columns={"day": "date", "shop": "string", "n": "long"}, key=("day", "shop"))
    enc = JsonEnvelope(spec, spec.column_names)
    (msg,) = enc.encode([Change("c", 0, 0, 0, (19000, "s1"), None, (19000, "s1", 3))], 0)
    assert msg[1] == b'{"day":"2022-01-08","shop":"s1"}'
    # what key_format json reads back, so a change topic can be a source again
    assert key_decoder(table(columns={"day": "date", "shop": "string", "n": "long"},
                             key=("day", "shop")))(msg[1]) == (19000, "s1")


def test_json_envelope_reads_back_as_debezium_json() -> None:
    src = table()
    sink_spec = TableSpec(name="copy", topic="items.changes", columns=src.columns,
                          key_columns=("id",), key_format="json",
                          value_format="debezium-json")
    enc = JsonEnvelope(src, src.column_names)
    row = stored(src, ROW)
    msgs = enc.encode([Change("c", 0, 0, 0, (7,), None, row),
                       Change("d", 0, 1, 0, (7,), row, None)], 0)
    dec = value_decoder(sink_spec)
    fields = dec(msgs[0][2] or b"")
    assert stored(sink_spec, dict(fields)) == row
    assert dec(msgs[1][2] or b"") is DELETE
    assert key_decoder(sink_spec)(msgs[0][1]) == (7,)


def test_avro_names_are_valid() -> None:
    assert avro_name("1st.col{x}") == "_1st_col_x_"
    assert avro_name("ok_name") == "ok_name"
    spec = table(columns={"id": "int", "a.b": "string", "a_b": "string", "9": "long"})
    schema = envelope_schema(spec, spec.column_names)
    fields = schema["fields"][0]["type"][1]["fields"]
    assert [f["name"] for f in fields] == ["id", "a_b", "a_b_", "_9"]
    assert schema["namespace"] == "materializer.shop.items"
    fastavro.parse_schema(schema)


def test_avro_envelope_wire_format_and_registry(tmp_path: Path) -> None:
    spec = table(ChangesSpec(topic="items.changes", format="debezium-avro", columns=True))
    reg = FileRegistry(tmp_path / "reg")
    enc = encoder_for(spec, spec.column_names, reg)
    assert isinstance(enc, AvroEnvelope)
    assert reg.latest_id("items.changes-value") == enc.schema_id
    row1 = stored(spec, ROW)
    row2 = stored(spec, {**ROW, "price": "13"})
    msgs = enc.encode([Change("u", 1, 5, 77, (7,), row1, row2),
                       Change("d", 1, 6, 78, (7,), row2, None)], now_ms=9)
    assert len(msgs) == 3 and msgs[2] == (1, msgs[0][1], None) == (1, msgs[1][1], None)
    # the key: an Avro record of the key columns in the wire format, under <topic>-key
    key = msgs[0][1]
    assert key[0] == 0 and int.from_bytes(key[1:5], "big") == enc.key_schema_id
    assert reg.latest_id("items.changes-key") == enc.key_schema_id
    assert fastavro.schemaless_reader(io.BytesIO(key[5:]), reg.schema(enc.key_schema_id)) \
        == {"id": 7}
    body = msgs[0][2] or b""
    assert body[0] == 0 and int.from_bytes(body[1:5], "big") == enc.schema_id
    ev = cast(dict[str, Any],
              fastavro.schemaless_reader(io.BytesIO(body[5:]), reg.schema(enc.schema_id)))
    assert ev["op"] == "u" and ev["ts_ms"] == 9 and ev["changed"] == ["price"]
    assert ev["source"] == source(1, 5, 77)
    after = ev["after"]
    assert after["price"] == decimal.Decimal("13.00")
    assert after["born"] == dt.date(1990, 3, 4)
    assert after["at"] == dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)
    assert after["t"] == dt.time(10, 11, 12, 500000)
    assert after["blob"] == b"\x00\x01\x02\xff"
    assert str(after["u"]) == str(uuid.UUID(ROW["u"]))
    assert json.loads(after["doc"]) == ROW["doc"]
    assert after["attrs"] == {"k": decimal.Decimal("1.2"), "n": None}
    # the materializer's own debezium-avro decoder reads it back to the same row
    copy = TableSpec(name="copy", topic="items.changes", columns=spec.columns,
                     key_columns=("id",), key_format="json", value_format="debezium-avro")
    fields = value_decoder(copy, reg)(body)
    assert stored(copy, dict(fields)) == row2
    avro_keys = TableSpec(name="copy", topic="items.changes", columns=spec.columns,
                          key_columns=("id",), key_format="avro", value_format="debezium-avro")
    assert key_decoder(avro_keys, reg)(key) == (7,)
    assert value_decoder(copy, reg)(msgs[1][2] or b"") is DELETE


def test_avro_key_schema_uses_the_row_field_types(tmp_path: Path) -> None:
    """A composite key of logical types: the key record's fields are the envelope's row
    fields of the key columns (same names, same Avro types), and read back as the key."""
    cols = {"day": "date", "sku": "decimal(8,2)", "at": "timestamp", "u": "uuid",
            "n": "long"}
    spec = table(ChangesSpec(topic="k.changes", format="debezium-avro"), cols,
                 key=("day", "sku", "at", "u"))
    reg = FileRegistry(tmp_path / "reg")
    enc = encoder_for(spec, spec.column_names, reg)
    assert isinstance(enc, AvroEnvelope)
    kschema = key_schema(spec, spec.column_names)
    row_fields = {f["name"]: f["type"]
                  for f in envelope_schema(spec, spec.column_names)["fields"][0]["type"][1][
                      "fields"]}
    assert kschema["name"] == "Key" and kschema["namespace"] == "materializer.shop.items"
    assert [(f["name"], f["type"]) for f in kschema["fields"]] == [
        (n, row_fields[n]) for n in ("day", "sku", "at", "u")]
    kt = (19000, "12.50", 1_700_000_000_123_456, "0e0b6a2c-3c53-4e4b-9a7e-9b8e2d1f0a11")
    (msg,) = enc.encode([Change("c", 0, 0, 0, kt, None, (*kt, 3))], 0)
    assert reg.latest_id("k.changes-key") == enc.key_schema_id
    copy = TableSpec(name="copy", topic="k.changes", columns=spec.columns,
                     key_columns=spec.key_columns, key_format="avro",
                     value_format="debezium-avro")
    assert key_decoder(copy, reg)(msg[1]) == kt
    (again,) = enc.encode([Change("u", 0, 1, 0, kt, (*kt, 3), (*kt, 4))], 0)
    assert again[1] == msg[1]  # equal keys, equal bytes: one change-topic partition


def test_avro_needs_a_registry() -> None:
    spec = table(ChangesSpec(topic="x", format="debezium-avro"))
    with pytest.raises(ConfigError, match="schema_registry"):
        encoder_for(spec, spec.column_names, None)


def test_murmur2_matches_kafka() -> None:
    # Kafka's UtilsTest.testMurmur2 vectors
    cases = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536,
             b"a-little-bit-longer-string": -1486304829,
             b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
             b"abc": 479470107}
    for data, want in cases.items():
        assert murmur2(data) == want
    assert partition_for(b"21", 7) == (-973932308 & 0x7FFFFFFF) % 7


# ----------------------------------------------------------------------------- outbox


@pytest.fixture
def writer(tmp_path: Path) -> RelationWriter:
    spec = table()
    w = RelationWriter(tmp_path / "data", spec.name, 1 << 28)
    w.write_meta(storage_identity(spec), spec.column_names)
    return w


def idle_sink(extra: dict[str, Any] | None = None) -> Sink:
    """A Sink whose broker never answers (`extra`: more producer settings)."""
    return Sink({"bootstrap.servers": "127.0.0.1:9"}, {"log_level": 0, **(extra or {})})


def test_sink_flush_raises_for_every_failed_message() -> None:
    """Delivery reports come for failures only: a failed message still fails `flush`,
    named, with or without an explicit partition or headers."""
    sink = idle_sink({"message.timeout.ms": 200})
    sink.produce("events", b"k", b"v")
    sink.produce("events", b"k", b"v", partition=0)
    sink.produce("events", None, None, headers=[("h", b"1")])
    with pytest.raises(InfrastructureError) as e:
        sink.flush(10)
    assert str(e.value).count("events: ") == 3
    assert "_MSG_TIMED_OUT" in str(e.value)
    sink.flush(1)  # the failures were reported once: nothing is left to fail


def test_stage_commits_and_aborts_with_the_rows(writer: RelationWriter) -> None:
    spec = table()
    outbox = ChangeOutbox(spec, writer, spec.column_names, idle_sink(), 4, max_backlog=3)
    row = stored(spec, ROW)
    with pytest.raises(RuntimeError), writer.begin() as wb:
        outbox.stage(wb, [Change("c", 0, 0, 0, (7,), None, row)])
        raise RuntimeError("the batch fails before commit")
    assert outbox.backlog() == 0
    with writer.begin() as wb:
        outbox.stage(wb, [Change("c", 0, 1, 0, (7,), None, row),
                          Change("d", 0, 2, 0, (7,), row, None)])
        outbox.stage(wb, [])
    assert outbox.backlog() == 3 and not outbox.full
    # a restarted outbox continues the sequence after what is still there
    again = ChangeOutbox(spec, writer, spec.column_names, idle_sink(), 4, max_backlog=3)
    with writer.begin() as wb:
        again.stage(wb, [Change("c", 1, 0, 0, (8,), None, row)])
    assert again.backlog() == 4 and again.full
    items = writer.side_table(OUTBOX_DB).first_items(10)
    keys = [k for k, _ in items]
    assert keys == sorted(keys) and len(keys) == 4
    entries = [marshal.loads(raw) for _, raw in items]  # (source partition, key, value)
    assert [(p, json.loads(v)["source"]["offset"] if v else None) for p, _, v in entries] \
        == [(0, 1), (0, 2), (0, None), (1, 0)]


def test_shared_outboxes_number_after_each_other_and_only_the_drainer_drains(
        writer: RelationWriter) -> None:
    """Two stagers of one outbox (as two worker processes): each batch numbers its events
    after the largest key inside its own transaction, so keys follow commit order; a
    stager keeps nothing in memory and its `drain` sends nothing."""
    spec = table()
    a = ChangeOutbox(spec, writer, spec.column_names, idle_sink(), 4, shared=True)
    b = ChangeOutbox(spec, writer, spec.column_names, idle_sink(), 4, shared=True,
                     drains=False)
    row = stored(spec, ROW)
    for outbox, offsets in ((a, (0, 1)), (b, (5,)), (a, (2,)), (b, (6, 7))):
        with writer.begin() as wb:
            outbox.stage(wb, [Change("c", 0, o, 0, (o,), None, row) for o in offsets])
    items = writer.side_table(OUTBOX_DB).first_items(10)
    assert [int.from_bytes(k, "big") for k, _ in items] == list(range(6))
    offsets = [json.loads(marshal.loads(raw)[2])["source"]["offset"] for _, raw in items]
    assert offsets == [0, 1, 5, 2, 6, 7]  # commit order, nothing overwritten
    assert a._hot == [] and b._hot == []
    assert b.drain() == 0 and b.backlog() == 6


def test_outbox_needs_changes(writer: RelationWriter) -> None:
    spec = TableSpec(name="shop.items", topic="items", columns=table().columns,
                     key_columns=("id",))
    with pytest.raises(UsageError):
        ChangeOutbox(spec, writer, spec.column_names, idle_sink(), 1)


def test_reserved_database_names(writer: RelationWriter) -> None:
    for name in (b"meta", b"p:0"):
        with pytest.raises(UsageError):
            writer.side_table(name)


OLD_SOURCE = {"type": "record", "name": "Source", "fields": [
    {"name": "name", "type": "string"}, {"name": "table", "type": "string"},
    {"name": "topic", "type": "string"}, {"name": "partition", "type": "int"},
    {"name": "offset", "type": "long"}, {"name": "ts_ms", "type": "long"}]}
"""The source record of the first envelopes (before Debezium's required fields)."""


def test_envelope_evolution_reads_events_of_the_first_schema() -> None:
    """The source fields added since (version, connector, snapshot, db) have defaults, so
    a registry's BACKWARD check passes and the new schema reads the older events."""
    spec = table(ChangesSpec(topic="items.changes", format="debezium-avro"),
                 {"id": "int not null", "n": "long"})
    new = envelope_schema(spec, spec.column_names)
    old = json.loads(json.dumps(new))
    old["fields"] = [dict(f, type=OLD_SOURCE) if f["name"] == "source" else f
                     for f in old["fields"]]
    event = {"before": None, "after": {"id": 1, "n": 2}, "op": "c", "ts_ms": 9,
             "source": {"name": "materializer", "table": "shop.items", "topic": "items",
                        "partition": 0, "offset": 3, "ts_ms": 8}}
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(old), event)
    got = fastavro.schemaless_reader(io.BytesIO(buf.getvalue()), fastavro.parse_schema(old),
                                     fastavro.parse_schema(new))
    assert isinstance(got, dict)
    assert got["source"] == {**event["source"], "version": "", "connector": "materializer",
                             "snapshot": "false", "db": ""}


def test_schema_template_is_what_the_worker_registers() -> None:
    """schemas/change-envelope.avsc documents the envelope for SPEC's shop.users."""
    path = Path(__file__).resolve().parents[2] / "schemas" / "change-envelope.avsc"
    template = json.loads(path.read_text())
    template.pop("doc")
    spec = table(ChangesSpec(topic="shop.users.changes", format="debezium-avro"),
                 {"id": "int not null", "name": "string", "age": "long", "email": "string"},
                 name="shop.users")
    assert template == envelope_schema(spec, spec.column_names)

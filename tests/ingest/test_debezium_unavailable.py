"""Debezium's placeholder of an unavailable value (`__debezium_unavailable_value`: a TOASTed
PostgreSQL value an UPDATE left unchanged, under REPLICA IDENTITY DEFAULT) keeps the stored
value; with no stored row to keep it from, the record is a bad record (unavailable_value),
never a row holding the placeholder (`materializer.ingest.unavailable`)."""

from __future__ import annotations

import decimal
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connectors.registry import FileRegistry
from materializer.changes.envelope import JsonEnvelope
from materializer.errors import RecordError
from materializer.formats import codecs
from materializer.formats.wire import avro_encoder
from materializer.ingest.jsonrow import MISSES_TO_STOP, row_decoder
from materializer.ingest.relation import open_relation
from materializer.ingest.shaper import compile_shaper
from materializer.ingest.unavailable import two_steps
from materializer.testing import FakeRecord
from tests.ingest.test_apply_rules import Harness, spec_of

P = "__debezium_unavailable_value"
P_B64 = "X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ=="
COLS = ("id INT PRIMARY KEY, note STRING, blob BYTES, doc JSON, tags ARRAY<STRING>, "
        "nums ARRAY<BIGINT>, price DECIMAL(10,2), n BIGINT")
ROW = {"id": 1, "note": "long text", "blob": "AAEC", "doc": {"a": 1}, "tags": ["x", "y"],
       "nums": [1, 2], "price": "12.50", "n": 1}
STORED = {"id": 1, "note": "long text", "blob": b"\x00\x01\x02", "doc": {"a": 1},
          "tags": ["x", "y"], "nums": [1, 2], "price": decimal.Decimal("12.50"), "n": 1}
NUMS = list(P.encode())  # a TOASTed bigint[]: the placeholder's bytes as numbers
UNAVAILABLE = {"note": P, "blob": P_B64, "doc": P, "tags": [P], "nums": NUMS, "price": P}


def dbz(op: str, after: Any) -> dict[str, Any]:
    return {"op": op, "before": None, "after": after, "source": {"db": "x"}, "ts_ms": 1}


def harness(tmp_path: Path, with_: str = "", cols: str = COLS) -> Harness:
    return Harness(tmp_path, spec_of(
        f"CREATE TABLE t ({cols}) WITH (kafka_topic='t', key_format='JSON', "
        f"value_format='debezium-json'{', ' + with_ if with_ else ''})"))


@pytest.mark.parametrize("column", list(UNAVAILABLE))
@pytest.mark.parametrize("with_", ["", "changes_topic='c'", "on_existing='versioned', "
                                   "version_column='n'", "partial_update='note,blob,doc,"
                                   "tags,nums,price,n'", "on_existing='ignore'"])
def test_a_placeholder_keeps_the_stored_value(tmp_path: Path, column: str, with_: str
                                              ) -> None:
    h = harness(tmp_path, with_)
    assert h.feed((1, dbz("c", ROW))).rejected == []
    out = h.feed((1, dbz("u", {**ROW, column: UNAVAILABLE[column], "n": 2})))
    assert out.rejected == []
    expected = {**STORED, "n": 1 if "ignore" in with_ else 2}
    assert h.get(1) == expected  # not the placeholder, not null


def test_every_placeholder_at_once_and_the_rest_applies(tmp_path: Path) -> None:
    h = harness(tmp_path)
    h.feed((1, dbz("c", ROW)))
    out = h.feed((1, dbz("u", {**ROW, **UNAVAILABLE, "n": 5})))
    assert out.rejected == [] and out.applied == 1
    assert h.get(1) == {**STORED, "n": 5}
    h.feed((1, dbz("u", {**UNAVAILABLE, "id": 1, "n": 6})))  # within the stored row's batch
    assert h.get(1) == {**STORED, "n": 6}


def test_with_the_connect_schema_wrapper(tmp_path: Path) -> None:
    """The wrapper's Json logical type would parse the placeholder as JSON text."""
    h = harness(tmp_path, cols="id INT PRIMARY KEY, doc JSON, note STRING")
    schema = {"type": "struct", "fields": [
        {"field": "after", "type": "struct", "optional": True, "fields": [
            {"field": "id", "type": "int32"},
            {"field": "doc", "type": "string", "name": "io.debezium.data.Json"},
            {"field": "note", "type": "string"}]},
        {"field": "op", "type": "string"}]}
    h.feed((1, {"schema": schema, "payload": dbz("c", {"id": 1, "doc": '{"a": 1}',
                                                      "note": "x"})}))
    out = h.feed((1, {"schema": schema, "payload": dbz("u", {"id": 1, "doc": P,
                                                            "note": "y"})}))
    assert out.rejected == []
    assert h.get(1) == {"id": 1, "doc": {"a": 1}, "note": "y"}


@pytest.mark.parametrize("column", list(UNAVAILABLE))
@pytest.mark.parametrize("with_", ["", "changes_topic='c'", "soft_primary_key=true"])
def test_no_stored_row_is_a_bad_record(tmp_path: Path, column: str, with_: str) -> None:
    h = harness(tmp_path, f"on_error='skip'{', ' + with_ if with_ else ''}")
    if "soft" in with_:
        h.feed((1, dbz("c", ROW)))
    out = h.feed((2, dbz("u", {**ROW, "id": 2, column: UNAVAILABLE[column]})))
    (r,) = out.rejected
    assert r.reason == "unavailable_value" and repr(column) in r.message
    assert "REPLICA IDENTITY FULL" in r.message and r.message.startswith("value: ")
    assert h.get(2) is None and out.changes == []


def test_no_stored_row_under_fail_stops_the_partition(tmp_path: Path) -> None:
    h = harness(tmp_path)  # on_error defaults to fail
    out = h.feed((2, dbz("u", {**ROW, "id": 2, "note": P})))
    assert out.fatal is not None and out.fatal.reason == "unavailable_value"
    assert h.get(2) is None


def test_a_delete_still_deletes_and_a_delete_then_placeholder_is_bad(tmp_path: Path) -> None:
    h = harness(tmp_path, "on_error='skip'")
    h.feed((1, dbz("c", ROW)))
    out = h.feed((1, {"op": "d", "before": {**ROW, "note": P}, "after": None}),
                 (1, dbz("u", {**ROW, "note": P})))
    assert [r.reason for r in out.rejected] == ["unavailable_value"]
    assert h.get(1) is None


def test_a_stream_rejects_the_record(tmp_path: Path) -> None:
    h = Harness(tmp_path, spec_of(
        "CREATE STREAM s (id INT KEY, note STRING) WITH (kafka_topic='s', "
        "key_format='JSON', value_format='debezium-json', on_error='skip')"))
    out = h.feed((1, dbz("c", {"id": 1, "note": "x"})), (1, dbz("u", {"id": 1, "note": P})))
    (r,) = out.rejected
    assert r.reason == "unavailable_value" and "'note'" in r.message
    assert h.events(1) == [{"id": 1, "note": "x"}]


def test_not_null_columns(tmp_path: Path) -> None:
    h = harness(tmp_path, "on_error='skip'", "id INT PRIMARY KEY, a STRING NOT NULL, "
                "b STRING NOT NULL")
    h.feed((1, dbz("c", {"id": 1, "a": "x", "b": "y"})))
    assert h.feed((1, dbz("u", {"id": 1, "a": P, "b": "z"}))).rejected == []
    assert h.get(1) == {"id": 1, "a": "x", "b": "z"}
    (r,) = h.feed((1, dbz("u", {"id": 1, "a": P, "b": None}))).rejected
    assert r.reason == "missing_column" and "'b'" in r.message


def test_other_formats_store_the_text(tmp_path: Path) -> None:
    h = Harness(tmp_path, spec_of("CREATE TABLE t (id INT PRIMARY KEY, note STRING) WITH "
                                  "(kafka_topic='t', key_format='JSON', value_format='json')"))
    h.feed((1, {"note": P}))
    assert h.get(1) == {"id": 1, "note": P}


def test_the_change_event_carries_the_kept_value(tmp_path: Path) -> None:
    h = harness(tmp_path, "changes_topic='c', changes_columns=true",
                "id INT PRIMARY KEY, note STRING, n BIGINT")
    h.feed((1, dbz("c", {"id": 1, "note": "long", "n": 1})))
    out = h.feed((1, dbz("u", {"id": 1, "note": P, "n": 2})))
    (ch,) = out.changes
    assert (ch.op, ch.before, ch.after) == ("u", (1, "long", 1), (1, "long", 2))
    enc = JsonEnvelope(h.spec, h.spec.column_names)  # type: ignore[arg-type]
    (msg,) = [m for m in enc.encode([ch], 0) if m[2] is not None]
    ev = json.loads(msg[2] or b"")
    assert ev["after"] == {"id": 1, "note": "long", "n": 2} and ev["changed"] == ["n"]
    out = h.feed((1, dbz("u", {"id": 1, "note": P, "n": 2})))
    assert out.changes == [] and out.unchanged == 1  # only the kept value: nothing changed


# ------------------------------------------------------------------ debezium-avro

AVRO_AFTER = {"type": "record", "name": "Value", "namespace": "db.t", "fields": [
    {"name": "id", "type": "int"},
    {"name": "note", "type": ["null", "string"], "default": None},
    {"name": "blob", "type": ["null", "bytes"], "default": None},
    {"name": "n", "type": ["null", "long"], "default": None}]}
AVRO_ENVELOPE = {"type": "record", "name": "Envelope", "namespace": "db.t", "fields": [
    {"name": "before", "type": ["null", AVRO_AFTER], "default": None},
    {"name": "after", "type": ["null", "Value"], "default": None},
    {"name": "op", "type": "string"}]}


@dataclass
class AvroHarness(Harness):
    registry: FileRegistry | None = None

    def __post_init__(self) -> None:
        self.rel = open_relation(self.spec, self.data_dir, map_size=1 << 24,
                                 registry=self.registry)


def test_debezium_avro_string_and_bytes(tmp_path: Path) -> None:
    reg = FileRegistry(tmp_path / "registry")
    enc = avro_encoder(reg, "t-value", AVRO_ENVELOPE)
    spec = spec_of("CREATE TABLE t (id INT PRIMARY KEY, note STRING, blob BYTES, n BIGINT) "
                   "WITH (kafka_topic='t', key_format='JSON', value_format='debezium-avro', "
                   "on_error='skip')")
    h = AvroHarness(tmp_path / "data", spec, registry=reg)

    def feed(key: int, after: dict[str, Any]) -> Any:
        off = next(h.offsets)
        return h.apply([FakeRecord(json.dumps(key).encode(),
                                   enc({"before": None, "after": after, "op": "u"}), off, off)])

    feed(1, {"id": 1, "note": "long", "blob": b"\x00\x01", "n": 1})
    for change in ({"note": P}, {"blob": P.encode()}, {"note": P, "blob": P.encode()}):
        out = feed(1, {"id": 1, "note": "long", "blob": b"\x00\x01", "n": 2, **change})
        assert out.rejected == []
        assert h.get(1) == {"id": 1, "note": "long", "blob": b"\x00\x01", "n": 2}
    out = feed(2, {"id": 2, "note": "x", "blob": P.encode(), "n": 1})
    (r,) = out.rejected
    assert r.reason == "unavailable_value" and "'blob'" in r.message
    assert h.get(2) is None
    # the placeholder's base64 text is Debezium JSON's form, not Avro's: stored as text
    feed(1, {"id": 1, "note": P_B64, "blob": b"\x00", "n": 3})
    assert h.get(1) == {"id": 1, "note": P_B64, "blob": b"\x00", "n": 3}


# ------------------------------------------------------------------ fast paths

def test_the_fused_json_decoder_answers_as_the_two_steps() -> None:
    spec = spec_of(f"CREATE TABLE t ({COLS}, big STRING NOT NULL) WITH (kafka_topic='t', "
                   "key_format='JSON', value_format='debezium-json')")
    vdec = codecs.value_decoder(spec)
    shape = compile_shaper(spec, spec.column_names)
    fused = row_decoder(spec, spec.column_names, vdec, shape)
    assert fused.__code__.co_filename.startswith("<json row")
    general = two_steps(spec, spec.column_names, vdec, shape)
    typed = [{**ROW, c: v, "big": "b"} for c, v in UNAVAILABLE.items() if c != "nums"]
    typed += [{**ROW, "big": "b"}, {**ROW, **UNAVAILABLE, "big": P, "nums": None}]
    for after in typed:  # placeholders are no misses: the typed path stays on
        raw = json.dumps(dbz("u", after)).encode()
        for _ in range(MISSES_TO_STOP + 1):
            assert outcome(fused, raw) == outcome(general, raw)
        assert "Unavailable" in outcome(fused, raw)[1] or after["big"] == "b"
    assert fused.__globals__["_off"] == [False]
    others = [{**ROW, "big": None}, {**ROW, "note": P, "big": None},
              {**ROW, "tags": [P, P], "big": "b"}, {**ROW, "nums": [P], "big": "b"},
              {**ROW, "blob": P, "big": "b"}, {**ROW, "tags": P, "big": "b"},
              {**ROW, **UNAVAILABLE, "big": P}]
    for after in others:
        raw = json.dumps(dbz("u", after)).encode()
        assert outcome(fused, raw) == outcome(general, raw)


def outcome(f: Any, raw: bytes) -> tuple[str, Any]:
    try:
        return "ok", repr(f(raw, (1,)))
    except RecordError as e:
        return "error", (str(e), e.reason)


def test_the_avro_compiled_reader_answers_as_fastavro(tmp_path: Path) -> None:
    reg = FileRegistry(tmp_path / "registry")
    enc = avro_encoder(reg, "t-value", AVRO_ENVELOPE)
    spec = spec_of("CREATE TABLE t (id INT PRIMARY KEY, note STRING NOT NULL, blob BYTES, "
                   "n BIGINT) WITH (kafka_topic='t', key_format='JSON', "
                   "value_format='debezium-avro')")
    rows = []
    for compiled in (True, False):
        mp = pytest.MonkeyPatch()
        if not compiled:
            mp.setattr("materializer.formats.avro_wire.compile_reader", lambda *a: None)
        try:
            vdec = codecs.value_decoder(spec, reg)
            dec = row_decoder(spec, spec.column_names, vdec,
                              compile_shaper(spec, spec.column_names))
            rows.append([outcome(dec, enc({"after": a, "op": "u"})) for a in (
                {"id": 1, "note": P, "blob": P.encode(), "n": 1},
                {"id": 1, "note": "x", "blob": P.encode(), "n": 1},
                {"id": 1, "note": None, "blob": P.encode(), "n": 1},
                {"id": 1, "note": "x", "blob": b"x", "n": 1})])
        finally:
            mp.undo()
    assert rows[0] == rows[1]
    assert "Unavailable" in rows[0][0][1] and rows[0][2][0] == "error"

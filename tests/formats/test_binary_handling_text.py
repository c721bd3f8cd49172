"""A bytes column fed by a field its schema types as text (Debezium's
binary.handling.mode=hex, base64 or base64-url-safe with a Connect schema or Avro): refused
as type_mismatch, never base64-decoded into other bytes (hex `fbff0102` is valid base64 of
`7db7dfd35d36`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connectors.registry import FileRegistry
from materializer.formats.wire import avro_encoder
from materializer.testing import FakeRecord
from tests.ingest.test_apply_rules import Harness, spec_of
from tests.ingest.test_debezium_unavailable import AvroHarness, dbz

DATA = bytes([0xFB, 0xFF, 0x01, 0x02])
TEXTS = {"hex": DATA.hex(), "base64": "+/8BAg==", "base64-url-safe": "-_8BAg=="}


def wrapped(ctype: str, value: str, envelope: bool) -> dict[str, Any]:
    row = {"type": "struct", "optional": True, "fields": [
        {"field": "id", "type": "int32"}, {"field": "b", "type": ctype, "optional": True}]}
    if not envelope:  # ExtractNewRecordState, schemas.enable=true
        return {"schema": row, "payload": {"id": 1, "b": value}}
    schema = {"type": "struct", "fields": [{"field": "after", **row},
                                           {"field": "op", "type": "string"}]}
    return {"schema": schema, "payload": dbz("c", {"id": 1, "b": value})}


@pytest.mark.parametrize("fmt", ["debezium-json", "json"])
@pytest.mark.parametrize("mode", list(TEXTS))
def test_a_connect_string_for_a_bytes_column_is_refused(tmp_path: Path, fmt: str, mode: str
                                                        ) -> None:
    h = Harness(tmp_path, spec_of(
        "CREATE TABLE t (id INT PRIMARY KEY, b BYTES) WITH (kafka_topic='t', "
        f"key_format='JSON', value_format='{fmt}', on_error='skip')"))
    (r,) = h.feed((1, wrapped("string", TEXTS[mode], fmt == "debezium-json"))).rejected
    assert r.reason == "type_mismatch" and "binary.handling.mode=bytes" in r.message
    assert h.get(1) is None  # before: b'}\xb7\xdf\xd3]6' for hex


@pytest.mark.parametrize("fmt", ["debezium-json", "json"])
def test_connect_bytes_and_string_columns_still_read(tmp_path: Path, fmt: str) -> None:
    env = fmt == "debezium-json"
    h = Harness(tmp_path, spec_of(
        "CREATE TABLE t (id INT PRIMARY KEY, b BYTES) WITH (kafka_topic='t', "
        f"key_format='JSON', value_format='{fmt}')"))
    assert h.feed((1, wrapped("bytes", TEXTS["base64"], env))).rejected == []
    assert h.get(1) == {"id": 1, "b": DATA}
    s = Harness(tmp_path / "s", spec_of(
        "CREATE TABLE t (id INT PRIMARY KEY, b STRING) WITH (kafka_topic='t', "
        f"key_format='JSON', value_format='{fmt}')"))
    s.feed((1, wrapped("string", TEXTS["hex"], env)))
    assert s.get(1) == {"id": 1, "b": "fbff0102"}  # the text as Debezium wrote it


@pytest.mark.parametrize("fmt", ["debezium-avro", "avro"])
def test_an_avro_string_for_a_bytes_column_is_refused(tmp_path: Path, fmt: str) -> None:
    reg = FileRegistry(tmp_path / "registry")
    row = {"type": "record", "name": "Value", "fields": [
        {"name": "id", "type": "int"}, {"name": "b", "type": ["null", "string"]}]}
    schema = row if fmt == "avro" else {"type": "record", "name": "Envelope", "fields": [
        {"name": "after", "type": ["null", row]}, {"name": "op", "type": "string"}]}
    enc = avro_encoder(reg, "t-value", schema)
    h = AvroHarness(tmp_path / "data", spec_of(
        "CREATE TABLE t (id INT PRIMARY KEY, b BYTES) WITH (kafka_topic='t', "
        f"key_format='JSON', value_format='{fmt}', on_error='skip')"), registry=reg)
    value = {"id": 1, "b": TEXTS["hex"]}
    raw = enc(value if fmt == "avro" else {"after": value, "op": "c"})
    (r,) = h.apply([FakeRecord(json.dumps(1).encode(), raw, 0, 0)]).rejected
    assert r.reason == "type_mismatch" and "binary.handling.mode" in r.message
    assert h.get(1) is None


def test_bytes_items_typed_as_text_are_refused_saying_items_take_no_encoding(
        tmp_path: Path) -> None:
    """An array<bytes> column cannot declare an encoding: the refusal says so, and how to
    keep the text, rather than only to declare one."""
    h = Harness(tmp_path, spec_of(
        "CREATE TABLE t (id INT PRIMARY KEY, b ARRAY<BYTES>) WITH (kafka_topic='t', "
        "key_format='JSON', value_format='json', on_error='skip')"))
    value = wrapped("string", TEXTS["hex"], False)
    value["schema"]["fields"][1] = {"field": "b", "type": "array", "optional": True,
                                    "items": {"type": "string"}}
    value["payload"]["b"] = [TEXTS["hex"]]
    (r,) = h.feed((1, value)).rejected
    assert r.reason == "type_mismatch" and h.get(1) is None
    assert "the bytes items of an array or map column take none" in r.message
    assert "declare the column (or its items) string" in r.message

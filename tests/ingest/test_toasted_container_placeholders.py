"""The forms Debezium's PostgreSQL connector gives its unavailable-value placeholder in a
TOASTed array or hstore an UPDATE left unchanged (`UnchangedToastedPlaceholder`): int[] and
bigint[] as the placeholder's bytes as numbers, bytea[] a one-element list of its bytes,
uuid[] a one-element list of the name-based uuid of its bytes (Java's
`UUID.nameUUIDFromBytes`), hstore (map mode) `{placeholder: placeholder}`. They were stored
as data (`[95, 95, 100, ...]` in place of the row's numbers); they keep the stored values now,
as the text forms do, or are a bad record (`unavailable_value`) with no stored row."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from connectors.registry import FileRegistry
from materializer.formats.wire import avro_encoder
from materializer.testing import FakeRecord
from tests.ingest.test_apply_rules import Harness, spec_of
from tests.ingest.test_debezium_unavailable import AvroHarness, dbz

P = "__debezium_unavailable_value"
UUID_OF_P = "b68a35a7-17ad-35b3-af2a-ae46edb4545a"  # Java 17: UUID.nameUUIDFromBytes(P)
COLS = ("id INT PRIMARY KEY, ints ARRAY<INT>, longs ARRAY<BIGINT>, blobs ARRAY<BYTES>, "
        "ids ARRAY<UUID>, attrs MAP<STRING, STRING>, n BIGINT")
STORED = {"id": 1, "ints": [1, 2], "longs": [3], "blobs": [b"\x00\x01"],
          "ids": ["00000000-0000-0000-0000-000000000007"], "attrs": {"k": "v"}, "n": 1}


def placeholders(text: str, binary: bool) -> dict[str, Any]:
    raw = text.encode()
    numbers = [b - 256 if b > 127 else b for b in raw]
    return {"ints": numbers, "longs": numbers,
            "blobs": [raw if binary else base64.b64encode(raw).decode()],
            "ids": [UUID_OF_P] if text == P else None, "attrs": {text: text}}


def json_row(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "blobs": [base64.b64encode(b).decode() for b in row["blobs"]]}


@pytest.mark.parametrize("text", [P, "__toast_ø__"])
def test_debezium_json_keeps_the_stored_values(tmp_path: Path, text: str) -> None:
    with_ = "" if text == P else f", unavailable_value_placeholder='{text}'"
    h = Harness(tmp_path, spec_of(
        f"CREATE TABLE t ({COLS}) WITH (kafka_topic='t', key_format='JSON', "
        f"value_format='debezium-json', on_error='skip'{with_})"))
    assert h.feed((1, dbz("c", json_row(STORED)))).rejected == []
    forms = {c: v for c, v in placeholders(text, False).items() if v is not None}
    for column, form in forms.items():
        out = h.feed((1, dbz("u", {**json_row(STORED), column: form, "n": 2})))
        assert out.rejected == [], column
        assert h.get(1) == {**STORED, "n": 2}, column  # not the placeholder's bytes
    out = h.feed((1, dbz("u", {**json_row(STORED), **forms, "n": 3})))
    assert out.rejected == [] and h.get(1) == {**STORED, "n": 3}
    (r,) = h.feed((2, dbz("u", {**json_row(STORED), "id": 2, "ints": forms["ints"]}))).rejected
    assert r.reason == "unavailable_value" and "'ints'" in r.message
    assert h.get(2) is None


def test_a_real_array_or_map_is_still_data(tmp_path: Path) -> None:
    h = Harness(tmp_path, spec_of(
        f"CREATE TABLE t ({COLS}) WITH (kafka_topic='t', key_format='JSON', "
        "value_format='debezium-json')"))
    near = {"ints": list(P.encode())[:-1], "longs": [*P.encode(), 0],
            "blobs": [base64.b64encode(P.encode()).decode(), "AA=="],
            "ids": [UUID_OF_P, UUID_OF_P], "attrs": {P: "x"}}
    assert h.feed((1, dbz("c", {**json_row(STORED), **near}))).rejected == []
    row = h.get(1)
    assert row is not None and row["ints"] == list(P.encode())[:-1]
    assert row["attrs"] == {P: "x"} and row["ids"] == [UUID_OF_P, UUID_OF_P]


AVRO_VALUE = {"type": "record", "name": "Value", "namespace": "db.t", "fields": [
    {"name": "id", "type": "int"},
    {"name": "ints", "type": ["null", {"type": "array", "items": "int"}], "default": None},
    {"name": "longs", "type": ["null", {"type": "array", "items": "long"}], "default": None},
    {"name": "blobs", "type": ["null", {"type": "array", "items": "bytes"}], "default": None},
    {"name": "ids", "type": ["null", {"type": "array", "items": {
        "type": "string", "connect.name": "io.debezium.data.Uuid"}}], "default": None},
    {"name": "attrs", "type": ["null", {"type": "map", "values": "string"}], "default": None},
    {"name": "n", "type": ["null", "long"], "default": None}]}
AVRO_ENVELOPE = {"type": "record", "name": "Envelope", "namespace": "db.t", "fields": [
    {"name": "before", "type": ["null", AVRO_VALUE], "default": None},
    {"name": "after", "type": ["null", "Value"], "default": None},
    {"name": "op", "type": "string"}]}


def test_debezium_avro_keeps_the_stored_values(tmp_path: Path) -> None:
    reg = FileRegistry(tmp_path / "registry")
    enc = avro_encoder(reg, "t-value", AVRO_ENVELOPE)
    h = AvroHarness(tmp_path / "data", spec_of(
        f"CREATE TABLE t ({COLS}) WITH (kafka_topic='t', key_format='JSON', "
        "value_format='debezium-avro', on_error='skip')"), registry=reg)

    def feed(key: int, after: dict[str, Any]) -> Any:
        off = next(h.offsets)
        return h.apply([FakeRecord(json.dumps(key).encode(),
                                   enc({"before": None, "after": after, "op": "u"}), off, off)])

    assert feed(1, STORED).rejected == []
    forms = placeholders(P, True)
    for column, form in forms.items():
        assert feed(1, {**STORED, column: form, "n": 2}).rejected == [], column
        assert h.get(1) == {**STORED, "n": 2}, column
    (r,) = feed(2, {**STORED, "id": 2, "blobs": forms["blobs"]}).rejected
    assert r.reason == "unavailable_value" and "'blobs'" in r.message

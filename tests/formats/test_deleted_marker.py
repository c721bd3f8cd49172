"""Debezium's ExtractNewRecordState with `delete.handling.mode=rewrite` writes a delete as
the deleted row with `__deleted: "true"` and drops the tombstone: stored as a row, it was
served as alive. A relation without a `__deleted` column reads it as a delete (JSON, the
Connect wrapper, JSON_SR, Avro); "false"/null is a row; another value is rejected; a
relation declaring the column stores it as data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connectors.registry import FileRegistry
from materializer.formats.wire import avro_encoder
from materializer.ingest.relation import open_relation
from materializer.store.store import Store
from materializer.testing import FakeRecord
from tests.formats.test_nulls_where_data_was import applied, spec

USERS = {"id": "int", "name": "string"}
ANN = {"id": 0, "name": "Ann"}


def _json(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _wrapped(payload: dict[str, Any]) -> bytes:
    fields = [{"field": "id", "type": "int32"}, {"field": "name", "type": "string"},
              {"field": "__deleted", "type": "string", "optional": True}]
    return _json({"schema": {"type": "struct", "fields": fields, "optional": False},
                  "payload": payload})


def _sequence(tmp_path: Path, value_format: str, encode: Any, registry: Any = None,
              columns: dict[str, str] = USERS) -> list[Any]:
    """Key 0: a row, then its rewritten delete; key 1: a row marked "false"; key 2: a row
    then one marked null. Returns what each key holds after all (one partition, in order)."""
    table = spec(columns, ["id"], value_format=value_format)
    values = [encode({"id": 0, "name": "Ann", "__deleted": "false"}),
              encode({"id": 0, "name": "Ann", "__deleted": "true"}),
              encode({"id": 1, "name": "Bob", "__deleted": "false"}),
              encode({"id": 2, "name": "Cy", "__deleted": None})]
    keys = [0, 0, 1, 2]
    return _applied_keys(table, tmp_path, keys, values, registry)


def _applied_keys(table: Any, tmp_path: Path, keys: list[int], values: list[bytes],
                  registry: Any) -> list[Any]:
    rel = open_relation(table, tmp_path / "data", map_size=1 << 24, registry=registry)
    out = rel.apply({0: [FakeRecord(_json(k), v, i)
                         for i, (k, v) in enumerate(zip(keys, values, strict=True))]})[0]
    assert out.rejected == [], out.rejected
    with Store(tmp_path / "data") as store:
        t = store.table(table.name)
        return [t.get(k) for k in sorted(set(keys))]


def test_json_rewritten_delete_deletes(tmp_path: Path) -> None:
    assert _sequence(tmp_path, "json", _json) == [
        None, {"id": 1, "name": "Bob"}, {"id": 2, "name": "Cy"}]


def test_connect_wrapped_rewritten_delete_deletes(tmp_path: Path) -> None:
    assert _sequence(tmp_path, "json", _wrapped) == [
        None, {"id": 1, "name": "Bob"}, {"id": 2, "name": "Cy"}]


def test_json_sr_rewritten_delete_deletes(tmp_path: Path) -> None:
    def framed(obj: Any) -> bytes:
        return b"\x00\x00\x00\x00\x01" + _json(obj)
    assert _sequence(tmp_path, "json_sr", framed) == [
        None, {"id": 1, "name": "Bob"}, {"id": 2, "name": "Cy"}]


def test_avro_rewritten_delete_deletes(tmp_path: Path) -> None:
    reg = FileRegistry(tmp_path / "registry")
    schema = {"type": "record", "name": "Value", "fields": [
        {"name": "id", "type": "int"}, {"name": "name", "type": "string"},
        {"name": "__deleted", "type": ["null", "string"], "default": None}]}
    enc = avro_encoder(reg, "t-value", schema)
    assert _sequence(tmp_path, "avro", enc, reg) == [
        None, {"id": 1, "name": "Bob"}, {"id": 2, "name": "Cy"}]


def test_a_boolean_marker_is_read_too(tmp_path: Path) -> None:
    got = applied(spec(USERS, ["id"]), tmp_path,
                  [_json({**ANN, "__deleted": True}), _json({"id": 1, "name": "Bob",
                                                             "__deleted": False})])
    assert got == [None, {"id": 1, "name": "Bob"}]


@pytest.mark.parametrize("odd", ["yes", "TRUE", 1, "1", ""])
def test_another_marker_value_is_rejected_not_guessed(tmp_path: Path, odd: Any) -> None:
    got = applied(spec(USERS, ["id"]), tmp_path, [_json({**ANN, "__deleted": odd})])
    assert got[0][0] == "type_mismatch", got
    assert "'__deleted'" in got[0][1] and "declare a column __deleted" in got[0][1]


def test_a_declared_deleted_column_is_data(tmp_path: Path) -> None:
    cols = {**USERS, "__deleted": "string"}
    got = applied(spec(cols, ["id"]), tmp_path, [_json({**ANN, "__deleted": "true"})])
    assert got == [{"id": 0, "name": "Ann", "__deleted": "true"}]

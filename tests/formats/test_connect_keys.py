"""Connect logical types in KEYS: a key in JsonConverter's `{"schema", "payload"}` wrapper
(json and json_sr), or an Avro key whose schema names them (`connect.name`), is converted
by the same rules as a value, for one-column and composite keys alike."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from connectors.registry import FileRegistry
from materializer.columns import parse_type
from materializer.errors import RecordError
from materializer.formats import codecs
from materializer.formats.wire import avro_encoder
from materializer.specs import Column, TableSpec

MICROS = 1_700_000_000_123_456


def spec(columns: dict[str, str], key: list[str], key_format: str = "json") -> TableSpec:
    return TableSpec(name="s.t", topic="t",
                     columns=tuple(Column(n, parse_type(t)[0], n in key)
                                   for n, t in columns.items()),
                     key_columns=tuple(key), key_format=key_format,  # type: ignore[arg-type]
                     value_format="json")


def wrap(fields: list[dict[str, Any]], payload: Any) -> bytes:
    return json.dumps({"schema": {"type": "struct", "fields": fields, "optional": False},
                       "payload": payload}).encode()


def named(field: str, kind: str, name: str, **params: str) -> dict[str, Any]:
    out: dict[str, Any] = {"field": field, "type": kind, "name": name}
    if params:
        out["parameters"] = params
    return out


CASES = [
    ("micro timestamp, upper-case field", {"ts": "timestamp", "v": "string"}, ["ts"],
     wrap([named("TS", "int64", "io.debezium.time.MicroTimestamp")], {"TS": MICROS}),
     (MICROS,)),
    ("nano time and date, composite", {"t": "time", "d": "date", "v": "string"}, ["t", "d"],
     wrap([named("t", "int64", "io.debezium.time.NanoTime"),
           named("d", "int32", "io.debezium.time.Date")],
          {"t": 3_600_000_123_000, "d": 19_000}),  # sub-µs: refused (test_nulls_where_data_was)
     (3_600_000_123, 19_000)),
    ("zoned timestamp", {"z": "timestamp", "v": "string"}, ["z"],
     wrap([named("z", "string", "io.debezium.time.ZonedTimestamp")],
          {"z": "2024-01-02T03:04:05.123456+01:00"}),
     (1_704_161_045_123_456,)),
    ("variable scale decimal", {"n": "decimal(20,4)", "v": "string"}, ["n"],
     wrap([named("n", "struct", "io.debezium.data.VariableScaleDecimal")],
          {"n": {"scale": 2, "value": base64.b64encode(b"\x01\xe2").decode()}}),
     ("4.8200",)),
    ("connect timestamp, a primitive key", {"ts": "timestamp", "v": "string"}, ["ts"],
     json.dumps({"schema": {"type": "int64", "name": "org.apache.kafka.connect.data.Timestamp"},
                 "payload": 1_700_000_000_123}).encode(),
     (1_700_000_000_123_000,)),
    ("connect time, millis", {"t": "time", "v": "string"}, ["t"],
     wrap([named("t", "int32", "org.apache.kafka.connect.data.Time")], {"t": 1_000}),
     (1_000_000,)),
]


@pytest.mark.parametrize(("what", "columns", "key", "raw", "want"), CASES,
                         ids=[c[0] for c in CASES])
def test_json_keys_apply_connect_logical_types(what: str, columns: dict[str, str],
                                               key: list[str], raw: bytes,
                                               want: tuple[Any, ...]) -> None:
    assert codecs.key_decoder(spec(columns, key))(raw) == want


def test_json_sr_keys_in_the_wrapper_apply_them_too() -> None:
    raw = b"\x00\x00\x00\x00\x07" + wrap(
        [named("n", "bytes", "org.apache.kafka.connect.data.Decimal", scale="2")],
        {"n": base64.b64encode(b"\x01\xe2").decode()})
    assert codecs.key_decoder(spec({"n": "decimal(10,2)", "v": "string"}, ["n"],
                                   "json_sr"))(raw) == ("4.82",)


def test_a_key_its_logical_type_cannot_read_is_a_key_mismatch_naming_the_key() -> None:
    raw = wrap([named("d", "int32", "io.debezium.time.Date")], {"d": 10**9})
    with pytest.raises(RecordError) as e:
        codecs.key_decoder(spec({"d": "date", "v": "string"}, ["d"]))(raw)
    assert e.value.reason == "key_mismatch" and str(e.value).startswith("key: ")


def test_avro_keys_apply_connect_names(tmp_path: Path) -> None:
    registry = FileRegistry(tmp_path)
    enc = avro_encoder(registry, "t-key", {"type": "record", "name": "Key", "fields": [
        {"name": "ID", "type": "int"},
        {"name": "day", "type": {"type": "int", "connect.name": "io.debezium.time.Date"}},
        {"name": "at", "type": {"type": "long",
                                "connect.name": "io.debezium.time.MicroTimestamp"}}]})
    s = spec({"id": "int", "day": "date", "at": "timestamp", "v": "string"},
             ["id", "day", "at"], "avro")
    assert codecs.key_decoder(s, registry)(enc({"ID": 1, "day": 19_000, "at": MICROS})) == \
        (1, 19_000, MICROS)

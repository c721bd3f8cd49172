"""Decimals past Python's default 28-digit context: decimal(38,s) values are exact from
every input (text, integers, Decimal, base64, Connect JSON, Avro), as keys (stored and
ordered) and in change events; what cannot fit or cannot be exact is one record's
precise rejection."""

from __future__ import annotations

import base64
import dataclasses
import decimal
import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.registry import FileRegistry
from materializer.changes.avro_envelope import AvroEnvelope
from materializer.changes.envelope import JsonEnvelope
from materializer.changes.event import Change
from materializer.columns import parse_type
from materializer.errors import RecordError
from materializer.formats import codecs
from materializer.formats.wire import avro_encoder
from materializer.ingest.apply import RowShaper
from materializer.specs import ChangesSpec, Column, RelationSpec, TableSpec
from materializer.store.keys import KeyCodec
from materializer.values import to_storage

D38 = parse_type("decimal(38,2)")[0]
WIDE = "123456789012345678901234567890123456.78"  # 38 digits
NEGATIVE = "-99999999999999999999999999999999999.99"


def convert(v: Any, t: str = "decimal(38,2)", encoding: str | None = None) -> Any:
    return to_storage(dataclasses.replace(parse_type(t)[0], encoding=encoding))(v)


def unscaled_bytes(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 8) // 8, "big", signed=True)


def test_38_digits_are_exact_from_text_integers_and_decimals() -> None:
    assert convert(WIDE) == WIDE
    assert convert(NEGATIVE) == NEGATIVE
    assert convert(decimal.Decimal(WIDE)) == WIDE
    assert convert(10**35 + 1) == "100000000000000000000000000000000001.00"
    assert convert("1" * 38, "decimal(38,0)") == "1" * 38


def test_rounding_is_half_even_to_the_scale_at_full_width() -> None:
    assert convert("123456789012345678901234567890123456.785") == \
        "123456789012345678901234567890123456.78"
    assert convert("123456789012345678901234567890123456.775") == \
        "123456789012345678901234567890123456.78"
    assert convert("123456789012345678901234567890123456.7750000001") == \
        "123456789012345678901234567890123456.78"


def test_base64_unscaled_values_of_38_digits_are_exact() -> None:
    n = -int(NEGATIVE.replace("-", "").replace(".", ""))
    text = base64.b64encode(unscaled_bytes(n)).decode()
    assert convert(text, encoding="base64") == NEGATIVE
    assert convert(unscaled_bytes(n), encoding="base64") == NEGATIVE


@pytest.mark.parametrize("value", [
    "1234567890123456789012345678901234567.00",  # 37 whole digits: 36 fit
    "999999999999999999999999999999999999.995",  # rounds up to 10**36
    "1e40", "-1E+36", "Infinity", "NaN"])
def test_what_does_not_fit_says_so(value: str) -> None:
    with pytest.raises(ValueError, match=r"does not fit decimal\(38,2\)"):
        convert(value)


def test_a_huge_exponent_is_refused_without_arithmetic() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        convert("1e999999999999999")
    assert convert("1e-999999999999999") == "0.00"


def test_no_negative_zero() -> None:
    assert convert("-0.001") == "0.00"
    assert convert("-0") == "0.00"


def test_a_double_that_cannot_hold_the_digits_is_refused_not_rounded() -> None:
    """A JSON number is a double: 12345678901234567890.12 reads as 1.2345678901234567e19,
    which would be stored as ...567000.00 without a word."""
    assert convert(19.99) == "19.99"
    assert convert(1234567890123.45) == "1234567890123.45"  # 15 digits at scale 2
    assert convert(0.30000000000000004) == "0.30"
    with pytest.raises(ValueError, match="send it as a string"):
        convert(12345678901234567890.12)


def spec_of(columns: dict[str, str], key: str = "id", **kw: Any) -> TableSpec:
    cols = tuple(Column(n, parse_type(t)[0], n == key) for n, t in columns.items())
    return TableSpec(name="s.t", topic="t", columns=cols, key_columns=(key,), **kw)


def shaped(spec: RelationSpec, fields: Any, key: tuple[Any, ...]) -> list[Any]:
    return RowShaper(spec, spec.column_names).shape(fields, key)


def test_json_values_and_connect_wrappers_keep_38_digits() -> None:
    spec = spec_of({"id": "int", "d": "decimal(38,2)"}, value_format="json")
    dec = codecs.value_decoder(spec)
    assert shaped(spec, dec(json.dumps({"d": WIDE}).encode()), (1,)) == [1, WIDE]
    n = int(WIDE.replace(".", ""))
    wrapped = {"schema": {"type": "struct", "fields": [
        {"field": "d", "type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
         "parameters": {"scale": "2", "connect.decimal.precision": "38"}}]},
        "payload": {"d": base64.b64encode(unscaled_bytes(n)).decode()}}
    assert shaped(spec, dec(json.dumps(wrapped).encode()), (1,)) == [1, WIDE]


def test_a_number_that_does_not_fit_is_one_records_type_mismatch() -> None:
    spec = spec_of({"id": "int", "d": "decimal(38,2)"}, value_format="json")
    with pytest.raises(RecordError) as e:
        shaped(spec, codecs.value_decoder(spec)(b'{"d": 12345678901234567890.12}'), (1,))
    assert e.value.reason == "type_mismatch" and "column 'd'" in str(e.value)


def test_avro_decimals_of_38_digits_are_exact(tmp_path: Path) -> None:
    registry = FileRegistry(tmp_path)
    enc = avro_encoder(registry, "t-value", {"type": "record", "name": "R", "fields": [
        {"name": "d", "type": {"type": "bytes", "logicalType": "decimal", "precision": 38,
                               "scale": 2}}]})
    spec = spec_of({"id": "int", "d": "decimal(38,2)"}, value_format="avro")
    fields = codecs.value_decoder(spec, registry)(enc({"d": decimal.Decimal(NEGATIVE)}))
    assert shaped(spec, fields, (1,)) == [1, NEGATIVE]


wide_decimals = st.integers(-(10**38) + 1, 10**38 - 1).map(
    lambda n: str(decimal.Decimal(f"{n}E-2")))


@given(st.lists(wide_decimals, min_size=1, max_size=20))
def test_38_digit_keys_round_trip_and_keep_their_order(values: list[str]) -> None:
    codec = KeyCodec((D38,))
    encoded = {v: codec.encode((v,)) for v in values}
    for v, b in encoded.items():
        assert codec.decode(b) == (v,)
    by_bytes = sorted(values, key=lambda v: encoded[v])
    assert [decimal.Decimal(v) for v in by_bytes] == sorted(decimal.Decimal(v)
                                                            for v in values)


def test_a_38_digit_key_is_read_and_stored_exactly() -> None:
    spec = spec_of({"k": "decimal(38,2)", "v": "string"}, key="k", key_format="json")
    (k,) = codecs.key_decoder(spec)(json.dumps(WIDE).encode())
    codec = KeyCodec(spec.key_types)
    assert codec.decode(codec.encode((k,))) == (WIDE,)


def test_change_events_carry_38_digits(tmp_path: Path) -> None:
    spec = spec_of({"id": "int", "d": "decimal(38,2)"},
                   changes=ChangesSpec(topic="t.changes", format="debezium-avro"))
    change = Change("c", 0, 0, 0, (1,), None, (1, NEGATIVE))
    registry = FileRegistry(tmp_path)
    avro = AvroEnvelope(spec, spec.column_names, registry)
    (m,) = avro.encode([change], 0)
    value = m[2] or b""
    event = fastavro.schemaless_reader(io.BytesIO(value[5:]),
                                       registry.schema(avro.schema_id), None)
    assert event["after"]["d"] == decimal.Decimal(NEGATIVE)
    plain = spec_of({"id": "int", "d": "decimal(38,2)"}, changes=ChangesSpec(topic="x"))
    (j,) = JsonEnvelope(plain, plain.column_names).encode([change], 0)
    assert json.loads(j[2] or b"")["after"]["d"] == NEGATIVE

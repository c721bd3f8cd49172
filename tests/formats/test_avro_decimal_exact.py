"""Avro decimals are read exactly on every reading path (probe h68):

- a decimal whose unscaled integer has more digits than its schema's `precision` (no Java
  or fastavro writer writes one, other writers do not all check) is the value its bytes
  say, as Java's Avro reads it: fastavro's converter rounds it to the precision, so the
  same bytes were 1234.56 read raw from a `bytes` field into a decimal column but 1235.00
  from a `fixed` decimal, an array item, a union branch, a key, or a schema read by
  fastavro's own reader (recursive, or not compiled);
- decimal(38,s) values with 28 or more leading nines fit their column: the range check
  rounded them to Python's 28-digit default context (abs()) and refused them as too wide,
  so a fixed decimal(38,0) of 10**38 - 1, or a materializer's own change event of an
  array<decimal(38,2)> read back, were bad records.
"""

from __future__ import annotations

import decimal
import io
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.registry import FileRegistry
from materializer.changes.avro_envelope import AvroEnvelope
from materializer.changes.avro_rows import zigzag
from materializer.changes.event import Change
from materializer.columns import parse_type
from materializer.decimals import decimal_converter, scaled
from materializer.formats import codecs
from materializer.formats.avro_compiled import compile_reader, fastavro_schema
from materializer.formats.avro_schema import named_types
from materializer.formats.wire import header
from materializer.ingest.apply import RowShaper
from materializer.specs import ChangesSpec, Column, TableSpec
from materializer.values import key_storage
from tests.support.avro import avro_table
from tests.support.changes import stored

D = decimal.Decimal
NARROW = {"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2}
UNSCALED = 123456  # 1234.56: six digits in a decimal(4,2)


def _fixed(name: str = "F") -> dict[str, Any]:
    return {"type": "fixed", "name": name, "size": 8, "logicalType": "decimal",
            "precision": 4, "scale": 2}


def _bytes(n: int) -> bytes:
    raw = n.to_bytes((n.bit_length() + 8) // 8, "big", signed=True)
    return zigzag(len(raw)) + raw


FIXED_BODY = UNSCALED.to_bytes(8, "big", signed=True)

# field type of `c`, other fields before it, and the body of those fields then `c`
SHAPES: dict[str, tuple[Any, list[dict[str, Any]], bytes]] = {
    "bytes field (read raw)": (NARROW, [], _bytes(UNSCALED)),
    "fixed field": (_fixed(), [], FIXED_BODY),
    "union branch": (["null", "string", NARROW], [], b"\x04" + _bytes(UNSCALED)),
    "recursive schema (fastavro's Python reader)": (
        _fixed(), [{"name": "next", "type": ["null", "V"]}], b"\x00" + FIXED_BODY),
    "schema not compiled (fastavro's reader)": (
        _fixed(), [{"name": "nothing", "type": {"type": "array", "items": "null"}}],
        b"\x02\x00" + FIXED_BODY),
}


@pytest.fixture()
def reg(tmp_path: Path) -> FileRegistry:
    return FileRegistry(tmp_path / "registry")


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_decimal_wider_than_its_schema_precision_reads_as_its_bytes_say(
        reg: FileRegistry, shape: str) -> None:
    node, before, body = SHAPES[shape]
    schema = {"type": "record", "name": "V",
              "fields": [*before, {"name": "c", "type": node}]}
    sid = reg.register("v", schema)
    for column, want in (("decimal(10,2)", "1234.56"), ("json", "1234.56")):
        spec = avro_table({"id": "int", "c": column})
        decode = codecs.value_decoder(spec, reg)
        row = RowShaper(spec, spec.column_names).shape(decode(header(sid) + body), (1,))
        assert row == [1, want], (shape, column)


def test_an_array_of_decimals_wider_than_their_precision(reg: FileRegistry) -> None:
    schema = {"type": "record", "name": "V", "fields": [
        {"name": "c", "type": {"type": "array", "items": NARROW}}]}
    sid = reg.register("v", schema)
    spec = avro_table({"id": "int", "c": "array<decimal(10,2)>"})
    body = b"\x04" + _bytes(UNSCALED) + _bytes(-UNSCALED) + b"\x00"
    row = RowShaper(spec, spec.column_names).shape(
        codecs.value_decoder(spec, reg)(header(sid) + body), (1,))
    assert row == [1, ["1234.56", "-1234.56"]]


def test_a_key_decimal_wider_than_its_precision_is_its_own_key(reg: FileRegistry) -> None:
    """Rounded, 1234.56 and 1235.00 were the same key: one row for two keys of the topic."""
    sid = reg.register("k", {"type": "record", "name": "K",
                             "fields": [{"name": "id", "type": _fixed()}]})
    spec = TableSpec(name="public.t", topic="t",
                     columns=(Column("id", parse_type("decimal(10,2)")[0], True),
                              Column("v", parse_type("string")[0], False)),
                     key_columns=("id",), key_format="avro", value_format="json")
    decode = codecs.key_decoder(spec, reg)
    assert decode(header(sid) + FIXED_BODY) == ("1234.56",)
    assert decode(header(sid) + (123500).to_bytes(8, "big", signed=True)) == ("1235.00",)


@given(st.integers(-(2**63), 2**63 - 1), st.integers(0, 12), st.booleans())
def test_both_readers_read_decimal_bytes_exactly(n: int, scale: int, fixed: bool) -> None:
    node: dict[str, Any] = ({"type": "fixed", "name": "F", "size": 8} if fixed
                            else {"type": "bytes"})
    node.update(logicalType="decimal", precision=max(scale, 1), scale=scale)
    parsed = fastavro.parse_schema({"type": "record", "name": "R",
                                    "fields": [{"name": "c", "type": node}]})
    body = n.to_bytes(8, "big", signed=True) if fixed else _bytes(n)
    read = compile_reader(parsed, named_types(parsed))
    assert read is not None
    compiled, end = read(body, 0)
    python = fastavro.schemaless_reader(io.BytesIO(body), fastavro_schema(parsed), None)
    want = scaled(n, scale)
    assert end == len(body)
    for got in (compiled["c"], python["c"]):  # type: ignore[index, call-overload]
        assert got == want and got.as_tuple().exponent == -scale


NINES = [("38", 0, "9" * 38), ("38", 10, "9" * 28 + "." + "9" * 10),
         ("38", 37, "9." + "9" * 37), ("38", 2, "9" * 28 + "5" * 8 + ".99")]


@pytest.mark.parametrize(("precision", "scale", "text"), NINES)
def test_decimal_38_values_with_28_leading_nines_fit(precision: str, scale: int,
                                                       text: str) -> None:
    for sign in ("", "-"):
        value = D(sign + text)
        for conv in (decimal_converter(int(precision), scale),
                     key_storage(parse_type(f"decimal({precision},{scale})")[0])):
            assert conv(value) == sign + text
            longer = sign + text + ("0" if scale else ".0")  # not the canonical text
            assert conv(longer) == sign + text
    with pytest.raises(ValueError, match="does not fit"):
        decimal_converter(38, 0)(D("9" * 38) + D("0.5"))  # rounds up to 10**38


def test_a_fixed_decimal_38_at_its_limit(reg: FileRegistry) -> None:
    node = {"type": "fixed", "name": "F", "size": 16, "logicalType": "decimal",
            "precision": 38, "scale": 0}
    sid = reg.register("v", {"type": "record", "name": "V",
                             "fields": [{"name": "c", "type": node}]})
    spec = avro_table({"id": "int", "c": "decimal(38,0)"})
    decode = codecs.value_decoder(spec, reg)
    shaper = RowShaper(spec, spec.column_names)
    for n in (10**38 - 1, -(10**38) + 1):
        body = n.to_bytes(16, "big", signed=True)
        assert shaper.shape(decode(header(sid) + body), (1,)) == [1, str(n)]


def test_a_change_event_of_wide_decimal_arrays_reads_back(tmp_path: Path) -> None:
    """A materializer reading another's change topic (debezium-avro) gets the row."""
    columns = {"id": "int", "a": "array<decimal(38,2)>", "m": "map<string,decimal(38,0)>"}
    cols = tuple(Column(n, parse_type(t)[0], n == "id") for n, t in columns.items())
    spec = TableSpec(name="s.t", topic="t", columns=cols, key_columns=("id",),
                     changes=ChangesSpec(topic="t.changes", format="debezium-avro"))
    reg = FileRegistry(tmp_path / "reg")
    enc = AvroEnvelope(spec, spec.column_names, reg)
    row = stored(spec, {"id": 1, "a": ["-" + "9" * 36 + ".99", None, "0.01"],
                        "m": {"max": "9" * 38, "min": "-" + "9" * 38}})
    body = enc.encode([Change("c", 0, 1, 2, (1,), None, row)], now_ms=3)[0][2]
    assert body is not None
    copy = TableSpec(name="copy", topic="t.changes", columns=cols, key_columns=("id",),
                     key_format="json", value_format="debezium-avro")
    fields = codecs.value_decoder(copy, reg)(body)
    assert stored(copy, dict(fields)) == row

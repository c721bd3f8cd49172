"""Avro fields read without their logical type (`formats.avro_schema.record_reading`: decimal
bytes, timestamp-millis, date) give exactly the rows that reading them through
fastavro's logical types gives, and refuse exactly the records it refuses."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import io
import math
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.registry import FileRegistry
from materializer.columns import parse_type
from materializer.errors import RecordError
from materializer.formats import codecs
from materializer.formats.wire import HEADER_SIZE, avro_encoder
from materializer.ingest.apply import RowShaper
from materializer.specs import Column, TableSpec

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
CONNECT_DECIMAL = "org.apache.kafka.connect.data.Decimal"


def _spec(column: str, value_format: str = "avro") -> TableSpec:
    t, _ = parse_type(column)
    return TableSpec(name="public.t", topic="t", columns=(
        Column("id", parse_type("int")[0], True), Column("v", t, False)),
        key_columns=("id",), key_format="int", value_format=value_format)


def _row_schema(field_type: Any, nullable: bool) -> dict[str, Any]:
    return {"type": "record", "name": "Row", "namespace": "t",
            "fields": [{"name": "v", "type": ["null", field_type] if nullable else field_type}]}


def _outcome(fn: Any) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except (RecordError, TypeError, ValueError, ArithmeticError, OverflowError) as e:
        return "error", type(e).__name__ if not isinstance(e, RecordError) else "RecordError"


def _compare(tmp: Path, column: str, field_type: dict[str, Any], value: Any, nullable: bool,
             debezium: bool = False) -> None:
    """The row through our decoder against the reference: fastavro's logical value,
    then the column's reference shaper."""
    reg = FileRegistry(tmp)
    schema = _row_schema(field_type, nullable)
    if debezium:
        schema = {"type": "record", "name": "Envelope", "namespace": "t", "fields": [
            {"name": "before", "type": ["null", schema]},
            {"name": "after", "type": ["null", "t.Row"]},
            {"name": "op", "type": "string"}]}
        datum: dict[str, Any] = {"before": None, "after": {"v": value}, "op": "c"}
    else:
        datum = {"v": value}
    b = avro_encoder(reg, "t-value", schema)(datum)
    spec = _spec(column, "debezium-avro" if debezium else "avro")
    shaper = RowShaper(spec, spec.column_names)
    decode = codecs.value_decoder(spec, reg)
    got = _outcome(lambda: shaper.shape(decode(b), (1,)))

    def reference() -> Any:
        bio = io.BytesIO(b)
        bio.seek(HEADER_SIZE)
        read = schemaless_reader(bio, parse_schema(schema), None)
        fields = read["after"] if debezium else read
        return shaper.shape({"v": fields["v"]}, (1,))  # a Connect Decimal is one already
    want = _outcome(reference)
    if want[0] == "error":
        assert got[0] == "error", (got, want)
    else:
        assert got == want


SHAPES = st.tuples(st.integers(1, 38), st.integers(0, 38)).map(
    lambda ps: (ps[0], min(ps[0], ps[1])))


@st.composite
def decimal_cases(draw: st.DrawFn) -> tuple[str, dict[str, Any], Any]:
    """A decimal column, a writer decimal type (scale and precision of its own) and a
    value the writer can write (at most its precision in digits)."""
    (cp, cs), (wp, ws) = draw(SHAPES), draw(SHAPES)
    field: dict[str, Any] = {"type": "bytes", "logicalType": "decimal", "precision": wp,
                             "scale": ws}
    if draw(st.booleans()):
        field.update({"connect.name": CONNECT_DECIMAL,
                      "connect.parameters": {"scale": str(ws),
                                             "connect.decimal.precision": str(wp)}})
    digits = draw(st.integers(0, wp))
    unscaled = draw(st.integers(-(10 ** digits) + 1, 10 ** digits - 1))
    return f"decimal({cp},{cs})", field, decimal.Decimal(unscaled).scaleb(-ws)


@settings(max_examples=300)
@given(decimal_cases(), st.booleans(), st.booleans())
def test_decimal_bytes_read_raw_as_fastavro_reads_them(
        tmp_path_factory: pytest.TempPathFactory, case: tuple[str, dict[str, Any], Any],
        nullable: bool, debezium: bool) -> None:
    column, field, value = case
    _compare(tmp_path_factory.mktemp("r"), column, field, value, nullable, debezium)


MILLIS = st.integers(-62135596800000 - 10**6, 253402300799999 + 10**6)


@settings(max_examples=200)
@given(MILLIS, st.sampled_from(["timestamp-millis", "local-timestamp-millis"]), st.booleans())
def test_timestamp_millis_read_raw_as_fastavro_reads_it(
        tmp_path_factory: pytest.TempPathFactory, ms: int, logical: str,
        nullable: bool) -> None:
    try:
        value: Any = EPOCH + dt.timedelta(milliseconds=ms)
    except OverflowError:
        return  # no datetime to write
    if logical == "local-timestamp-millis":
        value = value.replace(tzinfo=None)
    field = {"type": "long", "logicalType": logical}
    _compare(tmp_path_factory.mktemp("r"), "timestamp", field, value, nullable)


@settings(max_examples=100)
@given(st.dates(), st.booleans())
def test_date_read_raw_as_fastavro_reads_it(tmp_path_factory: pytest.TempPathFactory,
                                            day: dt.date, nullable: bool) -> None:
    _compare(tmp_path_factory.mktemp("r"), "date", {"type": "int", "logicalType": "date"},
             day, nullable)


def test_a_named_fixed_decimal_keeps_its_logical_type(tmp_path: Path) -> None:
    """A named type may be used by other fields: it is read as fastavro reads it."""
    field = {"type": "fixed", "name": "Money", "size": 8, "logicalType": "decimal",
             "precision": 10, "scale": 2}
    _compare(tmp_path, "decimal(10,2)", field, decimal.Decimal("-12.34"), True)


def test_the_registry_schema_is_not_changed(tmp_path: Path) -> None:
    """The raw reading uses a copy: the registry's parsed schema keeps its logical types."""
    reg = FileRegistry(tmp_path)
    field = {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}
    b = avro_encoder(reg, "t-value", _row_schema(field, False))({"v": decimal.Decimal("1.50")})
    decode = codecs.value_decoder(_spec("decimal(10,2)"), reg)
    assert decode(b)["v"] == "1.50"
    sid = int.from_bytes(b[1:5], "big")
    assert reg.schema(sid)["fields"][0]["type"]["logicalType"] == "decimal"


def test_a_column_counting_other_units_reads_the_logical_value(tmp_path: Path) -> None:
    """timestamp-millis into a timestamp column whose integers count µs: not read raw
    (the integer would be taken as µs), the instant is kept."""
    reg = FileRegistry(tmp_path)
    field = {"type": "long", "logicalType": "timestamp-millis"}
    b = avro_encoder(reg, "t-value", _row_schema(field, False))(
        {"v": EPOCH + dt.timedelta(milliseconds=1500)})
    spec = _spec("timestamp")
    column = spec.columns[1]
    spec = dataclasses.replace(spec, columns=(spec.columns[0], dataclasses.replace(
        column, type=dataclasses.replace(column.type, encoding="us"))))
    row = RowShaper(spec, spec.column_names).shape(codecs.value_decoder(spec, reg)(b), (1,))
    assert row[1] == 1_500_000
    plain = RowShaper(_spec("timestamp"), ["id", "v"]).shape(
        codecs.value_decoder(_spec("timestamp"), reg)(b), (1,))
    assert plain[1] == 1_500_000


# ----------------------------------------------------------------- values taken as they are

AVRO_TYPES = {  # Avro type -> values its writer takes
    "string": st.text(max_size=4), "boolean": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1), "long": st.integers(-(2**63), 2**63 - 1),
    "double": st.one_of(st.sampled_from([math.nan, math.inf, -0.0]), st.floats()),
}
COLUMN_TYPES = ["string", "boolean", "int", "long", "double", "array<string>", "array<long>",
                "map<string,string>", "map<string,int>", "array<array<long>>", "string not null"]


@st.composite
def trusted_cases(draw: st.DrawFn) -> tuple[str, Any, Any]:
    """An Avro field type (nullable or not, in arrays and maps), a value the writer takes
    for it, and a column type: mostly the one that matches it, else any."""
    prim = draw(st.sampled_from(sorted(AVRO_TYPES)))
    avro: Any = prim
    values = AVRO_TYPES[prim]
    column = {"int": draw(st.sampled_from(["int", "long"]))}.get(prim, prim)
    for _ in range(draw(st.integers(0, 2))):
        if draw(st.booleans()):
            avro, values = {"type": "array", "items": ["null", avro]}, st.lists(
                st.one_of(st.none(), values), max_size=3)
            column = f"array<{column}>"
        else:
            avro, values = {"type": "map", "values": avro}, st.dictionaries(
                st.text(max_size=2), values, max_size=2)
            column = f"map<string,{column}>"
    if draw(st.booleans()):
        avro, values = ["null", avro], st.one_of(st.none(), values)
    elif draw(st.booleans()):
        column += " not null"
    if draw(st.integers(0, 3)) == 0:
        column = draw(st.sampled_from(COLUMN_TYPES))
    return column, avro, draw(values)


@settings(max_examples=300)
@given(trusted_cases())
def test_columns_taken_as_they_are_give_the_reference_rows(
        tmp_path_factory: pytest.TempPathFactory, case: tuple[str, Any, Any]) -> None:
    """The row decoder (a shaper per schema that skips the tests of the columns the Avro
    decoder vouches for) answers as decode + the reference shaper, errors included."""
    from materializer.ingest.jsonrow import row_decoder
    from materializer.ingest.shaper import compile_shaper
    column, avro, value = case
    reg = FileRegistry(tmp_path_factory.mktemp("r"))
    b = avro_encoder(reg, "t-value", {"type": "record", "name": "Row", "namespace": "t",
                                      "fields": [{"name": "v", "type": avro}]})({"v": value})
    spec = _spec(column)
    decode = codecs.value_decoder(spec, reg)
    fused = row_decoder(spec, spec.column_names, decode, compile_shaper(spec, spec.column_names))
    reference = RowShaper(spec, spec.column_names)
    got = _outcome(lambda: fused(b, (1,)))
    want = _outcome(lambda: tuple(reference.shape(decode(b), (1,))))
    assert repr(got) == repr(want)  # repr: nan == nan


def test_what_arrives_stored() -> None:
    from materializer.formats.avro_schema import arrives_stored

    def t(text: str) -> Any:
        return parse_type(text)[0]
    assert arrives_stored(["null", "string"], t("string"), True)
    assert arrives_stored({"type": "array", "items": ["null", "long"]}, t("array<long>"), True)
    assert arrives_stored({"type": "map", "values": "int"}, t("map<string,long>"), True)
    assert not arrives_stored("int", t("int"), True)  # bytes may hold more than 32 bits
    assert not arrives_stored("long", t("long"), False)  # the Python reader: any length
    assert not arrives_stored("double", t("double"), True)  # NaN: no column takes it
    assert not arrives_stored({"type": "string", "logicalType": "uuid"}, t("string"), True)
    assert not arrives_stored(["null", "string", "long"], t("string"), True)
    assert not arrives_stored("string", t("json"), True)


def test_a_field_two_columns_read_keeps_its_logical_type(tmp_path: Path) -> None:
    """Columns `v` (decimal) and `V` (string) both read field `v` (the second by case):
    it is read as fastavro reads it (a Decimal for both), not raw for the one column."""
    reg = FileRegistry(tmp_path)
    field = {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}
    b = avro_encoder(reg, "t-value", _row_schema(field, False))({"v": decimal.Decimal("1.50")})
    spec = TableSpec(name="public.t", topic="t", columns=(
        Column("id", parse_type("int")[0], True), Column("v", parse_type("decimal(10,2)")[0],
                                                         False),
        Column("V", parse_type("string")[0], False)),
        key_columns=("id",), key_format="int", value_format="avro")
    fields = codecs.value_decoder(spec, reg)(b)
    assert fields["v"] == fields["V"] == decimal.Decimal("1.50")

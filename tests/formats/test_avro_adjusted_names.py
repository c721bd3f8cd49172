"""A column that is no valid Avro name (`a.b`, `1st`) takes the Avro field named as the
change-event envelope and Debezium's `field.name.adjustment.mode=avro` name it (`a_b`,
`_1st`, `changes.avro_envelope.avro_name`): it got NULL in every row (a warning once per
schema), the data being under the adjusted name. Only when no other field matches it and no
other declared column takes that field (both `a.b` and `a_b` declared: `a.b` stays NULL,
and the warning says why); several such columns of one Avro name refuse every record
(`ambiguous_alias`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from connectors.registry import FileRegistry
from materializer.columns import parse_type
from materializer.errors import RecordError
from materializer.formats import codecs
from materializer.formats.field_match import match_fields, unmatched_schema
from materializer.formats.wire import avro_encoder
from materializer.ingest.apply import RowShaper
from materializer.specs import Column, TableSpec


def test_match_fields_takes_the_field_of_the_columns_avro_name() -> None:
    fields = ["id", "a_b", "_1st", "x_y"]
    assert match_fields(fields, ["id", "a.b", "1st"], avro=True) == {
        "id": "id", "a.b": "a_b", "1st": "_1st"}
    assert match_fields(fields, ["id", "a.b"]) == {"id": "id"}  # not without `avro`
    # a field matched by its own name (also case-insensitively) is not guessed for another
    assert match_fields(fields, ["a.b", "a_b"], avro=True) == {"a_b": "a_b"}
    assert match_fields(fields, ["a.b", "A_B"], avro=True) == {"A_B": "a_b"}
    # an alias naming the column wins; a field taken through an alias is not guessed
    assert match_fields(fields, ["a.b"], [("x_y", "alias", "a.b")], avro=True) == {
        "a.b": "x_y"}
    assert match_fields(fields, ["q", "a.b"], [("a_b", "alias", "q")], avro=True) == {
        "q": "a_b"}
    # several columns of one Avro name: none
    assert match_fields(fields, ["a.b", "a-b"], avro=True) == {}
    # a valid Avro name is never adjusted (`ab` is not `a_b`'s)
    assert match_fields(fields, ["ab", "x"], avro=True) == {}


def test_unmatched_schema_reads_warns_or_refuses(caplog: pytest.LogCaptureFixture) -> None:
    fields = ["id", "a_b", "n"]
    assert unmatched_schema("S1", fields, ["id", "a.b", "n"], ["a.b", "n"], "t",
                            avro=True) is None
    # `a.b` and `a-b` both name `a_b`: no field is guessed, every record refused
    err = unmatched_schema("S2", fields, ["id", "a.b", "a-b"], ["a.b", "a-b"], "t", avro=True)
    assert isinstance(err, RecordError) and err.reason == "ambiguous_alias"
    assert "'a.b', 'a-b'" in str(err) and "'a_b'" in str(err)
    # only through the Avro name: read, not no_declared_columns
    assert unmatched_schema("S3", ["a_b"], ["id", "a.b"], ["a.b"], "t", avro=True) is None
    # `a_b` declared too: it takes the field; `a.b` is NULL and the warning says why
    with caplog.at_level(logging.WARNING, "materializer.formats"):
        assert unmatched_schema("S4", fields, ["id", "a.b", "a_b"], ["a.b", "a_b"], "t",
                                avro=True) is None
    assert "no field for column(s) a.b" in caplog.text
    assert "field 'a_b' is the Avro name of column 'a.b' but fills column(s) 'a_b'" in caplog.text


def _spec(columns: dict[str, str], value_format: str) -> TableSpec:
    cols = tuple(Column(n, parse_type(t)[0], n == "id") for n, t in columns.items())
    return TableSpec(name="public.t", topic="t", columns=cols, key_columns=("id",),
                     key_format="int", value_format=value_format)


def _row(spec: TableSpec, reg: FileRegistry, raw: bytes) -> dict[str, Any]:
    layout = spec.column_names
    return dict(zip(layout, RowShaper(spec, layout).shape(codecs.value_decoder(spec, reg)(raw),
                                                          (1,)), strict=True))


ROW = {"type": "record", "name": "Value", "namespace": "t", "fields": [
    {"name": "a_b", "type": ["null", "string"]},
    {"name": "_1st", "type": ["null", {"type": "int", "logicalType": "date"}]}]}


@pytest.mark.parametrize("reader", ["generated", "fastavro"])
def test_avro_and_debezium_avro_values_fill_the_adjusted_columns(
        tmp_path: Path, reader: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if reader == "fastavro":
        monkeypatch.setattr("materializer.formats.avro_wire.compile_reader", lambda *a: None)
    reg = FileRegistry(tmp_path / "registry")
    columns = {"id": "int", "a.b": "string", "1st": "date"}
    raw = avro_encoder(reg, "v", ROW)({"a_b": "x", "_1st": 19_000})
    own = _row(_spec({"id": "int", "a_b": "string", "_1st": "date"}, "avro"), reg, raw)
    want = dict(zip(columns, own.values(), strict=True))  # the row under the fields' names
    assert want == {"id": 1, "a.b": "x", "1st": 19_000}  # a date's stored form: days
    assert _row(_spec(columns, "avro"), reg, raw) == want
    envelope = {"type": "record", "name": "Envelope", "namespace": "t", "fields": [
        {"name": "before", "type": ["null", ROW], "default": None},
        {"name": "after", "type": ["null", "t.Value"], "default": None},
        {"name": "op", "type": "string"}]}
    raw = avro_encoder(reg, "e", envelope)({"before": None, "op": "c",
                                            "after": {"a_b": "x", "_1st": 19_000}})
    assert _row(_spec(columns, "debezium-avro"), reg, raw) == want


def test_an_avro_key_record_fills_adjusted_key_columns(tmp_path: Path) -> None:
    reg = FileRegistry(tmp_path / "registry")
    cols = (Column("id", parse_type("int")[0], True), Column("k.1", parse_type("string")[0], True),
            Column("v", parse_type("long")[0], False))
    spec = TableSpec(name="public.t", topic="t", columns=cols, key_columns=("id", "k.1"),
                     key_format="avro", value_format="avro")
    key = avro_encoder(reg, "k", {"type": "record", "name": "K", "fields": [
        {"name": "id", "type": "int"}, {"name": "k_1", "type": "string"}]})
    assert codecs.key_decoder(spec, reg)(key({"id": 5, "k_1": "x"})) == (5, "x")
    cols = (*cols[:2], Column("k-1", parse_type("string")[0], True), cols[2])
    two = TableSpec(name="public.t", topic="t", columns=cols, key_columns=("id", "k.1", "k-1"),
                    key_format="avro", value_format="avro")
    with pytest.raises(RecordError) as e:  # `k.1` and `k-1` both `k_1`: not guessed
        codecs.key_decoder(two, reg)(key({"id": 5, "k_1": "x"}))
    assert e.value.reason == "ambiguous_alias"

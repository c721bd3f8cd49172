"""A `debezium-avro` change event names a column by its Avro form and appends `_` when an
earlier column took that form: a table declaring `a.b` before `a_b` writes `a.b`'s values in
the field `a_b` (doc "column a.b") and `a_b`'s in `a_b_` (doc "column a_b"). A reader
declaring both matched column `a_b` to field `a_b` by its exact name (`a.b`'s values: a
silently wrong row) and `a.b` to nothing. The envelope's doc signature (`doc_alias`) now
names the field's column: that column takes the field first, and no other column takes it by
its literal name. Any other doc is free text and changes nothing."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from connectors.registry import FileRegistry
from materializer.columns import parse_type
from materializer.formats import codecs
from materializer.formats.avro_names import doc_alias
from materializer.formats.avro_schema import field_aliases
from materializer.formats.field_match import match_fields, unmatched_schema
from materializer.formats.wire import avro_encoder
from materializer.ingest.apply import RowShaper
from materializer.specs import Column, TableSpec

ROW = {"type": "record", "name": "Value", "namespace": "t", "fields": [
    {"name": "id", "type": "long"},
    {"name": "a_b", "type": ["null", "string"], "default": None, "doc": "column a.b"},
    {"name": "a_b_", "type": ["null", "string"], "default": None, "doc": "column a_b"}]}
NAMES = ["id", "a_b", "a_b_"]


def test_doc_alias_is_only_the_envelopes_signature() -> None:
    assert doc_alias("a_b", "column a.b") == "a.b"
    assert doc_alias("a_b_", "column a_b") == "a_b"
    assert doc_alias("a_b__", "column a.b") == "a.b"
    assert doc_alias("_1st", "column 1st") == "1st"
    # free text, another column's form, the field's own name: no column
    for name, doc in [("a_b", "the column a.b"), ("a_b", "column a.c"), ("a_bx", "column a.b"),
                      ("a_b", "column  a.b"), ("x", "column x"), ("a_b", "Column a.b"),
                      ("a_b", None), ("a_b", ["column a.b"]), ("x_", "column "),
                      ("_a_b", "column a.b")]:
        assert doc_alias(name, doc) is None, (name, doc)


def test_field_aliases_gives_the_doc_column() -> None:
    assert field_aliases(ROW) == [("a_b", "doc", "a.b"), ("a_b_", "doc", "a_b")]


def test_columns_take_the_fields_their_docs_name() -> None:
    al = field_aliases(ROW)
    both = {"id": "id", "a.b": "a_b", "a_b": "a_b_"}
    assert match_fields(NAMES, ["id", "a.b", "a_b"], al, avro=True) == both
    assert match_fields(NAMES, ["id", "a_b", "a.b"], al, avro=True) == both
    # one of them: its own field still
    assert match_fields(NAMES, ["id", "a_b"], al, avro=True) == {"id": "id", "a_b": "a_b_"}
    assert match_fields(NAMES, ["id", "a.b"], al, avro=True) == {"id": "id", "a.b": "a_b"}
    # a column named as a field whose doc names another declared column does not take it
    assert match_fields(NAMES, ["a_b", "a_b_"], al, avro=True) == {"a_b": "a_b_"}
    # nor case-insensitively
    assert match_fields(NAMES, ["a_b", "A_B_"], al, avro=True) == {"a_b": "a_b_"}
    # the field's literal name still reads it when its doc's column is not declared
    assert match_fields(NAMES, ["a_b_"], al, avro=True) == {"a_b_": "a_b_"}
    # `a_b` declared before `a.b`: `a_b` is the plain field, `a_b_` is `a.b`'s (it took
    # `a_b`'s values through its Avro form when `a_b` was not declared)
    first = ["id", "a_b", "a_b_"]
    al2 = [("a_b_", "doc", "a.b")]
    assert match_fields(first, ["a.b", "a_b"], al2, avro=True) == {"a.b": "a_b_", "a_b": "a_b"}
    assert match_fields(first, ["a.b"], al2, avro=True) == {"a.b": "a_b_"}
    # without the docs (a third party's schema): by name, as before
    assert match_fields(NAMES, ["a.b", "a_b"], avro=True) == {"a_b": "a_b"}


def test_a_doc_clashing_with_a_plain_field_is_not_followed() -> None:
    # `x_` says it is column `x`, but a field without the signature is named `x`: by name
    names = ["x", "x_"]
    al: list[tuple[str, str, str]] = [("x_", "doc", "x")]
    assert match_fields(names, ["x"], al, avro=True) == {"x": "x"}
    # two fields whose docs name one column: neither is followed
    names = ["a_b", "a_b_"]
    al = [("a_b", "doc", "a.b"), ("a_b_", "doc", "a.b")]
    assert match_fields(names, ["a.b", "a_b"], al, avro=True) == {"a_b": "a_b"}


def _spec(columns: dict[str, str], value_format: str) -> TableSpec:
    cols = tuple(Column(n, parse_type(t)[0], n == "id") for n, t in columns.items())
    return TableSpec(name="public.t", topic="t", columns=cols, key_columns=("id",),
                     key_format="int", value_format=value_format)


def _row(spec: TableSpec, reg: FileRegistry, raw: bytes) -> dict[str, Any]:
    layout = spec.column_names
    return dict(zip(layout, RowShaper(spec, layout).shape(codecs.value_decoder(spec, reg)(raw),
                                                          (1,)), strict=True))


@pytest.mark.parametrize("reader", ["generated", "fastavro"])
def test_avro_and_debezium_avro_values_follow_the_docs(
        tmp_path: Path, reader: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if reader == "fastavro":
        monkeypatch.setattr("materializer.formats.avro_wire.compile_reader", lambda *a: None)
    reg = FileRegistry(tmp_path / "registry")
    want = {"id": 1, "a.b": "dot", "a_b": "under"}
    row = {"id": 1, "a_b": "dot", "a_b_": "under"}
    raw = avro_encoder(reg, "v", ROW)(row)
    for columns in ({"id": "long", "a.b": "string", "a_b": "string"},
                    {"id": "long", "a_b": "string", "a.b": "string"}):
        assert _row(_spec(columns, "avro"), reg, raw) == want
    envelope = {"type": "record", "name": "Envelope", "namespace": "t", "fields": [
        {"name": "before", "type": ["null", ROW], "default": None},
        {"name": "after", "type": ["null", "t.Value"], "default": None},
        {"name": "op", "type": "string"}]}
    raw = avro_encoder(reg, "e", envelope)({"before": None, "op": "c", "after": row})
    assert _row(_spec({"id": "long", "a.b": "string", "a_b": "string"}, "debezium-avro"),
                reg, raw) == want


def test_an_avro_key_record_follows_the_docs(tmp_path: Path) -> None:
    reg = FileRegistry(tmp_path / "registry")
    cols = (Column("a.b", parse_type("string")[0], True),
            Column("a_b", parse_type("string")[0], True), Column("v", parse_type("long")[0], False))
    spec = TableSpec(name="public.t", topic="t", columns=cols, key_columns=("a.b", "a_b"),
                     key_format="avro", value_format="avro")
    key = avro_encoder(reg, "k", {"type": "record", "name": "K", "fields": [
        {"name": "a_b", "type": "string", "doc": "column a.b"},
        {"name": "a_b_", "type": "string", "doc": "column a_b"}]})
    assert codecs.key_decoder(spec, reg)(key({"a_b": "dot", "a_b_": "under"})) == (
        "dot", "under")


def test_renames_onto_a_read_field_and_cycles_are_applied_in_order(tmp_path: Path) -> None:
    reg = FileRegistry(tmp_path / "registry")
    # contrived: field `a_b` has alias `a_b_` too, so column `a_b_` takes it through the
    # alias while column `a_b` takes `a_b_` through its doc: each column is written from
    # the other's field, which must be read before it is overwritten
    schema = {"type": "record", "name": "V", "namespace": "t", "fields": [
        {"name": "id", "type": "long"},
        {"name": "a_b", "type": "string", "doc": "column a.b", "aliases": ["a_b_"]},
        {"name": "a_b_", "type": "string", "doc": "column a_b"}]}
    raw = avro_encoder(reg, "c", schema)({"id": 1, "a_b": "dot", "a_b_": "under"})
    spec = _spec({"id": "long", "a_b": "string", "a_b_": "string"}, "avro")
    assert _row(spec, reg, raw) == {"id": 1, "a_b": "under", "a_b_": "dot"}


def test_a_column_named_as_a_field_another_column_takes_is_warned(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "materializer.formats"):
        assert unmatched_schema("SD", NAMES, ["id", "a_b", "a_b_"], ["a_b", "a_b_"], "t",
                                field_aliases(ROW), avro=True) is None
    assert "no field for column(s) a_b_" in caplog.text
    assert "field 'a_b_' is column 'a_b''s (its doc is \"column a_b\")" in caplog.text

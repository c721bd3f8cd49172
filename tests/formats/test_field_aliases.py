"""Avro field `aliases` fill the columns they name (probe h93): a producer that renamed a
field (`mail`, with `"aliases": ["email"]`) while the relation declares `email` gave NULL
in `email` (and a warning once per schema), and under `partial_update` the column kept its
stale value. A column no field matches by its own name (exactly, or case-insensitively
when unambiguous) now takes the one field one of whose aliases is its name; a field
matched by its own name wins; several fields naming one column by their aliases refuse
every record of the schema (`ambiguous_alias`), naming the fields and the column. On every
reader: the generated one, fastavro's (a recursive schema, a schema no reader is
generated for), a Debezium `after` record, and an Avro key record."""

from __future__ import annotations

import decimal
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.registry import FileRegistry
from materializer.columns import parse_type
from materializer.errors import RecordError
from materializer.formats import codecs
from materializer.formats.wire import avro_encoder
from materializer.ingest.apply import RowShaper
from materializer.specs import Column, RelationSpec, TableSpec


@pytest.fixture()
def reg(tmp_path: Path) -> FileRegistry:
    return FileRegistry(tmp_path / "registry")


READERS = ["generated", "fastavro"]


@pytest.fixture(params=READERS)
def reader(request: pytest.FixtureRequest) -> Iterator[str]:
    """Values read by the generated reader, or by fastavro's (no reader generated)."""
    with pytest.MonkeyPatch.context() as mp:
        if request.param == "fastavro":
            mp.setattr("materializer.formats.avro_wire.compile_reader", lambda *a: None)
        yield request.param


def spec_of(columns: dict[str, str], value_format: str = "avro", key_format: str = "int",
            key: tuple[str, ...] = ("id",)) -> TableSpec:
    cols = tuple(Column(n, parse_type(t)[0], n in key) for n, t in columns.items())
    return TableSpec(name="public.t", topic="t", columns=cols, key_columns=key,
                     key_format=key_format, value_format=value_format)


def row(spec: RelationSpec, reg: FileRegistry, raw: bytes) -> dict[str, Any]:
    layout = spec.column_names
    return dict(zip(layout, RowShaper(spec, layout).shape(codecs.value_decoder(spec, reg)(raw),
                                                          (1,)), strict=True))


def record(*fields: dict[str, Any], name: str = "V") -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "t", "fields": list(fields)}


COLUMNS = {"id": "int", "n": "long", "email": "string"}
RENAMED = record({"name": "n", "type": "long"},
                 {"name": "mail", "type": ["null", "string"], "aliases": ["email", "e"]})


def test_a_column_takes_the_field_whose_alias_it_is(reg: FileRegistry, reader: str) -> None:
    spec = spec_of(COLUMNS)
    raw = avro_encoder(reg, "v", RENAMED)({"n": 7, "mail": "a@b"})
    assert row(spec, reg, raw) == {"id": 1, "n": 7, "email": "a@b"}
    fields = codecs.value_decoder(spec, reg)(raw)
    assert fields["email"] == "a@b"  # present: a partial_update column takes it
    null = avro_encoder(reg, "v", RENAMED)({"n": 8, "mail": None})
    got = codecs.value_decoder(spec, reg)(null)
    assert "email" in got and got["email"] is None  # held as null: set to null


def test_a_field_read_through_its_alias_keeps_its_conversions(reg: FileRegistry,
                                                              reader: str) -> None:
    """A logical type read raw (timestamp-millis), a Connect decimal and a date, through
    aliases: the row of the schema that names the fields as the columns."""
    types = {"at": {"type": "long", "logicalType": "timestamp-millis"},
             "amount": {"type": "bytes", "connect.name": "org.apache.kafka.connect.data.Decimal",
                        "connect.parameters": {"scale": "2"}},
             "day": {"type": "int", "logicalType": "date"}}
    values = {"at": 1_700_000_000_123, "amount": (12345).to_bytes(3, "big"), "day": 19_000}
    spec = spec_of({"id": "int", "at": "timestamp", "amount": "decimal(10,2)", "day": "date"})
    own = avro_encoder(reg, "own", record(*({"name": k, "type": t} for k, t in types.items())))
    renamed = avro_encoder(reg, "renamed", record(
        *({"name": f"{k}2", "type": t, "aliases": [k]} for k, t in types.items()), name="R"))
    want = row(spec, reg, own(values))
    assert decimal.Decimal(want["amount"]) == decimal.Decimal("123.45")
    assert want["at"] is not None and want["day"] is not None
    assert row(spec, reg, renamed({f"{k}2": v for k, v in values.items()})) == want


def test_a_recursive_schema_follows_aliases_too(reg: FileRegistry) -> None:
    """Read by fastavro's pure-Python reader."""
    schema = record({"name": "mail", "type": "string", "aliases": ["email"]},
                    {"name": "next", "type": ["null", "t.V"]})
    raw = avro_encoder(reg, "v", schema)({"mail": "x@y", "next": {"mail": "in", "next": None}})
    assert row(spec_of({"id": "int", "email": "string"}), reg, raw) == {"id": 1, "email": "x@y"}


def test_a_schema_sharing_a_column_only_through_an_alias_is_read(reg: FileRegistry) -> None:
    """It was no_declared_columns: no field had a column's name."""
    raw = avro_encoder(reg, "v", record(
        {"name": "mail", "type": "string", "aliases": ["email"]}))({"mail": "a@b"})
    assert row(spec_of(COLUMNS), reg, raw) == {"id": 1, "n": None, "email": "a@b"}


def test_a_field_matched_by_its_own_name_wins_over_an_alias(reg: FileRegistry,
                                                            reader: str) -> None:
    exact = record({"name": "email", "type": "string"},
                   {"name": "mail", "type": "string", "aliases": ["email"]},
                   {"name": "num", "type": "long", "aliases": ["n"]})
    raw = avro_encoder(reg, "a", exact)({"email": "own", "mail": "alias", "num": 1})
    assert row(spec_of(COLUMNS), reg, raw) == {"id": 1, "n": 1, "email": "own"}
    folded = record({"name": "EMAIL", "type": "string"},
                    {"name": "mail", "type": "string", "aliases": ["email"]},
                    {"name": "old", "type": "string", "aliases": ["email"]},
                    {"name": "num", "type": "long", "aliases": ["n"]})
    raw = avro_encoder(reg, "b", folded)({"EMAIL": "own", "mail": "alias", "old": "x",
                                          "num": 2})
    # matched case-insensitively by its own name: no ambiguity between the aliases either
    assert row(spec_of(COLUMNS), reg, raw) == {"id": 1, "n": 2, "email": "own"}


def test_one_field_fills_its_own_column_and_the_one_its_alias_names(reg: FileRegistry) -> None:
    schema = record({"name": "email", "type": "string", "aliases": ["mail"]})
    raw = avro_encoder(reg, "v", schema)({"email": "a@b"})
    got = row(spec_of({"id": "int", "email": "string", "mail": "string"}), reg, raw)
    assert got == {"id": 1, "email": "a@b", "mail": "a@b"}


def test_several_fields_naming_a_column_by_their_aliases_refuse_every_record(
        reg: FileRegistry, reader: str) -> None:
    schema = record({"name": "n", "type": "long"},
                    {"name": "mail", "type": "string", "aliases": ["email"]},
                    {"name": "e_mail", "type": "string", "aliases": ["x", "email"]})
    enc = avro_encoder(reg, "v", schema)
    dec = codecs.value_decoder(spec_of(COLUMNS), reg)
    for i in range(2):
        with pytest.raises(RecordError) as e:
            dec(enc({"n": i, "mail": "a", "e_mail": "b"}))
        assert e.value.reason == "ambiguous_alias"
        text = str(e.value)
        assert text.startswith("value: the Avro record t.V: ")
        assert ("column 'email' is named by the alias of field 'mail' and the alias of field "
                "'e_mail', which is ambiguous") in text
    # the same aliases on a column the relation does not declare: read
    assert row(spec_of({"id": "int", "n": "long"}), reg, enc({"n": 3, "mail": "a",
                                                               "e_mail": "b"})) == {"id": 1,
                                                                                    "n": 3}


def test_an_alias_differing_from_a_column_only_in_case_is_named_in_the_warning(
        reg: FileRegistry, caplog: pytest.LogCaptureFixture) -> None:
    """Not followed (names are exact): the once-per-schema warning says why."""
    schema = record({"name": "n", "type": "long"},
                    {"name": "mail", "type": "string", "aliases": ["EMAIL"]})
    with caplog.at_level(logging.WARNING, logger="materializer.formats"):
        got = row(spec_of(COLUMNS), reg, avro_encoder(reg, "v", schema)({"n": 1, "mail": "a"}))
    assert got["email"] is None
    assert "field 'mail' has alias 'EMAIL'" in caplog.text
    assert "only when they are its name exactly" in caplog.text
    assert "not followed" not in caplog.text


def _envelope(after: dict[str, Any]) -> dict[str, Any]:
    return {"type": "record", "name": "Envelope", "namespace": "db", "fields": [
        {"name": "before", "type": ["null", after]},
        {"name": "after", "type": ["null", f"t.{after['name']}"]},
        {"name": "op", "type": "string"}]}


def test_a_debezium_after_record_follows_aliases(reg: FileRegistry, reader: str) -> None:
    spec = spec_of(COLUMNS, value_format="debezium-avro")
    enc = avro_encoder(reg, "d", _envelope(RENAMED))
    raw = enc({"before": None, "after": {"n": 7, "mail": "a@b"}, "op": "u"})
    assert row(spec, reg, raw) == {"id": 1, "n": 7, "email": "a@b"}
    both = record({"name": "mail", "type": "string", "aliases": ["email"]},
                  {"name": "e_mail", "type": "string", "aliases": ["email"]}, name="W")
    raw = avro_encoder(reg, "w", _envelope(both))(
        {"before": None, "after": {"mail": "a", "e_mail": "b"}, "op": "c"})
    with pytest.raises(RecordError) as e:
        codecs.value_decoder(spec, reg)(raw)
    assert e.value.reason == "ambiguous_alias" and "`after` record t.W" in str(e.value)


def test_an_avro_key_record_follows_aliases(reg: FileRegistry, reader: str) -> None:
    spec = spec_of({"id": "int", "n": "long"}, key_format="avro")
    key = avro_encoder(reg, "k", record({"name": "ident", "type": "int", "aliases": ["id"]},
                                        name="K"))
    assert codecs.key_decoder(spec, reg)(key({"ident": 5})) == (5,)
    two = avro_encoder(reg, "k2", record({"name": "a", "type": "int", "aliases": ["id"]},
                                         {"name": "b", "type": "int", "aliases": ["id"]},
                                         name="K2"))
    with pytest.raises(RecordError) as e:
        codecs.key_decoder(spec, reg)(two({"a": 1, "b": 2}))
    assert e.value.reason == "ambiguous_alias"
    assert str(e.value).startswith("key: the Avro key record t.K2: column 'id' is named by")

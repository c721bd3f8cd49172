"""Avro records refused for the right reason, schemas read as the spec says (probe h68):

- on fastavro's reader (recursive schemas, schemas no reader is generated for), a logical
  type's converter failing on the last field (a date past year 9999, a uuid string that is
  no uuid) was `truncated` ("ends early") although the body is whole, and an enum index
  out of range there too: now `type_mismatch` for the value that does not convert and
  `avro_decode` for bytes no writer writes, as the generated reader reports them (which
  gave `avro_decode` for a date past 9999);
- a decimal logical type with invalid parameters (scale > precision, a negative scale, no
  precision, a fixed too small for its precision) is ignored and its bytes read as bytes,
  as the Avro spec says and Java's parser does: fastavro refuses such a schema, so every
  record of it was `bad_schema`;
- the once-per-schema warning of columns a schema leaves NULL names a field whose Avro
  `aliases` (Protobuf `json_name`) is such a column but for case (one naming it exactly
  fills it: tests/formats/test_field_aliases.py, test_protobuf_json_names.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from connectors.registry import FileRegistry
from materializer.changes.avro_rows import zigzag
from materializer.columns import parse_type
from materializer.errors import RecordError
from materializer.formats import codecs
from materializer.formats.wire import header
from materializer.ingest.apply import RowShaper
from materializer.specs import Column, TableSpec
from tests.support.avro import avro_table


def _string(s: str) -> bytes:
    raw = s.encode()
    return zigzag(len(raw)) + raw


@pytest.fixture()
def reg(tmp_path: Path) -> FileRegistry:
    return FileRegistry(tmp_path / "registry")


DATE = {"type": "int", "logicalType": "date"}
MICROS = {"type": "long", "logicalType": "timestamp-micros"}
UUID = {"type": "string", "logicalType": "uuid"}
ENUM = {"type": "enum", "name": "E", "symbols": ["A", "B"]}

# the last field's type, its body, the reason
LAST: dict[str, tuple[Any, bytes, str]] = {
    "date past 9999": (DATE, zigzag(2_932_897), "type_mismatch"),  # 10000-01-01
    "date past 9999 in a union": (["null", DATE], b"\x02" + zigzag(2_932_897),
                                  "type_mismatch"),
    "timestamp-micros past 9999": (MICROS, zigzag(253_402_300_800_000_000),
                                   "type_mismatch"),
    "uuid string that is no uuid": (UUID, _string("not-a-uuid"), "type_mismatch"),
    "enum index out of range": (ENUM, zigzag(5), "avro_decode"),
}

# fields before `c` making the schema one fastavro reads, and their body
READERS: dict[str, tuple[list[dict[str, Any]], bytes]] = {
    "generated": ([], b""),
    "fastavro (recursive)": ([{"name": "next", "type": ["null", "V"]}], b"\x00"),
    "fastavro (not generated)": (
        [{"name": "nothing", "type": {"type": "array", "items": "null"}}], b"\x02\x00"),
}


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("case", list(LAST))
def test_a_last_value_that_does_not_convert_is_not_truncated(
        reg: FileRegistry, reader: str, case: str) -> None:
    node, body, reason = LAST[case]
    before, head = READERS[reader]
    sid = reg.register("v", {"type": "record", "name": "V",
                             "fields": [*before, {"name": "c", "type": node}]})
    for column in ("string", "json"):
        decode = codecs.value_decoder(avro_table({"id": "int", "c": column}), reg)
        with pytest.raises(RecordError) as e:
            decode(header(sid) + head + body)
        assert e.value.reason == reason, (reader, case, column, str(e.value))


@pytest.mark.parametrize("reader", list(READERS))
def test_a_body_that_ends_early_is_still_truncated(reg: FileRegistry, reader: str) -> None:
    before, head = READERS[reader]
    sid = reg.register("v", {"type": "record", "name": "V", "fields": [
        *before, {"name": "d", "type": DATE}, {"name": "c", "type": "string"}]})
    decode = codecs.value_decoder(avro_table({"id": "int", "c": "string"}), reg)
    whole = header(sid) + head + zigzag(19_000) + _string("hello")
    assert decode(whole)["c"] == "hello"
    for cut in (1, 3, 6):  # in the string, in its length; the date's varint cut short
        with pytest.raises(RecordError) as e:
            decode(whole[:-cut] if cut < 6 else header(sid) + head + b"\x80")
        assert e.value.reason == "truncated", (reader, cut)


INVALID_DECIMALS = {
    "scale > precision": {"type": "bytes", "logicalType": "decimal", "precision": 2,
                          "scale": 3},
    "negative scale": {"type": "bytes", "logicalType": "decimal", "precision": 4,
                       "scale": -1},
    "no precision": {"type": "bytes", "logicalType": "decimal", "scale": 2},
    "precision 0": {"type": "bytes", "logicalType": "decimal", "precision": 0},
    "precision as text": {"type": "bytes", "logicalType": "decimal", "precision": "4"},
    "fixed too small": {"type": "fixed", "name": "F", "size": 2, "logicalType": "decimal",
                        "precision": 10, "scale": 2},
}


@pytest.mark.parametrize("case", list(INVALID_DECIMALS))
def test_an_invalid_decimal_logical_type_is_read_as_its_bytes(
        reg: FileRegistry, case: str) -> None:
    node = INVALID_DECIMALS[case]
    raw = (1234).to_bytes(2, "big", signed=True)
    body = raw if node["type"] == "fixed" else zigzag(2) + raw
    sid = reg.register("v", {"type": "record", "name": "V",
                             "fields": [{"name": "c", "type": node}]})
    for column, want in (("bytes", raw), ("json", "BNI=")):
        spec = avro_table({"id": "int", "c": column})
        fields = codecs.value_decoder(spec, reg)(header(sid) + body)
        assert RowShaper(spec, spec.column_names).shape(fields, (1,)) == [1, want], column
    spec = avro_table({"id": "int", "c": "decimal(10,2)"})
    fields = codecs.value_decoder(spec, reg)(header(sid) + body)
    with pytest.raises(RecordError) as e:  # no scale to read the bytes at: refused, loudly
        RowShaper(spec, spec.column_names).shape(fields, (1,))
    assert e.value.reason == "type_mismatch"


def test_a_valid_decimal_is_still_a_decimal(reg: FileRegistry) -> None:
    for node in ({"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2},
                 {"type": "bytes", "logicalType": "decimal", "precision": 4},
                 {"type": "fixed", "name": "F", "size": 2, "logicalType": "decimal",
                  "precision": 4, "scale": 4}):
        raw = (1234).to_bytes(2, "big", signed=True)
        body = raw if node["type"] == "fixed" else zigzag(2) + raw
        sid = reg.register(f"v{id(node)}", {"type": "record", "name": "V",
                                            "fields": [{"name": "c", "type": node}]})
        spec = avro_table({"id": "int", "c": "decimal(10,4)"})
        fields = codecs.value_decoder(spec, reg)(header(sid) + body)
        scale = node.get("scale", 0)
        assert isinstance(scale, int)
        want = f"{1234 / 10**scale:.4f}"
        assert RowShaper(spec, spec.column_names).shape(fields, (1,)) == [1, want]


def test_an_unfilled_column_warning_names_the_field_whose_alias_it_is(
        reg: FileRegistry, caplog: pytest.LogCaptureFixture) -> None:
    sid = reg.register("v", {"type": "record", "name": "Aliased", "fields": [
        {"name": "mail", "type": "string", "aliases": ["EMAIL", "e"]},
        {"name": "n", "type": "long"}]})
    spec = avro_table({"id": "int", "n": "long", "email": "string"})
    with caplog.at_level(logging.WARNING, logger="materializer.formats"):
        fields = codecs.value_decoder(spec, reg)(header(sid) + _string("a@b") + zigzag(7))
    assert "email" not in fields  # an alias fills a column it names exactly only
    text = caplog.text
    assert "no field for column(s) email" in text
    assert "field 'mail' has alias 'EMAIL'" in text and "its name exactly" in text


def test_an_unfilled_column_warning_names_a_protobuf_json_name(
        caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("google.protobuf")
    from google.protobuf import descriptor_pb2, descriptor_pool  # noqa: PLC0415

    from materializer.formats.protobuf import _row_reader  # noqa: PLC0415

    fdp = descriptor_pb2.FileDescriptorProto(name="alias_t.proto", package="alias_t",
                                             syntax="proto3")
    msg = fdp.message_type.add(name="V")
    msg.field.add(name="user_id", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
                  json_name="userId")
    msg.field.add(name="n", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
                  json_name="n")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    desc = pool.FindMessageTypeByName("alias_t.V")
    spec = TableSpec(name="public.pt", topic="pt",
                     columns=tuple(Column(n, parse_type(t)[0], n == "id") for n, t in
                                   {"id": "int", "n": "long", "userid": "long"}.items()),
                     key_columns=("id",), key_format="int", value_format="protobuf")
    with caplog.at_level(logging.WARNING, logger="materializer.formats"):
        _row_reader(desc, {"n": parse_type("long")[0], "userid": parse_type("long")[0]}, spec)
    assert "field 'user_id' has json_name 'userId'" in caplog.text  # not `userid` exactly

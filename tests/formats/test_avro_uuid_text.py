"""Avro uuids into the columns that can hold them (h68's left items):

- a uuid string (`{"type": "string", "logicalType": "uuid"}`) into a `string` column (or
  `array<string>`) refused every record: fastavro's converter makes a `uuid.UUID`, which a
  string column does not take; ksqlDB and Connect declare such fields STRING. The string
  column now keeps the text as its producer wrote it (upper case stays upper case), a json
  column too, and a uuid column stores its canonical form. Text that is no uuid is still
  refused (`type_mismatch`, tests/formats/test_avro_loud_reasons.py);
- Avro 1.12's uuid on a `fixed(16)` was left as 16 bytes by fastavro and refused by uuid and
  string columns: it is read as the uuid's canonical text. A uuid on a fixed of another size
  is an invalid logical type, ignored as the spec says: its bytes.

On both readers: the generated one and fastavro's (recursive schemas, schemas no reader is
generated for).
"""

from __future__ import annotations

import uuid
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
from materializer.specs import Column, RelationSpec, TableSpec
from tests.support.avro import avro_table

TEXT = "12345678-ABCD-5678-1234-567812345678"
CANONICAL = TEXT.lower()
UUID_STRING = {"type": "string", "logicalType": "uuid"}


def _fixed(size: int) -> dict[str, Any]:
    return {"type": "fixed", "name": f"U{size}", "size": size, "logicalType": "uuid"}


def _string(s: str) -> bytes:
    raw = s.encode()
    return zigzag(len(raw)) + raw


# fields before the uuid fields making the schema one fastavro reads, and their body
READERS: dict[str, tuple[list[dict[str, Any]], bytes]] = {
    "generated": ([], b""),
    "fastavro (recursive)": ([{"name": "next", "type": ["null", "V"]}], b"\x00"),
    "fastavro (not generated)": (
        [{"name": "nothing", "type": {"type": "array", "items": "null"}}], b"\x02\x00"),
}


@pytest.fixture()
def reg(tmp_path: Path) -> FileRegistry:
    return FileRegistry(tmp_path / "registry")


def _row(reg: FileRegistry, reader: str, node: Any, body: bytes,
         columns: dict[str, str]) -> dict[str, Any]:
    """The stored row of a record whose field `c` is `node` and `a` an array of it."""
    before, head = READERS[reader]
    item = node["name"] if isinstance(node, dict) and "name" in node else node
    sid = reg.register("v", {"type": "record", "name": "V", "fields": [
        *before, {"name": "c", "type": node},
        {"name": "a", "type": {"type": "array", "items": item}}]})
    spec: RelationSpec = avro_table({"id": "int", **columns})
    fields = codecs.value_decoder(spec, reg)(header(sid) + head + body + b"\x02" + body
                                             + b"\x00")
    layout = spec.column_names
    return dict(zip(layout, RowShaper(spec, layout).shape(fields, (1,)), strict=True))


@pytest.mark.parametrize("reader", list(READERS))
def test_a_uuid_string_fills_a_string_column_as_written(reg: FileRegistry,
                                                        reader: str) -> None:
    row = _row(reg, reader, UUID_STRING, _string(TEXT), {"c": "string", "a": "array<string>"})
    assert (row["c"], row["a"]) == (TEXT, [TEXT])


@pytest.mark.parametrize("reader", list(READERS))
def test_a_uuid_string_in_uuid_and_json_columns(reg: FileRegistry, reader: str) -> None:
    row = _row(reg, reader, UUID_STRING, _string(TEXT), {"c": "uuid", "a": "array<uuid>"})
    assert (row["c"], row["a"]) == (CANONICAL, [CANONICAL])
    row = _row(reg, reader, UUID_STRING, _string(TEXT), {"c": "json", "a": "json"})
    assert (row["c"], row["a"]) == (TEXT, [TEXT])


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("column", ["uuid", "string", "json"])
def test_a_uuid_on_fixed_16_is_its_canonical_text(reg: FileRegistry, reader: str,
                                                  column: str) -> None:
    body = uuid.UUID(TEXT).bytes
    item = "json" if column == "json" else f"array<{column}>"
    row = _row(reg, reader, _fixed(16), body, {"c": column, "a": item})
    assert (row["c"], row["a"]) == (CANONICAL, [CANONICAL])


@pytest.mark.parametrize("reader", list(READERS))
def test_a_uuid_on_a_fixed_of_another_size_is_ignored(reg: FileRegistry, reader: str) -> None:
    body = bytes(range(8))
    row = _row(reg, reader, _fixed(8), body, {"c": "bytes", "a": "array<bytes>"})
    assert (row["c"], row["a"]) == (body, [body])
    with pytest.raises(RecordError) as e:
        _row(reg, reader, _fixed(8), body, {"c": "uuid", "a": "array<bytes>"})
    assert e.value.reason == "type_mismatch"


def test_an_avro_uuid_key_fills_string_and_uuid_key_columns(reg: FileRegistry) -> None:
    sid = reg.register("k", {"type": "record", "name": "K", "fields": [
        {"name": "s", "type": UUID_STRING}, {"name": "u", "type": UUID_STRING}]})
    cols = tuple(Column(n, parse_type(t)[0], n != "v")
                 for n, t in {"s": "string", "u": "uuid", "v": "string"}.items())
    spec = TableSpec(name="public.t", topic="t", columns=cols, key_columns=("s", "u"),
                     key_format="avro", value_format="avro")
    decode = codecs.key_decoder(spec, reg)
    assert decode(header(sid) + _string(TEXT) + _string(TEXT)) == (TEXT, CANONICAL)

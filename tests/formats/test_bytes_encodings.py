"""A bytes column's `encoding: base64 | base64-url-safe | hex` (Debezium's
binary.handling.mode of that name): text is read in that encoding only, strictly, also
where a Connect JSON or Avro schema types the field as `string` (refused without an
encoding: tests/formats/test_binary_handling_text.py); a field the schema types as bytes is
still bytes; Debezium's placeholder is recognised in the encoded form; the declaration
(YAML, DDL) takes it on bytes columns only, and changing it needs a rebuild."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from connectors.registry import FileRegistry
from materializer.binary_text import bytes_in, bytes_text
from materializer.catalog import describe, load_catalog_text
from materializer.catalog.ddl import parse_ddl
from materializer.columns import ColumnType
from materializer.errors import SchemaChangedError
from materializer.formats.wire import avro_encoder
from materializer.ingest.relation import open_relation
from materializer.testing import FakeRecord
from materializer.values import key_storage, to_storage
from tests.formats.test_binary_handling_text import wrapped
from tests.ingest.test_apply_rules import Harness, spec_of
from tests.ingest.test_debezium_unavailable import AvroHarness, dbz
from tests.support.catalog import errors_of

DATA = bytes([0xFB, 0xFF, 0x01, 0x02])
TEXTS = {"hex": "fbff0102", "base64": "+/8BAg==", "base64-url-safe": "-_8BAg=="}
P = "__debezium_unavailable_value"
PH = {"hex": P.encode().hex(), "base64": base64.b64encode(P.encode()).decode(),
      "base64-url-safe": base64.urlsafe_b64encode(P.encode()).decode()}


def bytes_type(encoding: str | None) -> ColumnType:
    return ColumnType("bytes", encoding=encoding)


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(("encoding", "text", "want"), [
    ("hex", "fbff0102", DATA), ("hex", "FBFF0102", DATA), ("hex", "FbfF0102", DATA),
    ("hex", "", b""),
    ("base64", "+/8BAg==", DATA), ("base64", "", b""),
    ("base64-url-safe", "-_8BAg==", DATA), ("base64-url-safe", "-_8BAg", DATA),
    ("base64-url-safe", "AAE=", b"\x00\x01"), ("base64-url-safe", "AAE", b"\x00\x01"),
    ("base64-url-safe", "", b""),
])
def test_text_is_read_in_the_declared_encoding(encoding: str, text: str, want: bytes) -> None:
    assert to_storage(bytes_type(encoding))(text) == want
    assert key_storage(bytes_type(encoding))(text) == want
    assert to_storage(bytes_type(encoding))(want) == want  # bytes are taken as they are
    assert bytes_in(encoding)(bytearray(want)) == want


@pytest.mark.parametrize(("encoding", "text"), [
    ("hex", "fbff010"),      # odd length
    ("hex", "fbff 0102"),    # whitespace, which bytes.fromhex would skip
    ("hex", "0xfbff"), ("hex", "\\xfbff"), ("hex", "zz"), ("hex", "\uff10\uff10"),
    ("hex", "+/8BAg=="),     # base64 is not hex
    ("base64", "-_8BAg=="),  # the URL-safe alphabet is not standard base64
    ("base64", "+/8BAg"),    # standard base64 is padded
    ("base64", "aGVsbG9="),  # not canonical: also decodes to b"hello"
    ("base64", "+/8B Ag=="),
    ("base64-url-safe", "+/8BAg=="),  # the standard alphabet is not URL-safe
    ("base64-url-safe", "-_8BAg="),   # partial padding
    ("base64-url-safe", "-_8BAg==="), ("base64-url-safe", "A"), ("base64-url-safe", "A==="),
    ("base64-url-safe", "aGVsbG9="),  # not canonical
    ("base64-url-safe", "aGVsbG9"),   # not canonical, unpadded
])
def test_other_text_is_refused_naming_the_encoding(encoding: str, text: str) -> None:
    with pytest.raises(ValueError, match=f"the column's encoding: {encoding}\\)"):
        to_storage(bytes_type(encoding))(text)


def test_the_encoders_write_what_the_decoders_read() -> None:
    for raw in (b"", b"\x00", DATA, bytes(range(256)), P.encode()):
        for encoding in TEXTS:
            assert bytes_in(encoding)(bytes_text(encoding)(raw)) == raw
    assert bytes_text("hex")(DATA) == "fbff0102"  # Debezium's lower case
    assert bytes_text("base64-url-safe")(b"\x00\x01") == "AAE="  # padded, as Java's
    with pytest.raises(TypeError, match="expected bytes or hex text, got int"):
        to_storage(bytes_type("hex"))(7)


def test_without_an_encoding_text_is_still_base64() -> None:
    conv = to_storage(bytes_type(None))
    assert conv("+/8BAg==") == DATA
    assert conv("fbff0102") == base64.b64decode("fbff0102")  # the ambiguity the encoding ends
    with pytest.raises(ValueError, match="expected base64 text"):
        conv("-_8BAg==")


# ------------------------------------------------------------ records, schemaless


def harness(tmp_path: Path, encoding: str, fmt: str = "json", key: str = "INT",
            extra: str = "") -> Harness:
    return Harness(tmp_path, spec_of(
        f"CREATE TABLE t (id {key} PRIMARY KEY, b BYTES ENCODING '{encoding}') WITH "
        f"(kafka_topic='t', key_format='JSON', value_format='{fmt}', on_error='skip'{extra})"))


@pytest.mark.parametrize("encoding", list(TEXTS))
def test_schemaless_json_text_is_read_in_the_encoding(tmp_path: Path, encoding: str) -> None:
    h = harness(tmp_path, encoding)
    assert h.feed((1, {"id": 1, "b": TEXTS[encoding]})).rejected == []
    assert h.get(1) == {"id": 1, "b": DATA}
    d = harness(tmp_path / "dbz", encoding, "debezium-json")
    assert d.feed((1, dbz("c", {"id": 1, "b": TEXTS[encoding]}))).rejected == []
    assert d.get(1) == {"id": 1, "b": DATA}


@pytest.mark.parametrize(("encoding", "bad"), [
    ("hex", "+/8BAg=="), ("hex", "fbff010"), ("base64", "-_8BAg=="),
    ("base64-url-safe", "+/8BAg==")])
def test_text_in_another_encoding_is_a_bad_record(tmp_path: Path, encoding: str, bad: str
                                                  ) -> None:
    h = harness(tmp_path, encoding)
    (r,) = h.feed((1, {"id": 1, "b": bad})).rejected
    assert r.reason == "type_mismatch" and f"encoding: {encoding}" in r.message, r.message
    assert h.get(1) is None


# ------------------------------------------------------------- records with schemas


@pytest.mark.parametrize("fmt", ["debezium-json", "json"])
@pytest.mark.parametrize("encoding", list(TEXTS))
def test_a_connect_string_is_read_in_the_encoding(tmp_path: Path, fmt: str, encoding: str
                                                  ) -> None:
    """What c0e39a4 refused for lack of a way to tell the encoding: now told."""
    h = harness(tmp_path, encoding, fmt)
    out = h.feed((1, wrapped("string", TEXTS[encoding], fmt == "debezium-json")))
    assert out.rejected == []
    assert h.get(1) == {"id": 1, "b": DATA}


@pytest.mark.parametrize("fmt", ["debezium-json", "json"])
@pytest.mark.parametrize("encoding", list(TEXTS))
def test_a_connect_bytes_field_is_still_bytes(tmp_path: Path, fmt: str, encoding: str) -> None:
    """The JSON converter writes a bytes field as standard base64, whatever the column's
    encoding (a hex column would read `+/8BAg==` as bad hex, or `AAAA` as other bytes)."""
    h = harness(tmp_path, encoding, fmt)
    env = fmt == "debezium-json"
    assert h.feed((1, wrapped("bytes", "+/8BAg==", env)), (2, wrapped("bytes", "AAAA", env))
                  ).rejected == []
    assert h.get(1) == {"id": 1, "b": DATA}
    assert h.get(2) == {"id": 2, "b": b"\x00\x00\x00"}  # not 0xaaaa as hex
    (r,) = h.feed((3, wrapped("bytes", "aGVsbG9=", env))).rejected  # not canonical
    assert r.reason == "type_mismatch" and "types as bytes" in r.message


@pytest.mark.parametrize("fmt", ["debezium-json", "json"])
def test_a_bad_connect_string_names_the_encoding(tmp_path: Path, fmt: str) -> None:
    h = harness(tmp_path, "hex", fmt)
    (r,) = h.feed((1, wrapped("string", TEXTS["base64"], fmt == "debezium-json"))).rejected
    assert r.reason == "type_mismatch" and "encoding: hex" in r.message


@pytest.mark.parametrize("fmt", ["debezium-json", "json"])
def test_without_an_encoding_the_refusal_suggests_one(tmp_path: Path, fmt: str) -> None:
    h = Harness(tmp_path, spec_of(
        "CREATE TABLE t (id INT PRIMARY KEY, b BYTES) WITH (kafka_topic='t', "
        f"key_format='JSON', value_format='{fmt}', on_error='skip')"))
    (r,) = h.feed((1, wrapped("string", "fbff0102", fmt == "debezium-json"))).rejected
    assert r.reason == "type_mismatch"
    assert "encoding: hex | base64 | base64-url-safe" in r.message, r.message


def avro_schema(fmt: str, btype: str) -> dict[str, Any]:
    row = {"type": "record", "name": "Value", "fields": [
        {"name": "id", "type": "int"}, {"name": "b", "type": ["null", btype]}]}
    if fmt == "avro":
        return row
    return {"type": "record", "name": "Envelope", "fields": [
        {"name": "after", "type": ["null", row]},
        {"name": "before", "type": ["null", "Value"], "default": None},
        {"name": "op", "type": "string"}]}


def avro_harness(tmp_path: Path, fmt: str, btype: str, encoding: str, extra: str = ""
                 ) -> tuple[AvroHarness, Any]:
    reg = FileRegistry(tmp_path / f"registry-{btype}")
    encode = avro_encoder(reg, "t-value", avro_schema(fmt, btype))
    h = AvroHarness(tmp_path / f"data-{btype}", spec_of(
        f"CREATE TABLE t (id INT PRIMARY KEY, b BYTES ENCODING '{encoding}') WITH "
        f"(kafka_topic='t', key_format='JSON', value_format='{fmt}', on_error='skip'{extra})"),
        registry=reg)

    def feed(key: int, value: dict[str, Any]) -> Any:
        off = next(h.offsets)
        raw = encode(value if fmt == "avro" else {"before": None, "after": value, "op": "u"})
        return h.apply([FakeRecord(json.dumps(key).encode(), raw, off, off)])
    return h, feed


@pytest.mark.parametrize("fmt", ["debezium-avro", "avro"])
@pytest.mark.parametrize("encoding", list(TEXTS))
def test_avro_string_is_read_in_the_encoding_and_bytes_stay_bytes(
        tmp_path: Path, fmt: str, encoding: str) -> None:
    h, feed = avro_harness(tmp_path, fmt, "string", encoding)
    assert feed(1, {"id": 1, "b": TEXTS[encoding]}).rejected == []
    assert h.get(1) == {"id": 1, "b": DATA}
    (r,) = feed(2, {"id": 2, "b": "not in it!"}).rejected
    assert r.reason == "type_mismatch" and f"encoding: {encoding}" in r.message
    raw, feed_raw = avro_harness(tmp_path, fmt, "bytes", encoding)
    assert feed_raw(1, {"id": 1, "b": b"fbff0102"}).rejected == []
    assert raw.get(1) == {"id": 1, "b": b"fbff0102"}  # the bytes, not read as hex


# --------------------------------------------------------------------- key columns


@pytest.mark.parametrize("encoding", list(TEXTS))
def test_a_key_column_reads_the_producer_key_in_the_encoding(tmp_path: Path, encoding: str
                                                             ) -> None:
    h = Harness(tmp_path, spec_of(
        f"CREATE TABLE t (k BYTES PRIMARY KEY ENCODING '{encoding}', v STRING) WITH "
        "(kafka_topic='t', key_format='JSON', value_format='JSON', on_error='skip')"))
    assert h.feed((TEXTS[encoding], {"v": "x"})).rejected == []
    assert h.get(DATA) == {"k": DATA, "v": "x"}
    (r,) = h.feed(("!" + TEXTS[encoding], {"v": "y"})).rejected
    assert r.reason == "key_mismatch" and f"encoding: {encoding}" in r.message


def test_a_string_format_key_reads_the_text_in_the_encoding(tmp_path: Path) -> None:
    h = Harness(tmp_path, spec_of(
        "CREATE TABLE t (k BYTES PRIMARY KEY ENCODING 'hex', v STRING) WITH "
        "(kafka_topic='t', key_format='STRING', value_format='JSON')"))
    h.apply([FakeRecord(b"fbff0102", b'{"v": "x"}', 0, 0)])
    assert h.get(DATA) == {"k": DATA, "v": "x"}


# ------------------------------------------------------------------ the placeholder


@pytest.mark.parametrize("encoding", list(TEXTS))
def test_the_placeholder_in_the_encoding_keeps_the_stored_value(tmp_path: Path, encoding: str
                                                                ) -> None:
    for fmt, extra in (("debezium-json", ""), ("json", f", unavailable_value_placeholder='{P}'")):
        h = harness(tmp_path / fmt, encoding, fmt, extra=extra)

        def row(b: str, fmt: str = fmt) -> Any:
            r = {"id": 1, "b": b}
            return dbz("u", r) if fmt == "debezium-json" else r
        assert h.feed((1, row(TEXTS[encoding]))).rejected == []
        assert h.feed((1, row(PH[encoding]))).rejected == []  # the fused path
        assert h.get(1) == {"id": 1, "b": DATA}, fmt
        env = fmt == "debezium-json"  # with the Connect wrapper: a string, then bytes field
        assert h.feed((1, wrapped("string", PH[encoding], env))).rejected == []
        assert h.feed((1, wrapped("bytes", PH["base64"], env))).rejected == []
        assert h.get(1) == {"id": 1, "b": DATA}, fmt
        (r,) = h.feed((2, row(PH[encoding]))).rejected
        assert r.reason == "unavailable_value", fmt


def test_the_base64_placeholder_is_data_in_a_hex_column(tmp_path: Path) -> None:
    """Not the placeholder's form there: bad hex, so a bad record, not a kept value."""
    h = harness(tmp_path, "hex", "debezium-json")
    h.feed((1, dbz("c", {"id": 1, "b": "00"})))
    (r,) = h.feed((1, dbz("u", {"id": 1, "b": PH["base64"]}))).rejected
    assert r.reason == "type_mismatch"


@pytest.mark.parametrize("fmt", ["debezium-avro", "avro"])
@pytest.mark.parametrize("btype", ["string", "bytes"])
def test_the_avro_placeholder_in_either_form(tmp_path: Path, fmt: str, btype: str) -> None:
    extra = "" if fmt == "debezium-avro" else f", unavailable_value_placeholder='{P}'"
    h, feed = avro_harness(tmp_path, fmt, btype, "hex", extra)
    first, held = ("fbff0102", PH["hex"]) if btype == "string" else (DATA, P.encode())
    assert feed(1, {"id": 1, "b": first}).rejected == []
    assert feed(1, {"id": 1, "b": held}).rejected == []
    assert h.get(1) == {"id": 1, "b": DATA}
    (r,) = feed(2, {"id": 2, "b": held}).rejected
    assert r.reason == "unavailable_value"


# ---------------------------------------------------------------------- declaration

YAML = """tables:
  - name: t
    topic: t
    columns:
      id: int
      h: {type: bytes, encoding: hex}
      u: {type: bytes, encoding: base64-url-safe}
      s: {type: bytes, encoding: base64}
      plain: bytes
    primary_key: [id]
"""


def test_yaml_and_ddl_declare_the_encoding() -> None:
    cat = load_catalog_text(YAML, "t.yaml")
    spec = cat.tables[0]
    assert [spec.column(c).type.encoding for c in ("h", "u", "s", "plain")] == \
        ["hex", "base64-url-safe", "base64", None]
    assert "h      bytes encoding hex" in describe(cat)
    (ddl,) = parse_ddl("CREATE TABLE t (id INT PRIMARY KEY, h BYTES ENCODING 'hex', "
                       "u BYTES ENCODING 'BASE64-URL-SAFE', s BYTES ENCODING base64, "
                       "plain BYTES) WITH (kafka_topic='t', key_format='json');")
    assert ddl.columns == spec.columns


@pytest.mark.parametrize(("column", "needle"), [
    ("{type: bytes, encoding: base32}", "use one of base64, base64-url-safe, hex"),
    ("{type: bytes, encoding: us}", "use one of base64, base64-url-safe, hex"),
    ("{type: string, encoding: hex}", "bytes (base64, base64-url-safe, hex) columns take"),
    ("{type: 'array<bytes>', encoding: hex}", "an array's or map's items take none"),
])
def test_the_loader_refuses_an_encoding_that_does_not_apply(column: str, needle: str) -> None:
    text = f"tables:\n  - name: t\n    topic: t\n    columns:\n      id: int\n" \
           f"      c: {column}\n    primary_key: [id]\n"
    diags = errors_of(text)
    assert any(needle in d.message for d in diags), diags
    assert all(d.line == 6 for d in diags), diags


def test_the_ddl_says_which_encodings_bytes_take() -> None:
    diags = errors_of("sql: |\n  CREATE TABLE t (id INT PRIMARY KEY, v BYTES ENCODING (1))\n"
                      "    WITH (kafka_topic='t', key_format='json');\n")
    assert any("'base64-url-safe', 'hex' (bytes)" in d.message for d in diags), diags


@pytest.mark.parametrize(("before", "after"), [
    ("bytes", "{type: bytes, encoding: hex}"), ("{type: bytes, encoding: hex}", "bytes"),
    ("{type: bytes, encoding: hex}", "{type: bytes, encoding: base64}")])
def test_changing_the_encoding_needs_a_rebuild(tmp_path: Path, before: str, after: str
                                               ) -> None:
    def spec(column: str) -> Any:
        text = (f"tables:\n  - name: t\n    topic: t\n    columns: {{id: int, b: {column}}}\n"
                "    primary_key: [id]\n")
        return load_catalog_text(text, str(tmp_path / "t.yaml")).relations[0]
    open_relation(spec(before), tmp_path / "data")
    with pytest.raises(SchemaChangedError, match="column 'b' changed its encoding") as e:
        open_relation(spec(after), tmp_path / "data")
    assert "materializer rebuild" in str(e.value)

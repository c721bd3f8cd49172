"""`unavailable_value_placeholder`: Debezium's placeholder of a value it does not have (a
TOASTed PostgreSQL value an UPDATE left unchanged) when the connector sets its own
`unavailable.value.placeholder`, and in rows ExtractNewRecordState unwrapped (value_format
json, json_sr, avro): the column keeps the stored value, or the record is unavailable_value
with no stored row, never a row holding the placeholder as data (`ingest.unavailable`)."""

from __future__ import annotations

import base64
import decimal
import json
from pathlib import Path
from typing import Any

import pytest

from connectors.registry import FileRegistry
from materializer.catalog.describe import describe
from materializer.formats import codecs
from materializer.formats.wire import avro_encoder
from materializer.ingest.jsonrow import MISSES_TO_STOP, row_decoder
from materializer.ingest.shaper import compile_shaper
from materializer.ingest.unavailable import two_steps
from materializer.testing import FakeRecord
from tests.ingest.test_apply_rules import Harness, spec_of
from tests.ingest.test_debezium_unavailable import AvroHarness, dbz, outcome
from tests.support.catalog import errors_of, load, marked

TOAST = "__toast__"
DEFAULT = "__debezium_unavailable_value"
COLS = ("id INT PRIMARY KEY, note STRING, blob BYTES, doc JSON, tags ARRAY<STRING>, "
        "price DECIMAL(10,2), n BIGINT")
ROW = {"id": 1, "note": "long text", "blob": "AAEC", "doc": {"a": 1}, "tags": ["x", "y"],
       "price": "12.50", "n": 1}
STORED = {"id": 1, "note": "long text", "blob": b"\x00\x01\x02", "doc": {"a": 1},
          "tags": ["x", "y"], "price": decimal.Decimal("12.50"), "n": 1}


def forms(text: str) -> dict[str, Any]:
    """The placeholder `text` as Debezium JSON writes it in each column of COLS."""
    return {"note": text, "blob": base64.b64encode(text.encode()).decode(), "doc": text,
            "tags": [text], "price": text}


def harness(tmp_path: Path, fmt: str, placeholder: str | None, with_: str = "",
            cols: str = COLS) -> Harness:
    props = [f"value_format='{fmt}'", "on_error='skip'"]
    if placeholder is not None:
        props.append(f"unavailable_value_placeholder='{placeholder}'")
    if with_:
        props.append(with_)
    return Harness(tmp_path, spec_of(f"CREATE TABLE t ({cols}) WITH (kafka_topic='t', "
                                     f"key_format='JSON', {', '.join(props)})"))


def framed(value: Any) -> bytes:
    """JSON_SR: the Confluent wire header (schema id 1, not looked up), then the JSON."""
    return b"\x00" + (1).to_bytes(4, "big") + json.dumps(value).encode()


def feed(h: Harness, fmt: str, key: int, row: dict[str, Any], op: str = "u") -> Any:
    off = next(h.offsets)
    if fmt == "debezium-json":
        raw = json.dumps(dbz(op, row)).encode()
    elif fmt == "json_sr":
        raw = framed(row)
    else:
        raw = json.dumps(row).encode()
    return h.apply([FakeRecord(json.dumps(key).encode(), raw, off, off)])


# ------------------------------------------------------------------ a custom placeholder

@pytest.mark.parametrize("column", list(forms(TOAST)))
def test_a_custom_placeholder_keeps_the_stored_value(tmp_path: Path, column: str) -> None:
    """Without the key the connector's `__toast__` was stored as data."""
    h = harness(tmp_path, "debezium-json", TOAST)
    assert feed(h, "debezium-json", 1, ROW, "c").rejected == []
    out = feed(h, "debezium-json", 1, {**ROW, column: forms(TOAST)[column], "n": 2})
    assert out.rejected == []
    assert h.get(1) == {**STORED, "n": 2}


def test_a_custom_placeholder_replaces_the_default(tmp_path: Path) -> None:
    """Debezium writes one placeholder: with `__toast__` declared, the default text is data."""
    h = harness(tmp_path, "debezium-json", TOAST)
    feed(h, "debezium-json", 1, ROW, "c")
    feed(h, "debezium-json", 1, {**ROW, "note": DEFAULT})
    assert h.get(1) == {**STORED, "note": DEFAULT}


def test_a_custom_placeholder_with_no_stored_row_is_a_bad_record(tmp_path: Path) -> None:
    h = harness(tmp_path, "debezium-json", TOAST)
    (r,) = feed(h, "debezium-json", 2, {**ROW, "id": 2, "note": TOAST}).rejected
    assert r.reason == "unavailable_value" and TOAST in r.message and "'note'" in r.message
    assert h.get(2) is None


def test_a_custom_placeholder_on_debezium_avro(tmp_path: Path) -> None:
    reg = FileRegistry(tmp_path / "registry")
    after = {"type": "record", "name": "Value", "fields": [
        {"name": "id", "type": "int"}, {"name": "note", "type": ["null", "string"]},
        {"name": "blob", "type": ["null", "bytes"]}, {"name": "n", "type": "long"}]}
    enc = avro_encoder(reg, "t-value", {"type": "record", "name": "Envelope", "fields": [
        {"name": "after", "type": ["null", after]}, {"name": "op", "type": "string"}]})
    h = AvroHarness(tmp_path / "data", spec_of(
        "CREATE TABLE t (id INT PRIMARY KEY, note STRING, blob BYTES, n BIGINT) WITH "
        "(kafka_topic='t', key_format='JSON', value_format='debezium-avro', on_error='skip', "
        f"unavailable_value_placeholder='{TOAST}')"), registry=reg)

    def put(key: int, row: dict[str, Any]) -> Any:
        off = next(h.offsets)
        return h.apply([FakeRecord(json.dumps(key).encode(), enc({"after": row, "op": "u"}),
                                   off, off)])

    put(1, {"id": 1, "note": "long", "blob": b"\x01", "n": 1})
    assert put(1, {"id": 1, "note": TOAST, "blob": TOAST.encode(), "n": 2}).rejected == []
    assert h.get(1) == {"id": 1, "note": "long", "blob": b"\x01", "n": 2}
    put(1, {"id": 1, "note": DEFAULT, "blob": b"\x01", "n": 3})  # not this connector's
    assert h.get(1) == {"id": 1, "note": DEFAULT, "blob": b"\x01", "n": 3}


# ------------------------------------------------------------------ unwrapped rows

@pytest.mark.parametrize("fmt", ["json", "json_sr"])
@pytest.mark.parametrize("column", list(forms(TOAST)))
def test_unwrapped_json_rows_keep_the_stored_value(tmp_path: Path, fmt: str, column: str
                                                   ) -> None:
    h = harness(tmp_path, fmt, TOAST)
    assert feed(h, fmt, 1, ROW).rejected == []
    out = feed(h, fmt, 1, {**ROW, column: forms(TOAST)[column], "n": 2})
    assert out.rejected == []
    assert h.get(1) == {**STORED, "n": 2}  # not the placeholder, not null
    (r,) = feed(h, fmt, 2, {**ROW, "id": 2, column: forms(TOAST)[column]}).rejected
    assert r.reason == "unavailable_value" and repr(column) in r.message
    assert h.get(2) is None


@pytest.mark.parametrize("fmt", ["json", "json_sr"])
def test_unwrapped_rows_without_the_key_store_the_text(tmp_path: Path, fmt: str) -> None:
    """Nothing tells a plain JSON relation its topic is Debezium's: unrecognised, as before."""
    h = harness(tmp_path, fmt, None)
    feed(h, fmt, 1, ROW)
    feed(h, fmt, 1, {**ROW, "note": DEFAULT})
    assert h.get(1) == {**STORED, "note": DEFAULT}


def test_unwrapped_rows_in_the_connect_wrapper(tmp_path: Path) -> None:
    """ExtractNewRecordState with schemas.enable=true: the Json logical type would parse
    the placeholder as JSON text (type_mismatch), the Decimal one as base64."""
    h = harness(tmp_path, "json", DEFAULT, cols="id INT PRIMARY KEY, doc JSON, note STRING")
    schema = {"type": "struct", "fields": [
        {"field": "id", "type": "int32"},
        {"field": "doc", "type": "string", "name": "io.debezium.data.Json", "optional": True},
        {"field": "note", "type": "string", "optional": True}]}
    feed(h, "json", 1, {"schema": schema, "payload": {"id": 1, "doc": '{"a": 1}', "note": "x"}})
    out = feed(h, "json", 1, {"schema": schema, "payload": {"id": 1, "doc": DEFAULT,
                                                            "note": "y"}})
    assert out.rejected == []
    assert h.get(1) == {"id": 1, "doc": {"a": 1}, "note": "y"}


def test_unwrapped_rows_and_rewritten_deletes(tmp_path: Path) -> None:
    h = harness(tmp_path, "json", TOAST, cols="id INT PRIMARY KEY, note STRING, n BIGINT")
    feed(h, "json", 1, {"id": 1, "note": "long", "n": 1, "__deleted": "false"})
    feed(h, "json", 1, {"id": 1, "note": TOAST, "n": 2, "__deleted": "false"})
    assert h.get(1) == {"id": 1, "note": "long", "n": 2}
    feed(h, "json", 1, {"id": 1, "note": TOAST, "n": 2, "__deleted": "true"})
    assert h.get(1) is None


@pytest.mark.parametrize("with_", ["partial_update='note,n'", "soft_primary_key=true"])
def test_unwrapped_rows_under_other_rules(tmp_path: Path, with_: str) -> None:
    h = harness(tmp_path, "json", TOAST, with_, cols="id INT PRIMARY KEY, note STRING, n BIGINT")
    feed(h, "json", 1, {"id": 1, "note": "long", "n": 1})
    out = feed(h, "json", 1, {"id": 1, "note": TOAST, "n": 2})
    if "soft" in with_:  # a blind write has no stored row to keep the value from
        assert [r.reason for r in out.rejected] == ["unavailable_value"]
        assert h.get(1) == {"id": 1, "note": "long", "n": 1}
    else:
        assert out.rejected == [] and h.get(1) == {"id": 1, "note": "long", "n": 2}


def test_an_unwrapped_stream_rejects_the_record(tmp_path: Path) -> None:
    h = Harness(tmp_path, spec_of(
        "CREATE STREAM s (id INT KEY, note STRING) WITH (kafka_topic='s', key_format='JSON', "
        f"value_format='json', on_error='skip', unavailable_value_placeholder='{TOAST}')"))
    out = h.feed((1, {"id": 1, "note": "x"}), (1, {"id": 1, "note": TOAST}))
    (r,) = out.rejected
    assert r.reason == "unavailable_value" and TOAST in r.message
    assert h.events(1) == [{"id": 1, "note": "x"}]


def test_unwrapped_avro_rows(tmp_path: Path) -> None:
    reg = FileRegistry(tmp_path / "registry")
    enc = avro_encoder(reg, "t-value", {"type": "record", "name": "Value", "fields": [
        {"name": "id", "type": "int"}, {"name": "note", "type": ["null", "string"]},
        {"name": "blob", "type": ["null", "bytes"]},
        {"name": "tags", "type": ["null", {"type": "array", "items": "string"}]},
        {"name": "n", "type": "long"}]})
    spec = spec_of("CREATE TABLE t (id INT PRIMARY KEY, note STRING, blob BYTES, "
                   "tags ARRAY<STRING>, n BIGINT) WITH (kafka_topic='t', key_format='JSON', "
                   f"value_format='AVRO', on_error='skip', unavailable_value_placeholder="
                   f"'{TOAST}')")
    h = AvroHarness(tmp_path / "data", spec, registry=reg)

    def put(key: int, row: dict[str, Any]) -> Any:
        off = next(h.offsets)
        return h.apply([FakeRecord(json.dumps(key).encode(), enc(row), off, off)])

    first = {"id": 1, "note": "long", "blob": b"\x01", "tags": ["a"], "n": 1}
    put(1, first)
    for change in ({"note": TOAST}, {"blob": TOAST.encode()}, {"tags": [TOAST]}):
        assert put(1, {**first, "n": 2, **change}).rejected == []
        assert h.get(1) == {**first, "n": 2}
    (r,) = put(2, {**first, "id": 2, "blob": TOAST.encode()}).rejected
    assert r.reason == "unavailable_value" and "'blob'" in r.message
    # the base64 text is JSON's form of the bytes, not Avro's: data
    b64 = base64.b64encode(TOAST.encode()).decode()
    put(1, {**first, "note": b64, "n": 3})
    assert h.get(1) == {**first, "note": b64, "n": 3}


def test_the_fused_json_decoder_answers_as_the_two_steps() -> None:
    """The typed path of a plain JSON row sends a placeholder to the two steps, which mark
    it; it is no miss (the typed path stays on)."""
    spec = spec_of(f"CREATE TABLE t ({COLS}) WITH (kafka_topic='t', key_format='JSON', "
                   f"value_format='json', unavailable_value_placeholder='{TOAST}')")
    vdec = codecs.value_decoder(spec)
    shape = compile_shaper(spec, spec.column_names)
    fused = row_decoder(spec, spec.column_names, vdec, shape)
    assert fused.__code__.co_filename.startswith("<json row")
    general = two_steps(spec, spec.column_names, vdec, shape)
    for column, form in forms(TOAST).items():
        raw = json.dumps({**ROW, column: form}).encode()
        for _ in range(MISSES_TO_STOP + 1):
            got = outcome(fused, raw)
            assert got == outcome(general, raw) and "Unavailable" in got[1]
    assert fused.__globals__["_off"] == [False]
    raw = json.dumps({**ROW, "tags": [TOAST, TOAST]}).encode()
    assert outcome(fused, raw) == outcome(general, raw) and "Unavailable" not in \
        outcome(fused, raw)[1]


# ------------------------------------------------------------------ the declaration

YAML = """\
schema_registry: {{path: reg}}
tables:
  - name: t
    topic: t
    columns: {{id: int, note: string, n: long}}
    primary_key: [id]
    value_format: {fmt}
    {line}
"""


@pytest.mark.parametrize("fmt", ["json", "json_sr", "avro", "debezium-json",
                                 "debezium-avro"])
def test_the_key_is_read_from_yaml_and_shown_by_check(fmt: str) -> None:
    cat: Any = load(YAML.format(fmt=fmt, line="unavailable_value_placeholder: __toast__"))
    (spec,) = cat.tables
    assert spec.unavailable_value_placeholder == spec.unavailable_placeholder == TOAST
    assert "  unavailable_value_placeholder: '__toast__': keeps the stored value" in \
        describe(cat).splitlines()


def test_the_defaults() -> None:
    for fmt, want in (("json", None), ("avro", None), ("debezium-json", DEFAULT),
                      ("debezium-avro", DEFAULT)):
        cat: Any = load(YAML.format(fmt=fmt, line=""))
        (spec,) = cat.tables
        assert spec.unavailable_value_placeholder is None
        assert spec.unavailable_placeholder == want
        shown = [ln for ln in describe(cat).splitlines() if "unavailable_value" in ln]
        assert shown == ([] if want is None else [
            f"  unavailable_value_placeholder: '{DEFAULT}' (Debezium's default): keeps the "
            "stored value"])


def test_the_ddl_property_gives_the_same_spec() -> None:
    cat: Any = load("""\
        schema_registry: {path: reg}
        sql: |
          CREATE TABLE t (id INT PRIMARY KEY, note STRING, n BIGINT) WITH (kafka_topic='t',
            key_format='JSON', value_format='JSON', unavailable_value_placeholder='__toast__');
          CREATE STREAM s (id INT KEY, note STRING) WITH (kafka_topic='s',
            value_format='JSON', unavailable_value_placeholder='__toast__');
        """)
    assert [r.unavailable_value_placeholder for r in cat.relations] == [TOAST, TOAST]
    yaml_cat: Any = load(YAML.format(fmt="json",
                                     line="unavailable_value_placeholder: __toast__"))
    assert yaml_cat.tables[0].unavailable_value_placeholder == \
        cat.tables[0].unavailable_value_placeholder


@pytest.mark.parametrize(("fmt", "why"), [
    ("string", "one column's value"), ("long", "one column's value"),
    ("bytes", "one column's value"), ("protobuf", "Protobuf")])
def test_formats_without_debezium_rows_refuse_it(fmt: str, why: str) -> None:
    cols = "{id: int, note: string}" if fmt != "long" else "{id: int, n: long}"
    text, line, column = marked(f"""
        schema_registry: {{url: http://localhost:8081}}
        tables:
          - name: t
            topic: t
            columns: {cols}
            primary_key: [id]
            value_format: {fmt}
            unavailable_value_placeholder: @@__toast__
        """)
    found = [d for d in errors_of(text) if "unavailable_value_placeholder" in d.message]
    (d,) = found
    assert (d.line, d.column) == (line, column)
    assert why in d.message and "remove `unavailable_value_placeholder`" in d.message


def test_an_empty_placeholder_is_refused() -> None:
    text, line, column = marked("""
        tables:
          - name: t
            topic: t
            columns: {id: int, note: string}
            primary_key: [id]
            value_format: debezium-json
            unavailable_value_placeholder: @@""
        """)
    (d,) = errors_of(text)
    assert (d.line, d.column) == (line, column) and "is empty" in d.message


def test_a_misspelt_key_is_suggested() -> None:
    (d,) = errors_of(YAML.format(fmt="json", line="unavailable_value_placeholdr: x"))
    assert "Did you mean `unavailable_value_placeholder`?" in d.message


def test_ddl_refuses_it_for_a_one_value_format() -> None:
    text, line, column = marked("""
        sql: |
          CREATE TABLE t (id INT PRIMARY KEY, note STRING) WITH (kafka_topic='t',
            key_format='JSON', value_format='STRING', unavailable_value_placeholder=@@'x');
        """)
    diags = errors_of(text)
    assert any((d.line, d.column) == (line, column)
               and "UNAVAILABLE_VALUE_PLACEHOLDER" in d.message for d in diags), diags


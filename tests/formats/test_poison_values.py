"""Poison records: no single record may crash the worker, or be stored and then fail to
serve. Each is refused at decode/convert time as a RecordError with a reason:

  too_deep       JSON or a recursive Avro value too deep to parse (anywhere), or a
                 json column's value nested more than MAX_DEPTH levels
  bad_unicode    a string holding a lone surrogate (JSON `"\\ud800"`)
  type_mismatch  a non-finite number (NaN, Infinity, 1e999) in any column; a timestamp
                 whose UTC form falls outside years 1-9999
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from connectors.registry import FileRegistry
from materializer.columns import ColumnType, parse_type
from materializer.errors import RecordError
from materializer.formats import codecs
from materializer.formats.base import DELETE
from materializer.formats.connect_types import connect_fixup
from materializer.formats.wire import avro_encoder, header
from materializer.ingest.apply import RowShaper
from materializer.specs import Column, RelationSpec, TableSpec
from materializer.store.rows import RowLayout, encode_row
from materializer.values import MAX_DEPTH, to_storage

ROOT = Path(__file__).resolve().parents[2]


def table(columns: dict[str, str], key: list[str], key_format: str = "json",
          value_format: str = "json") -> RelationSpec:
    cols = tuple(Column(n, parse_type(t)[0], n in key) for n, t in columns.items())
    return TableSpec(name="public.p", topic="p", columns=cols, key_columns=tuple(key),
                     key_format=key_format, value_format=value_format)


COLS = {"id": "int", "name": "string", "price": "double", "ratio": "float", "doc": "json",
        "tags": "array<string>", "scores": "map<string,double>", "at": "timestamp",
        "docs": "array<json>", "amount": "decimal(10,2)"}
JSON_T = table(COLS, ["id"])
DBZ_T = table(COLS, ["id"], value_format="debezium-json")


def served(spec: RelationSpec, row: list[Any]) -> dict[str, Any]:
    """What a reader gets: the row marshalled as stored, read back in both forms, and
    the JSON form serialized as strict UTF-8 JSON."""
    raw = encode_row(tuple(row))
    layout = RowLayout(spec.column_names, [c.type for c in spec.columns])
    layout.to_python(raw)
    out = layout.to_json(raw)
    json.dumps(out, allow_nan=False, ensure_ascii=False).encode("utf-8")
    return out


def shaped(spec: RelationSpec, value: bytes, registry: Any = None) -> dict[str, Any]:
    fields = codecs.value_decoder(spec, registry)(value)
    assert fields is not DELETE
    return served(spec, RowShaper(spec, spec.column_names).shape(fields, (1,)))


def refused(spec: RelationSpec, value: bytes, registry: Any = None) -> str:
    """The reason a value is refused, by the decoder or by the row shaper."""
    with pytest.raises(RecordError) as e:
        fields = codecs.value_decoder(spec, registry)(value)
        RowShaper(spec, spec.column_names).shape(fields, (1,))
    return e.value.reason


def key_refused(spec: RelationSpec, key: bytes, registry: Any = None) -> str:
    with pytest.raises(RecordError) as e:
        codecs.key_decoder(spec, registry)(key)
    return e.value.reason


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


def dbz(after: str, schema: str | None = None) -> bytes:
    payload = f'{{"op": "c", "before": null, "after": {after}}}'
    if schema is None:
        return payload.encode()
    return f'{{"schema": {schema}, "payload": {payload}}}'.encode()


# --------------------------------------------------------------------------- too_deep


@pytest.mark.parametrize("depth", [2_000, 100_000])
def test_json_too_deep_to_parse_is_too_deep_wherever_it_is(depth: int) -> None:
    # the C scanner gives up near the recursion limit (RecursionError): anywhere
    assert refused(JSON_T, f'{{"id": 1, "doc": {nested(depth)}}}'.encode()) == "too_deep"
    assert refused(JSON_T, f'{{"id": 1, "junk": {nested(depth)}}}'.encode()) == "too_deep"
    assert refused(JSON_T, nested(depth).encode()) == "too_deep"
    assert refused(DBZ_T, dbz(f'{{"id": 1, "doc": {nested(depth)}}}')) == "too_deep"
    assert refused(DBZ_T, dbz('{"id": 1}', nested(depth))) == "too_deep"
    wrapped = f'{{"schema": null, "payload": {{"id": 1, "doc": {nested(depth)}}}}}'
    assert refused(JSON_T, wrapped.encode()) == "too_deep"


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 500])
def test_a_json_column_nested_more_than_max_depth_is_too_deep(depth: int) -> None:
    assert refused(JSON_T, f'{{"id": 1, "doc": {nested(depth)}}}'.encode()) == "too_deep"
    assert refused(JSON_T, f'{{"id": 1, "docs": [1, {nested(depth)}]}}'.encode()
                   ) == "too_deep"
    assert refused(DBZ_T, dbz(f'{{"id": 1, "doc": {nested(depth)}}}')) == "too_deep"
    # deep JSON that no column stores is no harm
    assert shaped(JSON_T, f'{{"id": 1, "junk": {nested(depth)}}}'.encode())["id"] == 1


def test_json_nested_just_within_the_limit_is_stored() -> None:
    doc = nested(MAX_DEPTH)
    assert shaped(JSON_T, f'{{"id": 1, "doc": {doc}}}'.encode())["doc"] == json.loads(doc)
    deep_obj = '{"a": ' * MAX_DEPTH + "1" + "}" * MAX_DEPTH
    assert shaped(JSON_T, f'{{"id": 1, "doc": {deep_obj}}}'.encode())["doc"]["a"]["a"]
    wide = "[" + ",".join(["[[1]]"] * 500) + "]"
    assert len(shaped(JSON_T, f'{{"id": 1, "doc": {wide}}}'.encode())["doc"]) == 500


@pytest.mark.parametrize("depth", [2_000, 100_000])
def test_deep_json_keys_are_too_deep(depth: int) -> None:
    one = table({"id": "string", "v": "string"}, ["id"])
    two = table({"a": "int", "b": "string", "v": "string"}, ["a", "b"])
    assert key_refused(one, nested(depth).encode()) == "too_deep"
    assert key_refused(two, nested(depth).encode()) == "too_deep"
    assert key_refused(one, f'{{"schema": null, "payload": {nested(depth)}}}'.encode()
                       ) == "too_deep"


def test_deep_text_in_a_debezium_json_field_is_too_deep() -> None:
    schema = json.dumps({"type": "struct", "fields": [{"field": "after", "type": "struct",
                         "fields": [{"field": "id", "type": "int32"},
                                    {"field": "doc", "type": "string",
                                     "name": "io.debezium.data.Json"}]}]})
    for depth in (MAX_DEPTH + 1, 100_000):  # the column refuses one, the parser the other
        after = json.dumps({"id": 1, "doc": nested(depth)})
        assert refused(DBZ_T, dbz(after, schema)) == "too_deep"
    ok = json.dumps({"id": 1, "doc": nested(3)})
    assert shaped(DBZ_T, dbz(ok, schema))["doc"] == [[[1]]]


LINKED = {"type": "record", "name": "Node", "fields": [
    {"name": "id", "type": "int"}, {"name": "next", "type": ["null", "Node"]}]}


def linked_body(depth: int) -> bytes:
    """An Avro `Node` list `depth` links long (id 0 everywhere): written by hand, as
    fastavro's own writer cannot write one that deep."""
    return b"\x00\x02" * depth + b"\x00\x00"


def test_recursive_avro_values_are_too_deep(tmp_path: Path) -> None:
    reg = FileRegistry(tmp_path / "reg")
    sid = reg.register("linked", LINKED)
    spec = table({"id": "int", "next": "json"}, ["id"], "int", "avro")
    row = shaped(spec, header(sid) + linked_body(3), reg)
    assert row["next"] == {"id": 0, "next": {"id": 0, "next": {"id": 0, "next": None}}}
    assert shaped(spec, header(sid) + linked_body(MAX_DEPTH), reg)["next"]["id"] == 0
    assert refused(spec, header(sid) + linked_body(MAX_DEPTH + 1), reg) == "too_deep"
    assert refused(spec, header(sid) + linked_body(1_000), reg) == "too_deep"


def test_a_very_deep_recursive_avro_value_does_not_crash_the_process(tmp_path: Path) -> None:
    """fastavro's compiled reader recurses on the C stack: 100k links is a segfault
    unless the decoder keeps such schemas away from it. In a child process, so a
    crash is a failed test and not a dead test run."""
    script = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(ROOT)!r}]
        from connectors.registry import FileRegistry
        from materializer.errors import RecordError
        from materializer.formats import codecs
        from materializer.formats.wire import header
        from tests.formats.test_poison_values import LINKED, linked_body, table
        reg = FileRegistry({str(tmp_path / "reg")!r})
        sid = reg.register("linked", LINKED)
        spec = table({{"id": "int", "next": "json"}}, ["id"], "int", "avro")
        for depth in (100_000, 1_000_000):
            try:
                codecs.value_decoder(spec, reg)(header(sid) + linked_body(depth))
            except RecordError as e:
                print(e.reason)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["too_deep", "too_deep"]


# --------------------------------------------------------------------------- bad_unicode


@pytest.mark.parametrize("text", [
    r'{"id": 1, "name": "\ud800"}',
    r'{"id": 1, "name": "a\uDFFFb"}',
    r'{"id": 1, "name": "\ude00\ud83d"}',  # a pair in the wrong order is two lone halves
    r'{"id": 1, "name": "\\ud83d\ude00"}',  # an escaped backslash, then a lone half
    r'{"id": 1, "name": "\ud83d\ud83d\ude00"}',
    r'{"id": 1, "tags": ["ok", "\udbff"]}',
    r'{"id": 1, "scores": {"\udc00": 1.5}}',
    r'{"id": 1, "doc": {"a": [{"b": "\ud800"}]}}',
    r'{"id": 1, "docs": ["\ud800"]}',
    r'{"id": 1, "not_a_column": "\ud800"}',
    r'{"schema": null, "payload": {"id": 1, "name": "\ud800"}}',
])
def test_lone_surrogates_are_bad_unicode(text: str) -> None:
    assert refused(JSON_T, text.encode()) == "bad_unicode"


def test_lone_surrogates_that_no_escape_shows_are_bad_unicode() -> None:
    # json.loads reads UTF-8 with encoded surrogates (surrogatepass) and UTF-16
    assert refused(JSON_T, b'{"id": 1, "name": "\xed\xa0\x80"}') == "bad_unicode"
    assert refused(JSON_T, '{"id": 1, "name": "x"}'.encode("utf-16-le").replace(
        "x".encode("utf-16-le"), b"\x00\xd8")) == "bad_unicode"
    assert refused(JSON_T, b' {"id": 1, "name": "\xed\xbf\xbf"}') == "bad_unicode"
    # valid UTF-8 that json reads as UTF-16 (a NUL first): U+0600 is code unit 0xD880
    assert refused(JSON_T, b'\x00"\xd8\x80\x00"') == "bad_unicode"


def test_surrogate_pairs_and_escaped_backslashes_are_fine() -> None:
    row = shaped(JSON_T, rb'{"id": 1, "name": "\ud83d\ude00", "tags": ["\\ud800"]}')
    assert row["name"] == "\U0001f600" and row["tags"] == ["\\ud800"]
    assert shaped(JSON_T, '{"id": 1, "name": "\U0001f600 é"}'.encode())["name"] == "\U0001f600 é"


def test_lone_surrogates_in_keys_and_debezium_are_bad_unicode() -> None:
    one = table({"id": "string", "v": "string"}, ["id"])
    two = table({"a": "int", "b": "string", "v": "string"}, ["a", "b"])
    assert key_refused(one, rb'"\ud800"') == "bad_unicode"
    assert key_refused(one, rb'{"id": "\ud800"}') == "bad_unicode"
    assert key_refused(two, rb'{"a": 1, "b": "x\udfff"}') == "bad_unicode"
    assert key_refused(one, b'"\xed\xa0\x80"') == "bad_unicode"
    assert refused(DBZ_T, dbz(r'{"id": 1, "name": "\ud800"}')) == "bad_unicode"
    assert refused(DBZ_T, dbz('{"id": 1}').replace(b'"c"', rb'"c", "x": "\udc00"')
                   ) == "bad_unicode"


def test_lone_surrogates_inside_debezium_json_text_are_bad_unicode() -> None:
    schema = json.dumps({"type": "struct", "fields": [{"field": "after", "type": "struct",
                         "fields": [{"field": "doc", "type": "string",
                                     "name": "io.debezium.data.Json"}]}]})
    after = json.dumps({"id": 1, "doc": r'{"a": "\ud800"}'})  # the text holds the escape
    assert refused(DBZ_T, dbz(after, schema)) == "bad_unicode"


# --------------------------------------------------------------------------- non-finite


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999",
                                    "1" + "0" * 400 + ".5"])
@pytest.mark.parametrize("column", ["price", "ratio", "scores", "doc", "docs", "amount"])
def test_non_finite_numbers_fit_no_column(number: str, column: str) -> None:
    value = {"scores": f'{{"k": {number}}}', "doc": f'{{"a": [1, {number}]}}',
             "docs": f"[{number}]"}.get(column, number)
    text = f'{{"id": 1, "{column}": {value}}}'.encode()
    assert refused(JSON_T, text) == "type_mismatch"
    assert refused(DBZ_T, dbz(text.decode())) == "type_mismatch"


def test_non_finite_numbers_outside_the_columns_are_ignored() -> None:
    assert shaped(JSON_T, b'{"id": 1, "price": 1.5, "junk": [NaN, Infinity, 1e999]}'
                  )["price"] == 1.5


@pytest.mark.parametrize("kind", ["double", "float", "json", "array<double>",
                                  "map<string,double>", "array<json>", "decimal(10,2)"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_converters_refuse_non_finite_numbers(kind: str, bad: float) -> None:
    value: Any = bad
    if kind.startswith("array"):
        value = [1.0, bad]
    elif kind.startswith("map"):
        value = {"k": bad}
    elif kind == "json":
        value = {"a": [{"b": bad}]}
    with pytest.raises(ValueError):
        to_storage(parse_type(kind)[0])(value)
    if kind in ("json", "double"):
        with pytest.raises(ValueError):
            to_storage(parse_type(kind)[0])(bad)


def test_non_finite_json_keys_are_refused() -> None:
    one = table({"id": "double", "v": "string"}, ["id"])
    assert key_refused(one, b"NaN") == "key_mismatch"
    assert key_refused(one, b'{"id": 1e999}') == "key_mismatch"


def test_non_finite_avro_doubles_and_floats_are_refused(tmp_path: Path) -> None:
    reg = FileRegistry(tmp_path / "reg")
    schema = {"type": "record", "name": "R", "fields": [
        {"name": "id", "type": "int"}, {"name": "d", "type": "double"},
        {"name": "f", "type": "float"},
        {"name": "m", "type": {"type": "map", "values": "double"}}]}
    enc = avro_encoder(reg, "r", schema)
    spec = table({"id": "int", "d": "double", "f": "float", "m": "json"}, ["id"], "int",
                 "avro")
    fine = {"id": 1, "d": 1.5, "f": 2.5, "m": {"k": 3.5}}
    assert shaped(spec, enc(fine), reg) == {"id": 1, "d": 1.5, "f": 2.5, "m": {"k": 3.5}}
    for field, bad in (("d", math.nan), ("f", math.inf), ("d", -math.inf),
                       ("m", {"k": math.nan})):
        assert refused(spec, enc({**fine, field: bad}), reg) == "type_mismatch"


# --------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize("value", [
    "9999-12-31T23:30:00-01:00", "0001-01-01T00:30:00+01:00", "0001-01-01T00:00:00+00:01",
    dt.datetime(9999, 12, 31, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-1))),
    dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=23, minutes=59))),
    dt.datetime.max.replace(tzinfo=dt.timezone(dt.timedelta(hours=-23, minutes=-59))),
])
def test_timestamps_outside_years_1_to_9999_in_utc_are_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="years 1-9999"):
        to_storage(parse_type("timestamp")[0])(value)


@pytest.mark.parametrize(("value", "utc"), [
    ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
    ("9999-12-31T23:30:00+01:00", "9999-12-31T22:30:00Z"),
    ("0001-01-01T00:30:00+00:30", "0001-01-01T00:00:00Z"),
    ("0001-01-01T00:00:00", "0001-01-01T00:00:00Z"),
    (dt.datetime.max, "9999-12-31T23:59:59.999999Z"),
    (dt.datetime.min.replace(tzinfo=dt.UTC), "0001-01-01T00:00:00Z"),
])
def test_timestamps_at_the_limits_are_stored_and_served(value: Any, utc: str) -> None:
    spec = table({"id": "int", "at": "timestamp"}, ["id"])
    row = RowShaper(spec, spec.column_names).shape({"at": value}, (1,))
    assert served(spec, row)["at"] == utc


def test_out_of_range_timestamps_in_records_are_type_mismatch() -> None:
    for text in ("9999-12-31T23:30:00-01:00", "0001-01-01T00:30:00+01:00"):
        assert refused(JSON_T, f'{{"id": 1, "at": "{text}"}}'.encode()) == "type_mismatch"


@pytest.mark.parametrize(("name", "kind", "value"), [
    ("io.debezium.time.MicroTimestamp", "timestamp", 2**62),
    ("io.debezium.time.MicroTimestamp", "timestamp", -(2**62)),
    ("io.debezium.time.MicroTimestamp", "timestamp", 253_402_300_800_000_000),
    ("io.debezium.time.NanoTimestamp", "timestamp", -(10**20)),
    ("io.debezium.time.Timestamp", "date", 2**62),
    ("io.debezium.time.Date", "timestamp", 10**9),
    ("io.debezium.time.Date", "timestamp", -(10**9)),
])
def test_connect_time_fixups_refuse_out_of_range_with_value_error(name: str, kind: str,
                                                                  value: int) -> None:
    fix = connect_fixup(name, None, None, ColumnType(kind))
    assert fix is not None
    with pytest.raises(ValueError, match="years 1-9999"):
        fix(value)


def test_connect_decimal_scale_that_is_not_a_number_is_no_crash() -> None:
    # {"scale": 1e999} is float('inf') once parsed: int() of it is an OverflowError
    after = json.dumps({"id": 1, "amount": "AQ=="})
    schema = ('{"type": "struct", "fields": [{"field": "after", "type": "struct", "fields": '
              '[{"field": "amount", "type": "bytes", "name": '
              '"org.apache.kafka.connect.data.Decimal", "parameters": {"scale": 1e999}}]}]}')
    assert refused(DBZ_T, dbz(after, schema)) == "type_mismatch"  # base64 is not a decimal


# --------------------------------------------------------------------------- json columns


def test_rich_avro_values_in_a_json_column_are_stored_as_their_json_forms() -> None:
    spec = table({"id": "int", "doc": "json"}, ["id"])
    shaper = RowShaper(spec, spec.column_names)
    u = uuid.uuid4()
    doc = {"b": b"\x00\xff", "d": decimal.Decimal("1.50"), "day": dt.date(2024, 5, 3),
           "t": dt.time(10, 11, 12, 500), "at": dt.datetime(2024, 5, 3, 10, tzinfo=dt.UTC),
           "local": dt.datetime(2024, 5, 3, 10), "u": u, "pair": ("a", 1), "ba": bytearray(b"x"),
           "n": None, "f": 1.5, "big": 10**30}
    row = shaper.shape({"doc": doc}, (1,))
    assert served(spec, row)["doc"] == {
        "b": "AP8=", "d": "1.50", "day": "2024-05-03", "t": "10:11:12.000500",
        "at": "2024-05-03T10:00:00Z", "local": "2024-05-03T10:00:00Z", "u": str(u),
        "pair": ["a", 1], "ba": "eA==", "n": None, "f": 1.5, "big": 10**30}
    assert served(spec, shaper.shape({"doc": b"\x01"}, (1,)))["doc"] == "AQ=="


@pytest.mark.parametrize("bad", [
    {"d": decimal.Decimal("NaN")}, [decimal.Decimal("-Infinity")], {1.5j: 1}, {"s": {1, 2}},
    {"o": object()}, {(1, 2): "tuple key"}, float("nan"), {"f": math.inf},
    dt.datetime(9999, 12, 31, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-1))),
])
def test_values_json_has_no_form_for_are_refused_in_a_json_column(bad: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        to_storage(parse_type("json")[0])(bad)


def test_json_column_values_too_deep_to_serve_are_refused() -> None:
    deep: Any = 1
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(RecordError, match="deep") as e:
        to_storage(parse_type("json")[0])({"a": deep})
    assert e.value.reason == "too_deep"

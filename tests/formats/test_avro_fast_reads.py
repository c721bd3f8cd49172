"""The Avro read path's shortcuts give exactly what the plain steps give (values and
errors): the unrolled varint reader (`avro_varint.long_rest`) against the loop it
replaces, the bytes shortcut of `connect_types.decimal_fixup`, and conversions done by the
generated reader as it reads (`compile_reader`'s `converted`) against `apply_plan` after
the read, through the value decoder too (trailing bytes and a delete marker still come
before a conversion)."""

from __future__ import annotations

import decimal
import io
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from connectors.registry import FileRegistry
from materializer.columns import parse_type
from materializer.errors import RecordError
from materializer.formats import codecs
from materializer.formats.avro_compiled import Converted, compile_reader
from materializer.formats.avro_schema import named_types
from materializer.formats.avro_varint import Invalid, Truncated, long_rest
from materializer.formats.base import DELETE
from materializer.formats.connect_types import apply_plan, decimal_fixup, text_for_bytes
from materializer.formats.wire import avro_encoder
from materializer.specs import Column, TableSpec


def loop_long_rest(b: bytes, p: int, n: int) -> tuple[int, int]:
    """The varint loop `long_rest` was before it was unrolled (the reference)."""
    n &= 0x7F
    shift = 7
    while True:
        c = b[p]
        p += 1
        n |= (c & 0x7F) << shift
        if c < 0x80:
            break
        shift += 7
        if shift > 63:
            raise Invalid("varint longer than 10 bytes")
    if n >> 64:
        raise Invalid("varint beyond 64 bits")
    return n, p


def outcome(f: Any, *args: Any) -> tuple[Any, ...]:
    try:
        return "ok", f(*args)
    except (Invalid, IndexError) as e:
        return type(e).__name__, str(e)


def varint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


CONTINUED = st.integers(0x80, 0xFF)


@example(first=0xFF, rest=b"\xff" * 9 + b"\x01", start=b"")  # 11 bytes: too long
@example(first=0xFF, rest=b"\xff" * 8 + b"\x02", start=b"")  # 10 bytes, 65 bits
@example(first=0xFF, rest=b"\xff" * 8 + b"\x01", start=b"")  # 10 bytes, 64 bits
@example(first=0x80, rest=b"\x80" * 4, start=b"x")  # ends after the 5th byte
@given(CONTINUED, st.binary(max_size=12) | st.lists(CONTINUED, max_size=11).map(bytes),
       st.binary(max_size=2))
def test_long_rest_is_the_loop(first: int, rest: bytes, start: bytes) -> None:
    b = start + rest
    assert outcome(long_rest, b, len(start), first) == outcome(loop_long_rest, b,
                                                               len(start), first)


@pytest.mark.parametrize("bits", [0, 7, 13, 14, 21, 28, 35, 41, 42, 49, 56, 63])
def test_longs_of_every_length_read_back(bits: int) -> None:
    read = compile_reader("long", {})
    assert read is not None
    for v in (min(1 << bits, 2**63 - 1), -(1 << bits), (1 << bits) - 1):
        body = io.BytesIO()
        fastavro.schemaless_writer(body, fastavro.parse_schema("long"), v)
        assert read(body.getvalue(), 0) == (v, len(body.getvalue()))


@given(st.binary(max_size=20), st.integers(-3, 40))
def test_decimal_fixup_of_bytes_is_the_unscaled_integer_at_scale(raw: bytes, scale: int
                                                                  ) -> None:
    for column in ("decimal(38,2)", "string"):  # decimal text, or a Decimal
        fix = decimal_fixup(scale, parse_type(column)[0])
        unscaled = int.from_bytes(raw, "big", signed=True)
        want = fix(bytearray(raw))  # not bytes: the general path
        assert fix(raw) == want and type(fix(raw)) is type(want)
        if column == "string":
            assert want == decimal.Decimal(f"{unscaled}E{-scale}")


ROW = {"type": "record", "name": "Row", "namespace": "t", "fields": [
    {"name": "skipped", "type": "string"},
    {"name": "a", "type": ["null", "bytes"]},
    {"name": "c", "type": "long"}]}


def body(datum: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(ROW), datum)
    return out.getvalue()


def reader(converted: Any) -> Any:
    parsed = fastavro.parse_schema(ROW)
    read = compile_reader(parsed, named_types(parsed), {"a", "c"}, converted)
    assert read is not None
    return read


def boom(v: Any) -> Any:
    raise ValueError(f"no {v}")


@given(st.none() | st.binary(max_size=5), st.integers(-(2**63), 2**63 - 1))
def test_converting_as_it_reads_is_apply_plan_after_the_read(a: bytes | None, c: int
                                                             ) -> None:
    b = body({"skipped": "x", "a": a, "c": c})
    plan = (("a", "a", bytes.hex), ("c", "c", str))
    want = compile_reader(fastavro.parse_schema(ROW), {}, {"a", "c"})(b, 0)  # type: ignore[misc]
    apply_plan(plan, want[0])
    assert reader([(src, fix) for src, _, fix in plan])(b, 0) == want


def test_a_refused_value_is_apply_plans_rejection_first_in_order() -> None:
    b = body({"skipped": "x", "a": b"\x01", "c": 5})
    read = reader([("c", boom), ("a", boom)])
    with pytest.raises(Converted) as got:
        read(b, 0)
    with pytest.raises(RecordError) as want:
        apply_plan((("c", "c", boom), ("a", "a", boom)), {"a": b"\x01", "c": 5})
    assert (str(got.value.error), got.value.error.reason) == (str(want.value), "type_mismatch")
    too_deep = RecordError("nested", "too_deep")

    def deep(v: Any) -> Any:
        raise too_deep
    with pytest.raises(Converted) as got:
        reader([("a", deep)])(b, 0)
    assert got.value.error is too_deep  # a conversion's own rejection, as it is


def test_no_conversion_before_the_body_is_whole() -> None:
    b = body({"skipped": "x", "a": None, "c": 5})
    read = reader([("c", boom)])
    assert read(b + b"\x00", 0) == ({"a": None, "c": 5}, len(b))  # the caller refuses
    with pytest.raises((Truncated, IndexError)):
        read(b[:-1], 0)


def test_conversions_it_cannot_do_leave_the_schema_unread() -> None:
    parsed = fastavro.parse_schema(ROW)
    assert compile_reader(parsed, named_types(parsed), {"a"}, [("c", str)]) is None
    assert compile_reader(parsed, named_types(parsed), None, [("c", str)]) is None
    assert compile_reader(["null", parsed], named_types(parsed), {"c"}, [("c", str)]) is None


def spec(columns: dict[str, str]) -> TableSpec:
    return TableSpec(name="public.t", topic="t", columns=tuple(
        Column(n, parse_type(t)[0], n == "id") for n, t in columns.items()),
        key_columns=("id",), key_format="int", value_format="avro")


def decoded(tmp: Path, schema: dict[str, Any], datum: dict[str, Any], columns: dict[str, str],
            tail: bytes = b"") -> tuple[str, Any]:
    reg = FileRegistry(tmp)
    b = avro_encoder(reg, "t-value", schema)(datum) + tail
    try:
        return "ok", codecs.value_decoder(spec(columns), reg)(b)
    except RecordError as e:
        return str(e), e.reason


TEXT = {"type": "record", "name": "Row", "namespace": "t", "fields": [
    {"name": "v", "type": "string"}, {"name": "d", "type": {
        "type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2}}]}


def test_the_decoder_converts_as_before(tmp_path: Path) -> None:
    ok = decoded(tmp_path, TEXT, {"v": "x", "d": decimal.Decimal("-1.05")},
                 {"id": "int", "v": "string", "d": "decimal(6,2)"})
    assert ok == ("ok", {"v": "x", "d": "-1.05"})
    with pytest.raises(RecordError) as want:  # a string for a bytes column: refused
        apply_plan((("v", "v", text_for_bytes),), {"v": "x"})
    refused = decoded(tmp_path, TEXT, {"v": "x", "d": decimal.Decimal(1)},
                      {"id": "int", "v": "bytes", "d": "decimal(6,2)"})
    assert refused == ("value: " + str(want.value), "type_mismatch")
    trailing = decoded(tmp_path, TEXT, {"v": "x", "d": decimal.Decimal(1)},
                       {"id": "int", "v": "bytes", "d": "decimal(6,2)"}, b"\x00")
    assert trailing[1] == "avro_decode"  # the bytes first, as before


def test_a_delete_marker_comes_before_a_conversion(tmp_path: Path) -> None:
    schema = {**TEXT, "fields": [*TEXT["fields"], {"name": "__deleted", "type": "string"}]}
    columns = {"id": "int", "v": "bytes", "d": "decimal(6,2)"}
    datum = {"v": "x", "d": decimal.Decimal(1)}
    assert decoded(tmp_path, schema, {**datum, "__deleted": "true"}, columns) == ("ok", DELETE)
    assert decoded(tmp_path, schema, {**datum, "__deleted": "false"}, columns)[1] == \
        "type_mismatch"

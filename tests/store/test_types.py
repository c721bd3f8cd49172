"""Unit tests (no broker) for column types, stored forms and the order-preserving key encoding."""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import math
import uuid
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from materializer.columns import ColumnType, parse_type
from materializer.store.keys import KeyCodec
from materializer.stored import from_storage, to_json_value
from materializer.temporal_values import _ISO_TIMESTAMP
from materializer.values import to_storage

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
FLOATS = st.floats(allow_nan=False).map(lambda f: 0.0 if f == 0 else f)  # -0.0 == 0.0
TEXT = st.text()
BYTES = st.binary()
DECIMALS = st.decimals(min_value=-(10**7), max_value=10**7, places=2, allow_nan=False,
                       allow_infinity=False)
DAYS = st.integers(-719_162, 2_932_896)
MICROS_OF_DAY = st.integers(0, 86_400_000_000 - 1)
MICROS = st.integers(-62_135_596_800_000_000, 253_402_300_799_999_999)

# (type, strategy of STORED values whose natural order is the order keys must have)
KEY_TYPES: dict[str, tuple[ColumnType, Any]] = {
    "boolean": (ColumnType("boolean"), st.booleans()),
    "int": (ColumnType("int"), INT32),
    "long": (ColumnType("long"), INT64),
    "float": (ColumnType("float"), FLOATS),
    "double": (ColumnType("double"), FLOATS),
    "decimal": (ColumnType("decimal", 10, 2), DECIMALS.map(lambda d: str(d.quantize(
        decimal.Decimal("0.01"))))),
    "string": (ColumnType("string"), TEXT),
    "bytes": (ColumnType("bytes"), BYTES),
    "date": (ColumnType("date"), DAYS),
    "time": (ColumnType("time"), MICROS_OF_DAY),
    "timestamp": (ColumnType("timestamp"), MICROS),
    "uuid": (ColumnType("uuid"), st.uuids().map(str)),
}


def natural(kind: str, v: Any) -> Any:
    """The order a user expects for a stored value of `kind`."""
    if kind == "decimal":
        return decimal.Decimal(v)
    if kind in ("string", "uuid"):
        return v.encode()  # code-point order == UTF-8 byte order
    return v


@pytest.mark.parametrize("kind", sorted(KEY_TYPES))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_single_key_order_and_round_trip(kind: str, data: st.DataObject) -> None:
    ctype, values = KEY_TYPES[kind]
    a, b = data.draw(values), data.draw(values)
    codec = KeyCodec([ctype])
    ea, eb = codec.encode((a,)), codec.encode((b,))
    assert codec.decode(ea) == (a,)
    na, nb = natural(kind, a), natural(kind, b)
    assert (ea < eb) == (na < nb)
    assert (ea == eb) == (na == nb)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(INT64, TEXT, st.one_of(st.none(), INT32)), min_size=2, max_size=30))
def test_composite_keys_sort_as_tuples_with_nulls_first(rows: list[tuple[int, str, int | None]]
                                                        ) -> None:
    codec = KeyCodec([ColumnType("long"), ColumnType("string"), ColumnType("int")])

    def order(t: tuple[int, str, int | None]) -> tuple[Any, ...]:
        return (t[0], t[1].encode(), (0, 0) if t[2] is None else (1, t[2]))
    assert sorted(rows, key=lambda r: codec.encode(r)) == sorted(rows, key=order)
    for r in rows:
        assert codec.decode(codec.encode(r)) == r


@settings(max_examples=300, deadline=None)
@given(INT64, TEXT, INT32, TEXT, INT32)
def test_a_prefix_selects_exactly_the_keys_that_start_with_it(a: int, s: str, n: int,
                                                              s2: str, n2: int) -> None:
    codec = KeyCodec([ColumnType("long"), ColumnType("string"), ColumnType("int")])
    key = codec.encode((a, s, n))
    assert key.startswith(codec.encode_prefix((a,)))
    assert key.startswith(codec.encode_prefix((a, s)))
    other = codec.encode((a, s2, n2))
    # "ab" must not be selected by the prefix "a": components are self-delimiting
    assert other.startswith(codec.encode_prefix((a, s))) == (s2 == s)


def test_prefix_longer_than_the_key_is_refused() -> None:
    with pytest.raises(ValueError):
        KeyCodec([ColumnType("int")]).encode_prefix((1, 2))


def test_strings_with_nul_bytes_and_their_extensions_order_correctly() -> None:
    codec = KeyCodec([ColumnType("string"), ColumnType("int")])
    keys = [("a", 5), ("a\x00", 1), ("a\x00b", 0), ("ab", -1), ("b", 0)]
    assert sorted(keys, key=lambda k: codec.encode(k)) == keys
    assert all(codec.decode(codec.encode(k)) == k for k in keys)


@pytest.mark.parametrize(("text", "expected"), [
    ("int", (ColumnType("int"), False)),
    ("STRING NOT NULL", (ColumnType("string"), True)),
    ("decimal(10, 2)", (ColumnType("decimal", 10, 2), False)),
    ("array<map<string, timestamp>>",
     (ColumnType("array", item=ColumnType("map", item=ColumnType("timestamp"))), False)),
])
def test_parse_type(text: str, expected: tuple[ColumnType, bool]) -> None:
    assert parse_type(text) == expected


@pytest.mark.parametrize("text", ["", "integer(", "decimal(2,3)", "map<int,string>", "strin",
                                  "array<int", "int not"])
def test_parse_type_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_type(text)


@pytest.mark.parametrize(("kind", "value", "stored", "back"), [
    ("date", "2024-05-03", 19846, dt.date(2024, 5, 3)),
    ("date", dt.date(1970, 1, 2), 1, dt.date(1970, 1, 2)),
    ("timestamp", 1_000, 1_000_000, dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=dt.UTC)),
    ("timestamp", "2024-05-03T10:00:00Z", 1_714_730_400_000_000,
     dt.datetime(2024, 5, 3, 10, tzinfo=dt.UTC)),
    ("time", 1_500, 1_500_000, dt.time(0, 0, 1, 500_000)),
    ("decimal(10,2)", "19.9", "19.90", decimal.Decimal("19.90")),
    ("decimal(10,2)", 2.675, "2.68", decimal.Decimal("2.68")),
    ("uuid", "12345678-1234-5678-1234-567812345678", "12345678-1234-5678-1234-567812345678",
     "12345678-1234-5678-1234-567812345678"),
    ("bytes", "aGk=", b"hi", b"hi"),
    ("double", 3, 3.0, 3.0),
])
def test_stored_form_and_python_form(kind: str, value: Any, stored: Any, back: Any) -> None:
    ctype = parse_type(kind)[0]
    assert to_storage(ctype)(value) == stored
    conv = from_storage(ctype)
    assert (stored if conv is None else conv(stored)) == back


ISO_PARTS = st.sampled_from(["2024-03-05", "T", " ", "10", ":11", ":12", ".123", ".123456",
                              "Z", "z", "+01:00", "-05:30", "+00:00", "W10-2", "2024",
                              "-065", "1", "0", "-", ":", "+", ",5"])


@given(st.lists(ISO_PARTS, max_size=8).map("".join))
@settings(max_examples=500)
@example("2024-03-05Z")  # a Z after a bare date: +00:00 reads as a time, Z does not read
@example("2024-03-05Z10:11:12Z")  # Z as the separator: no ISO 8601 form, refused
@example("2024-03-05T10:11:12.123Z")
@example("2024-03-05 10Z:11")
def test_timestamp_text_is_read_as_with_every_z_replaced_by_utc_offset(text: str) -> None:
    """The stored form of ISO text is `fromisoformat` of the text with every Z replaced by
    +00:00 (how it was always read), whichever shortcut reads it: same value, same refusal;
    text outside the ISO 8601 forms read (`temporal_values._ISO_TIMESTAMP`: Python reads
    some of it as another value, tests/formats/test_iso_text_strict.py) is refused."""
    conv = to_storage(ColumnType("timestamp"))
    if _ISO_TIMESTAMP(text) is None:
        with pytest.raises(ValueError, match="is not an ISO 8601 timestamp"):
            conv(text)
        return
    parsed = None
    for form in (text, text.replace("z", "Z")):  # RFC 3339's z: read as Z when refused
        with contextlib.suppress(ValueError):
            parsed = dt.datetime.fromisoformat(form.replace("Z", "+00:00"))
            break
    if parsed is None:
        with pytest.raises(ValueError):
            conv(text)
        return
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    micros = (parsed - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
    if -62_135_596_800_000_000 <= micros <= 253_402_300_799_999_999:
        assert conv(text) == micros
    else:
        with pytest.raises(ValueError):
            conv(text)


@given(MICROS)
def test_the_json_form_of_a_timestamp_is_its_iso_text_in_utc_with_a_z(micros: int) -> None:
    at = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)
    text = to_json_value(ColumnType("timestamp"))(micros)  # type: ignore[misc]
    assert text == at.isoformat().replace("+00:00", "Z")
    assert from_storage(ColumnType("timestamp"))(micros) == at  # type: ignore[misc]


@given(MICROS, st.integers(-1439, 1439))
def test_timestamps_in_any_form_store_their_utc_microseconds(micros: int, minutes: int) -> None:
    """A datetime (aware at any offset, or naive as UTC) and its ISO text, with an offset
    or a Z, all store the microseconds since the epoch the calendar gives."""
    at = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=micros)
    zone = dt.timezone(dt.timedelta(minutes=minutes))
    conv = to_storage(ColumnType("timestamp"))
    forms: list[Any] = [at, at.replace(tzinfo=dt.UTC), at.isoformat() + "Z"]
    with contextlib.suppress(OverflowError):  # that offset's local time is past year 9999
        forms += [(shifted := at.replace(tzinfo=dt.UTC).astimezone(zone)), shifted.isoformat()]
    delta = at - dt.datetime(1970, 1, 1)
    expected = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    for form in forms:
        assert conv(form) == expected, form


@pytest.mark.parametrize(("kind", "value"), [
    ("int", 2**31), ("int", 1.0), ("int", True), ("int", "1"), ("long", 2**63),
    ("double", "1.5"), ("double", 10**400), ("boolean", 1), ("string", 5),
    ("decimal(4,2)", "123.45"), ("decimal(10,2)", "nan"), ("date", 10**9),
    ("timestamp", 2**62), ("time", 86_400_000), ("uuid", "not-a-uuid"), ("bytes", "***"),
    ("array<int>", {"a": 1}), ("map<string,int>", {1: 2}),
])
def test_values_that_do_not_fit_are_refused(kind: str, value: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        to_storage(parse_type(kind)[0])(value)


def test_uuid_is_canonical() -> None:
    u = uuid.uuid4()
    assert to_storage(ColumnType("uuid"))(str(u).upper()) == str(u)
    assert math.isfinite(to_storage(ColumnType("double"))(2**60))


@settings(max_examples=500, deadline=None)
@given(st.one_of(
    st.binary(max_size=40),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
                 lambda inner: st.lists(inner, max_size=3)
                 | st.dictionaries(TEXT, inner, max_size=3), max_leaves=8).map(
        lambda v: __import__("json").dumps(v).encode()),
), st.sampled_from([b"", b" ", b"\n", b"\x0b", b"x", b"\xff", b" 1"]),
   st.sampled_from([b"", b" ", b"\t", b"\xef\xbb\xbf"]))
def test_fast_json_loads_matches_json_loads(body: bytes, tail: bytes, head: bytes) -> None:
    import json

    from materializer.formats.jsonread import fast_json_loads

    data = head + body + tail
    try:
        expected: Any = ("ok", json.loads(data))
    except (ValueError, UnicodeDecodeError) as e:
        expected = ("error", type(e))
    try:
        got: Any = ("ok", fast_json_loads(data))
    except (ValueError, UnicodeDecodeError) as e:
        got = ("error", type(e))
    assert got == expected

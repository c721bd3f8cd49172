"""The generated Avro readers (`formats.avro_compiled`) against fastavro's reader.

Over generated schemas and values: what fastavro writes reads back to what fastavro
reads; over the same bytes cut short, flipped or extended, a body the generated reader
accepts is one fastavro accepts with the same datum, and the generated reader raises
only its own refusals. The cases where it refuses what fastavro reads (bytes no Avro
writer writes) are pinned one by one.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import math
import string
import uuid
from typing import Any

import fastavro
import pytest
from hypothesis import event, example, given, reject, settings
from hypothesis import strategies as st

from materializer.formats.avro_compiled import Invalid, Truncated, compile_reader, fastavro_schema
from materializer.formats.avro_schema import named_types

REFUSALS = (Truncated, Invalid, IndexError, UnicodeDecodeError)

_SCALARS = ("null", "boolean", "int", "long", "float", "double", "string", "bytes")
_names = iter(f"T{i}" for i in range(10**9))


def _named(kind: str, **rest: Any) -> dict[str, Any]:
    return {"type": kind, "name": next(_names), **rest}


_LOGICAL = [{"type": "long", "logicalType": "timestamp-millis"},
            {"type": "long", "logicalType": "timestamp-micros"},
            {"type": "long", "logicalType": "local-timestamp-millis"},
            {"type": "long", "logicalType": "local-timestamp-micros"},
            {"type": "int", "logicalType": "date"},
            {"type": "int", "logicalType": "time-millis"},
            {"type": "long", "logicalType": "time-micros"},
            {"type": "string", "logicalType": "uuid"},
            {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
            {"type": "long", "logicalType": "not-one-fastavro-knows"}]

_leaf = st.one_of(
    st.sampled_from(_SCALARS),
    st.sampled_from(_LOGICAL).map(dict),
    st.builds(lambda scale: _named("fixed", size=6, logicalType="decimal", precision=12,
                                   scale=scale), st.integers(0, 4)),
    st.builds(lambda symbols: _named("enum", symbols=symbols),
              st.lists(st.sampled_from(string.ascii_uppercase), min_size=1, max_size=4,
                       unique=True)),
    st.builds(lambda size: _named("fixed", size=size), st.integers(0, 5)))


def _union(branches: list[Any]) -> list[Any]:
    """Branches of distinct kinds (Avro's rule: a logical type is its base type's kind),
    unions not nested; one decimal (fastavro's writer cannot choose between decimals of
    two scales), not a uuid and an enum."""
    out, seen = [], {"union"}
    for b in branches:
        if isinstance(b, str):
            kinds = {b}
        elif isinstance(b, list):
            kinds = {"union"}
        else:
            logical = b.get("logicalType")
            kinds = {b.get("name", b["type"]), logical}
            if logical == "uuid" or b["type"] == "enum":
                kinds.add("text")  # fastavro's writer tries a str as a uuid, then fails
        if not kinds & seen:
            seen |= kinds
            out.append(b)
    return out or ["null"]


def _schemas(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(lambda items: {"type": "array", "items": items}, children),
        st.builds(lambda values: {"type": "map", "values": values}, children),
        st.builds(_union, st.lists(children, min_size=1, max_size=4)),
        st.builds(lambda types: _named("record", fields=[
            {"name": f"f{i}", "type": t} for i, t in enumerate(types)]),
            st.lists(children, max_size=5)))


schemas = st.recursive(_leaf, _schemas, max_leaves=12)


def _values(node: Any, named: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values fastavro writes for `node` (parsed)."""
    if isinstance(node, list):
        return st.one_of(*(_values(b, named) for b in node))
    if isinstance(node, str) and node in named:
        node = named[node]
    kind = node["type"] if isinstance(node, dict) else node
    logical = node.get("logicalType") if isinstance(node, dict) else None
    if logical is not None and logical in _LOGICAL_VALUES:
        return _LOGICAL_VALUES[logical](node)
    simple: dict[str, st.SearchStrategy[Any]] = {
        "null": st.none(), "boolean": st.booleans(),
        "int": st.integers(-(2**31), 2**31 - 1), "long": st.integers(-(2**63), 2**63 - 1),
        "float": st.floats(width=32), "double": st.floats(),
        "string": st.text(max_size=8), "bytes": st.binary(max_size=8)}
    if kind in simple:
        return simple[kind]
    if kind == "enum":
        return st.sampled_from(node["symbols"])
    if kind == "fixed":
        return st.binary(min_size=node["size"], max_size=node["size"])
    if kind == "array":
        return st.lists(_values(node["items"], named), max_size=3)
    if kind == "map":
        return st.dictionaries(st.text(max_size=3), _values(node["values"], named),
                               max_size=3)
    return st.fixed_dictionaries({f["name"]: _values(f["type"], named)
                                  for f in node["fields"]})


_aware = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30),
                      timezones=st.just(dt.UTC))
_LOGICAL_VALUES: dict[str, Any] = {
    "timestamp-millis": lambda node: _aware, "timestamp-micros": lambda node: _aware,
    "local-timestamp-millis": lambda node: st.datetimes(),
    "local-timestamp-micros": lambda node: st.datetimes(),
    "date": lambda node: st.dates(), "time-millis": lambda node: st.times(),
    "time-micros": lambda node: st.times(), "uuid": lambda node: st.uuids(),
    "decimal": lambda node: st.integers(-(10**9) + 1, 10**9 - 1).map(
        lambda n: decimal.Decimal(n).scaleb(-node.get("scale", 0)))}


def _same(a: Any, b: Any) -> bool:
    """Equal values, NaN equal to NaN, and of the same types."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return (list(a) == list(b)) and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _fastavro(parsed: Any, body: bytes) -> tuple[Any, int]:
    """fastavro's reader as the worker calls it where no reader is generated: its times
    checked (`fastavro_schema`), refusing what is no time of day rather than wrap it."""
    bio = io.BytesIO(body)
    return fastavro.schemaless_reader(bio, fastavro_schema(parsed), None), bio.tell()


def _write(parsed: Any, value: Any) -> bytes:
    """`value` as fastavro writes it; a value fastavro's writer cannot write is no example
    (its union resolution tries a branch by value: a string in a union that has a logical
    `date` branch before `string` is parsed as a date, and '' fails). Such schemas come up
    depending on which tests ran before in the process (named types are numbered)."""
    out = io.BytesIO()
    try:
        fastavro.schemaless_writer(out, parsed, value)
    except ValueError:
        reject()
    return out.getvalue()


def _reader(schema: Any) -> tuple[Any, Any]:
    parsed = fastavro.parse_schema(schema)
    read = compile_reader(parsed, named_types(parsed))
    return parsed, read


def _no_bytes(node: Any) -> bool:
    """Whether a value of `node` (parsed, named types defined in place) may take no bytes."""
    if isinstance(node, dict):
        if node["type"] == "record":
            return all(_no_bytes(f["type"]) for f in node["fields"])
        return node["type"] == "fixed" and node["size"] == 0
    return node == "null"


def _zero_byte_array(node: Any) -> bool:
    return isinstance(node, dict) and node.get("type") == "array" and _no_bytes(node["items"])


@settings(max_examples=300)
@given(st.data(), schemas)
def test_what_fastavro_writes_reads_as_fastavro_reads_it(data: st.DataObject,
                                                         schema: Any) -> None:
    parsed, read = _reader(schema)
    if read is None:  # only arrays of items that take no bytes are left to fastavro
        assert _has(parsed, _zero_byte_array)
        event("left to fastavro")
        return
    value = data.draw(_values(parsed, dict(named_types(parsed))))
    body = b"\x00" + _write(parsed, value)
    datum, end = read(body, 1)
    expected, expected_end = _fastavro(parsed, body[1:])
    assert _same(datum, expected)
    assert end - 1 == expected_end == len(body) - 1


def _has(node: Any, test: Any) -> bool:
    if test(node):
        return True
    if isinstance(node, list):
        return any(_has(b, test) for b in node)
    if isinstance(node, dict):
        return any(_has(v, test) for k, v in node.items() if k in ("type", "items", "values")
                   ) or any(_has(f["type"], test) for f in node.get("fields", ()))
    return False


@settings(max_examples=400)
@given(st.data(), schemas)
def test_what_it_accepts_fastavro_reads_the_same(data: st.DataObject, schema: Any) -> None:
    parsed, read = _reader(schema)
    if read is None:
        return
    body = _write(parsed, data.draw(_values(parsed, dict(named_types(parsed)))))
    how = data.draw(st.sampled_from(("cut", "flip", "extend", "random")))
    if how == "cut" and body:
        body = body[:data.draw(st.integers(0, len(body) - 1))]
    elif how == "flip" and body:
        i = data.draw(st.integers(0, len(body) - 1))
        body = body[:i] + bytes([data.draw(st.integers(0, 255))]) + body[i + 1:]
    elif how == "extend":
        body += data.draw(st.binary(min_size=1, max_size=4))
    else:
        body = data.draw(st.binary(max_size=24))
    try:
        datum, end = read(body, 0)
    except Exception as e:  # noqa: BLE001
        event(f"refused ({how}): {type(e).__name__}")
        if not isinstance(e, REFUSALS):  # a logical type's converter: fastavro's refusal
            with pytest.raises(type(e)):
                _fastavro(parsed, body)
        return
    event(f"accepted ({how})")
    if end > len(body):  # pragma: no cover - would be a bug: read past the end
        pytest.fail(f"read to {end} of {len(body)} bytes")
    expected, expected_end = _fastavro(parsed, body)
    assert _same(datum, expected)
    assert end == expected_end


RECORD = {"type": "record", "name": "R", "fields": [
    {"name": "u", "type": ["null", "long", "string"]},
    {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["X", "Y", "Z"]}},
    {"name": "b", "type": "boolean"},
    {"name": "s", "type": "string"}]}


@pytest.mark.parametrize("body, why", [
    (bytes([5, 0, 0, 0]), "union branch -3"),  # fastavro: branch [-3] = "null"
    (bytes([0, 5, 0, 0]), "enum index -3"),  # fastavro: symbols[-3] = "X"
    (bytes([0, 0, 2, 0]), "boolean byte 2"),  # fastavro: True
    (bytes([0, 0, 0, 1]), "negative length"),  # fastavro: EOFError
    (bytes([2] + [0x80] * 9 + [0x02, 0, 0, 0]), "varint beyond 64 bits"),  # wrapped
    (bytes([2] + [0x80] * 10 + [0x01, 0, 0, 0]), "varint longer than 10 bytes"),
])
def test_bytes_no_writer_writes_are_refused(body: bytes, why: str) -> None:
    _, read = _reader(RECORD)
    with pytest.raises(Invalid, match=why):
        read(body, 0)


@example(cut=0)
@given(st.integers(0, 11))
def test_a_body_cut_short_is_truncated(cut: int) -> None:
    parsed, read = _reader(RECORD)
    body = _write(parsed, {"u": "abcdefgh", "e": "Y", "b": True, "s": "x"})
    assert len(body) == 14
    with pytest.raises((Truncated, IndexError)):
        read(body[:cut], 0)


def test_named_types_are_read_where_they_are_used() -> None:
    """The shape of a Debezium envelope: `after` names the record `before` defines."""
    value = {"type": "record", "name": "Value", "fields": [{"name": "id", "type": "long"}]}
    parsed, read = _reader({"type": "record", "name": "Envelope", "namespace": "db", "fields": [
        {"name": "before", "type": ["null", value]},
        {"name": "after", "type": ["null", "Value"]},
        {"name": "op", "type": "string"}]})
    assert read is not None
    datum = {"before": None, "after": {"id": 7}, "op": "c"}
    body = _write(parsed, datum)
    assert read(body, 0) == (datum, len(body))


@pytest.mark.parametrize("node, value", [
    ({"type": "long", "logicalType": "timestamp-millis"},
     dt.datetime(2024, 5, 3, 12, 30, 0, 123000, tzinfo=dt.UTC)),
    ({"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2},
     decimal.Decimal("12.34")),
    ({"type": "string", "logicalType": "uuid"}, str(uuid.UUID(int=7))),  # text as written
    ({"type": "long", "logicalType": "io.debezium.time.Timestamp"}, 17),  # fastavro: raw
    ({"type": "long", "connect.name": "io.debezium.time.Timestamp"}, 17),
])
def test_logical_types_convert_as_fastavro_converts(node: Any, value: Any) -> None:
    parsed, read = _reader({"type": "record", "name": "R", "fields": [{"name": "v", "type": node}]})
    body = _write(parsed, {"v": value})
    datum, end = read(body, 0)
    assert _same(datum, _fastavro(parsed, body)[0]) and end == len(body)
    assert datum["v"] == value


def test_arrays_of_items_that_take_no_bytes_are_left_to_fastavro() -> None:
    _, read = _reader({"type": "record", "name": "R", "fields": [
        {"name": "v", "type": {"type": "array", "items": "null"}}]})
    assert read is None  # a block count is then not bounded by the bytes left


@pytest.mark.parametrize("depth", [5, 11, 60])
def test_arrays_nested_past_what_python_compiles_are_left_to_fastavro(depth: int) -> None:
    node: Any = "long"
    for _ in range(depth):
        node = {"type": "array", "items": node}
    parsed, read = _reader({"type": "record", "name": "R", "fields": [{"name": "a", "type": node}]})
    assert (read is not None) is (depth == 5)
    value: Any = 7
    for _ in range(depth):
        value = [value]
    body = _write(parsed, {"a": value})
    if read is not None:
        assert read(body, 0) == ({"a": value}, len(body))

"""The generated Avro record writers write the bytes fastavro writes, for records of every
field type the writers know (and of types they leave to fastavro), and refuse what
fastavro refuses (a long outside 64 bits)."""

from __future__ import annotations

import decimal
import io
import uuid
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from materializer.changes.avro_rows import record_writer, zigzag

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None)
LONG = st.integers(-(2**63), 2**63 - 1)
INT = st.integers(-(2**31), 2**31 - 1)
DECIMAL = {"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 2}

# (schema node, values for it) of the types the writers know
SCALARS: list[tuple[Any, st.SearchStrategy[Any]]] = [
    ("int", INT), ("long", LONG), ("boolean", st.booleans()),
    ("double", st.floats(allow_nan=False)),
    ("float", st.floats(allow_nan=False)),  # beyond the float range: infinite
    ("string", st.text()), ("bytes", st.binary()),
    ({"type": "int", "logicalType": "date"}, st.integers(-700_000, 2_900_000)),
    ({"type": "long", "logicalType": "time-micros"}, st.integers(0, 86_400_000_000 - 1)),
    ({"type": "long", "logicalType": "timestamp-micros"}, LONG),
    ({"type": "long", "logicalType": "timestamp-millis"}, LONG),
    ({"type": "string", "logicalType": "uuid"}, st.uuids().map(str)),
    ({"type": "string", "connect.name": "io.debezium.data.Json"}, st.text()),
    # a decimal arrives as its bytes, or as a Decimal the writer leaves to fastavro
    (DECIMAL, st.decimals(-(10**17), 10**17, places=2, allow_nan=False,
                          allow_infinity=False)),
    # types left to fastavro, field by field
    ({"type": "enum", "name": "Colour", "symbols": ["red", "green"]},
     st.sampled_from(["red", "green"])),
    ({"type": "fixed", "name": "Four", "size": 4}, st.binary(min_size=4, max_size=4)),
]


def _nullable(t: tuple[Any, Any]) -> tuple[Any, Any]:
    return ["null", t[0]], st.one_of(st.none(), t[1])


def _containers(t: tuple[Any, Any]) -> st.SearchStrategy[tuple[Any, Any]]:
    node, values = _nullable(t)
    return st.sampled_from([
        ({"type": "array", "items": node}, st.lists(values, max_size=4)),
        ({"type": "map", "values": node}, st.dictionaries(st.text(max_size=4), values,
                                                          max_size=3)),
    ])


NAMED = ("enum", "fixed")
FIELD = st.sampled_from(SCALARS).flatmap(lambda t: st.one_of(
    st.just(t), st.just(_nullable(t)),
    # named types are defined once per schema: not inside containers of several fields
    st.nothing() if isinstance(t[0], dict) and t[0]["type"] in NAMED else _containers(t)))


def _record(fields: list[tuple[Any, Any]]) -> tuple[dict[str, Any], st.SearchStrategy[Any]]:
    """A record of `fields` (named types made unique) and a strategy of its value tuples."""
    def renamed(node: Any, i: int) -> Any:
        if isinstance(node, list):
            return [renamed(n, i) for n in node]
        if isinstance(node, dict) and node.get("type") in NAMED:
            return {**node, "name": f"{node['name']}{i}"}
        return node
    nodes = [{"name": f"f{i}", "type": renamed(node, i)} for i, (node, _) in enumerate(fields)]
    return ({"type": "record", "name": "R", "fields": nodes},
            st.tuples(*(values for _, values in fields)))


def _decimal_as_stored(node: Any, v: Any) -> Any:
    """What the envelope gives the writer for a decimal: usually its bytes (fastavro's)."""
    if node == DECIMAL and isinstance(v, decimal.Decimal) and int(v * 100) % 3:
        from fastavro._logical_writers_py import prepare_bytes_decimal
        return prepare_bytes_decimal(v, node)
    return v


def _fastavro(schema: dict[str, Any], values: tuple[Any, ...]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema),
                               {f["name"]: v for f, v in zip(schema["fields"], values,
                                                             strict=True)})
    return buf.getvalue()


@SETTINGS
@given(st.lists(FIELD, min_size=1, max_size=6).map(_record).flatmap(
    lambda r: st.tuples(st.just(r[0]), r[1])))
def test_records_are_the_bytes_fastavro_writes(case: tuple[dict[str, Any], tuple[Any, ...]]
                                               ) -> None:
    schema, values = case
    write = record_writer([f["type"] for f in schema["fields"]])
    stored = tuple(_decimal_as_stored(f["type"], v) for f, v in zip(schema["fields"], values,
                                                                      strict=True))
    assert write(stored) == _fastavro(schema, values)


@SETTINGS
@given(st.lists(FIELD, min_size=1, max_size=3).map(_record).flatmap(
    lambda r: st.tuples(st.just(r[0]), r[1])))
def test_records_nest_as_tuples(case: tuple[dict[str, Any], tuple[Any, ...]]) -> None:
    """A record defined in place takes a tuple; a short outer tuple ends in nulls."""
    inner, values = case
    outer = {"type": "record", "name": "Outer", "fields": [
        {"name": "inner", "type": inner}, {"name": "n", "type": ["null", "long"]}]}
    write = record_writer([f["type"] for f in outer["fields"]])
    assert write((values,)) == _fastavro(outer, ({f["name"]: v for f, v in zip(
        inner["fields"], values, strict=True)}, None))


def test_conversions_apply_to_values_not_null() -> None:
    write = record_writer([["null", "string"], "long"], [str.upper, None])
    assert write(("ab", 3)) == _fastavro(
        {"type": "record", "name": "R", "fields": [{"name": "a", "type": ["null", "string"]},
                                                   {"name": "b", "type": "long"}]},
        ("AB", 3))
    assert write((None, 3)) == b"\x00\x06"


@pytest.mark.parametrize("n", [2**63, -(2**63) - 1, 2**70])
def test_a_long_outside_64_bits_is_refused_like_fastavro(n: int) -> None:
    with pytest.raises(OverflowError):
        zigzag(n)
    with pytest.raises(OverflowError):
        record_writer(["long"])((n,))
    with pytest.raises((OverflowError, ValueError)):
        _fastavro({"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]},
                  (n,))


def test_uuid_values_are_text() -> None:
    u = str(uuid.UUID(int=5))
    assert record_writer([{"type": "string", "logicalType": "uuid"}])((u,)) == \
        bytes([len(u) * 2]) + u.encode()


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 127, 128, 8191, 8192, 100_000])
def test_lengths_at_varint_boundaries(size: int) -> None:
    schema = {"type": "record", "name": "R", "fields": [
        {"name": "s", "type": "string"}, {"name": "b", "type": ["null", "bytes"]},
        {"name": "a", "type": {"type": "array", "items": "boolean"}}]}
    values = ("é" * (size // 2) + "x" * (size % 2), b"\x00" * size, [True] * size)
    assert record_writer([f["type"] for f in schema["fields"]])(values) == \
        _fastavro(schema, values)


@pytest.mark.parametrize("n", [0, -1, 63, 64, -64, -65, 8191, 8192, -8193, 2**27 - 1, 2**27,
                               2**41, 1_700_000_000_000, 2**31, 2**63 - 1,
                               -(2**63)])
def test_longs_at_varint_boundaries(n: int) -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "n", "type": "long"}]}
    assert record_writer(["long"])((n,)) == _fastavro(schema, (n,))


@pytest.mark.parametrize("v", [3.4028234663852886e38, 3.4028235677973366e38, 3.5e38, 1e39,
                               -1e300, float("inf"), float("-inf"), 1e-46, -0.0])
def test_floats_beyond_float32_are_infinite_like_fastavro(v: float) -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "f", "type": "float"}]}
    assert record_writer(["float"])((v,)) == _fastavro(schema, (v,))

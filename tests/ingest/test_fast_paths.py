"""The ingest fast paths give exactly what the reference paths give (values and errors):
the generated row shaper vs RowShaper, the key paths vs decode + encode, and JSON read
through msgspec vs through json alone. Property tests over the fuzz tests' inputs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from materializer.errors import RecordError
from materializer.formats import codecs
from materializer.formats.jsonread import json_path_loads, loads
from materializer.ingest.jsonrow import MISSES_TO_STOP, row_decoder, two_steps
from materializer.ingest.keypath import general_key_path, key_path
from materializer.ingest.shaper import RowShaper, compile_shaper
from materializer.store.keys import KeyCodec
from tests.formats.test_fuzz_decoders import (
    ALL_TYPES,
    FUZZ,
    NASTY,
    POISON,
    SHAPER_SPEC,
    _json_ish,
    json_bytes,
    poison_json,
    spec,
)


def outcome(f: Any, *args: Any) -> tuple[str, Any]:
    """("ok", repr of the result) or ("error", (message, reason)): repr tells 1 from 1.0
    and -0.0 from 0.0, and NaN equals itself."""
    try:
        return "ok", repr(f(*args))
    except RecordError as e:
        return "error", (str(e), e.reason)


NOT_NULL_SPEC = spec({"id": "long", "s": "string not null", "n": "long not null",
                      "i": "int not null", "d": "double not null", "b": "boolean not null",
                      "j": "json not null"}, ["id"], "long", "json")
NESTED_SPEC = spec({"id": "long", "tags": "array<string>", "attrs": "map<string,string>",
                    "nest": "map<string,array<long>>", "xs": "array<double>",
                    "flags": "array<boolean> not null"}, ["id"], "long", "json")
SPECS = [SHAPER_SPEC, NOT_NULL_SPEC, NESTED_SPEC]


@pytest.mark.parametrize("s", SPECS, ids=["nullable", "not-null", "nested"])
def test_generated_shaper_equals_reference(s: Any) -> None:
    reference = RowShaper(s, s.column_names)
    fast = compile_shaper(s, s.column_names)
    names = [n for n in s.column_names if n not in s.key_columns]

    nested = st.recursive(st.one_of(NASTY, _json_ish()), lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)),
        max_leaves=6)

    @FUZZ
    @given(st.dictionaries(st.sampled_from(names), nested, max_size=len(names)),
           st.integers(-(2**63), 2**63 - 1))
    def run(fields: dict[str, Any], key: int) -> None:
        want = outcome(lambda: tuple(reference.shape(fields, (key,))))
        assert outcome(lambda: fast(fields, (key,))) == want

    run()


def test_generated_shaper_keeps_layout_order_and_key_slots() -> None:
    s = spec({"a": "string", "id": "long", "z": "double"}, ["id"], "long", "json")
    layout = ["z", "id", "a", "late"]
    s2 = spec({"a": "string", "id": "long", "z": "double", "late": "int"}, ["id"], "long",
              "json")
    fast = compile_shaper(s2, layout)
    assert fast({"a": "x", "z": 1, "id": 99, "late": None}, (7,)) == (1.0, 7, "x", None)
    assert compile_shaper(s, ["id"])({}, (3,)) == (3,)


KEY_SPECS = [spec({"id": t, "v": "string"}, ["id"], fmt, "json")
             for fmt, t in (("int", "int"), ("int", "long"), ("long", "long"), ("long", "int"),
                            ("string", "string"), ("kafka", "int"), ("kafka", "long"),
                            ("kafka", "string"), ("json", "long"))]


@pytest.mark.parametrize("kspec", KEY_SPECS,
                         ids=[f"{s.key_format}:{s.key_types[0]}" for s in KEY_SPECS])
def test_key_paths_equal_decode_and_encode(kspec: Any) -> None:
    dec = codecs.key_decoder(kspec)
    codec = KeyCodec(kspec.key_types)
    fast = key_path(kspec, dec, codec)
    general = general_key_path(dec, codec)
    edges = [b"", b"\x00", b"\x80\x00\x00\x00", b"\x7f\xff\xff\xff", b"\xff" * 4, b"\xff" * 8,
             b"\x00" * 8, b"\x80" + b"\x00" * 7, b"\xed\xa0\x80", b"a\x00b", b"x" * 600,
             b"x" * 508, "é".encode() * 300]

    @FUZZ
    @given(st.one_of(st.binary(max_size=12), st.sampled_from(edges),
                     st.text(max_size=20).map(lambda t: t.encode("utf-8", "surrogatepass"))))
    def run(b: bytes) -> None:
        assert outcome(fast, b) == outcome(general, b)

    run()


@FUZZ
@given(st.one_of(st.binary(max_size=40), json_bytes(sorted(ALL_TYPES)),
                 poison_json(sorted(ALL_TYPES)), st.sampled_from(POISON),
                 st.text(max_size=30).map(lambda t: json.dumps(t, ensure_ascii=False).encode(
                     "utf-8", "surrogatepass"))))
def test_json_loads_equals_the_json_path(b: bytes) -> None:
    assert outcome(loads, b) == outcome(json_path_loads, b)


def typed_path_on(fused: Any) -> None:
    """Reset a generated decoder's miss counter: one example's garbage must not turn the
    typed path off for the examples after it."""
    fused.__globals__["_off"][0] = False
    fused.__globals__["_counts"][:] = [0, 0]


JSON_ROW_SPECS = [
    spec(ALL_TYPES, ["id"], "int", "json"),
    spec({"id": "long", "s": "string not null", "i": "int", "b": "boolean", "d": "double",
          "tags": "array<string>", "m": "map<string,string>"}, ["id"], "long", "json"),
    spec({"region": "string", "id": "long", "name": "string", "n": "long"}, ["region", "id"],
         "json", "json"),
    spec({"id": "long"}, ["id"], "long", "json"),
    spec({"id": "long", "s": "string", "i": "int", "b": "boolean not null", "d": "double",
          "f": "float", "n": "long"}, ["id"], "long", "json"),
    spec({"s": "string", "id": "long", "d": "double"}, ["id"], "long", "json"),
    spec({"id": "long", "tags": "array<string> not null", "xs": "array<double>",
          "ns": "array<int>", "m": "map<string,long>", "deep": "map<string,array<boolean>>",
          "dec": "array<decimal(5,2)>"}, ["id"], "long", "json"),
]
JSON_ROW_IDS = ["all-types", "typed", "composite", "key-only", "flat", "key-not-first",
                "typed-items"]


ITEM_EDGES = [b'{"tags": ["a", null], "ns": [2147483648]}', b'{"tags": [], "ns": [1, null]}',
              b'{"tags": ["a"], "xs": [1, 2.5, null, 9007199254740993]}',
              b'{"tags": ["a"], "m": {"a": 9223372036854775808}}', b'{"tags": [null]}',
              b'{"tags": ["a"], "deep": {"a": [true, null, 1]}}', b'{"tags": null}',
              b'{"tags": ["a"], "dec": ["1.005", 1, null]}', b'{"tags": ["a", 1]}',
              b'{"tags": ["a"], "m": {"a": -1, "b": null}, "ns": [-2147483649]}']


@pytest.mark.parametrize("s", JSON_ROW_SPECS, ids=JSON_ROW_IDS)
def test_json_row_decoder_equals_decode_then_shape(s: Any) -> None:
    value_decoder = codecs.value_decoder(s)
    shape = compile_shaper(s, s.column_names)
    fused = row_decoder(s, s.column_names, value_decoder, shape)
    assert fused.__name__ == "decode" and fused.__code__.co_filename.startswith("<json row")
    general = two_steps(value_decoder, shape)
    key = tuple("k" if t.kind == "string" else 1 for t in s.key_types)
    names = [*s.column_names, "payload", "schema", "other"]
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5),
                        st.floats(), st.sampled_from([2**31, 2**63, -(2**63) - 1]))
    typed_values = st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)),
        max_leaves=6)

    @FUZZ
    @given(st.one_of(
        st.binary(max_size=40), json_bytes(names), poison_json(names),
        st.dictionaries(st.sampled_from(names), typed_values).map(
            lambda o: json.dumps(o).encode()),
        st.dictionaries(st.sampled_from(list(s.column_names)), typed_values, min_size=1).map(
            lambda o: json.dumps(o, ensure_ascii=False).encode()),
        st.sampled_from([b'{"payload": null, "schema": {"type": "int32"}}',
                         b'{"' + s.column_names[-1].encode() + b'": "\xed\xa0\x80"}',
                         b'{"other": "\xff", "' + s.column_names[-1].encode() + b'": 1}',
                         b'{"' + s.column_names[-1].encode() + b'": 1, "other": 1e400}',
                         *ITEM_EDGES])))
    def run(b: bytes) -> None:
        typed_path_on(fused)
        assert outcome(fused, b, key) == outcome(general, b, key)

    run()


def test_json_row_decoder_gives_up_the_typed_path_for_records_that_keep_missing() -> None:
    """Values with fields the declaration does not name always miss the typed path; after
    MISSES_TO_STOP of them it is no longer tried, and the answers stay the two steps'."""
    s = JSON_ROW_SPECS[1]
    value_decoder = codecs.value_decoder(s)
    shape = compile_shaper(s, s.column_names)
    fused = row_decoder(s, s.column_names, value_decoder, shape)
    general = two_steps(value_decoder, shape)
    extra = b'{"s": "x", "i": 1, "undeclared": true}'
    plain = b'{"s": "y", "i": 2}'
    for _ in range(MISSES_TO_STOP + 1):
        assert fused(extra, (1,)) == general(extra, (1,)) == (1, "x", 1, None, None, None,
                                                                None)
    assert fused.__globals__["_off"] == [True]
    assert fused(plain, (2,)) == general(plain, (2,))


DEBEZIUM_SPECS = [spec(ALL_TYPES, ["id"], "int", "debezium-json"),
                  spec({"id": "long", "s": "string not null", "i": "int", "d": "double",
                        "tags": "array<string>", "m": "map<string,long>", "j": "json"},
                       ["id"], "long", "debezium-json")]


def _value_for(t: Any) -> st.SearchStrategy[Any]:
    """Values mostly of the column's type (integers sometimes out of its range)."""
    kind = t.kind
    if kind in ("array", "map"):
        item = st.one_of(st.none(), _value_for(t.item))
        return (st.lists(item, max_size=3) if kind == "array"
                else st.dictionaries(st.text(max_size=2), item, max_size=2))
    return {"string": st.text(max_size=4), "boolean": st.booleans(),
            "int": st.integers(-(2**31) - 1, 2**31), "long": st.integers(-(2**63), 2**63),
            "float": st.floats(), "double": st.floats(),
            "decimal": st.sampled_from(["1.25", "-0.5", 3, "1e3", 1.5, "x"]),
            "date": st.sampled_from(["2024-02-29", 19000, "2024-13-01"]),
            "time": st.sampled_from(["12:30:00", "25:00", 1000]),
            "timestamp": st.sampled_from(["2024-01-01T00:00:00Z", 1700000000000, "x"]),
            "uuid": st.sampled_from(["12345678-1234-5678-1234-567812345678", "x"]),
            "bytes": st.sampled_from(["AAE=", "!"])}.get(
        kind, st.one_of(st.text(max_size=12), st.integers(), st.floats()))


@pytest.mark.parametrize("s", DEBEZIUM_SPECS, ids=["all-types", "typed"])
def test_debezium_json_row_decoder_equals_decode_then_shape(s: Any) -> None:
    """Debezium events: the generated decoder (a typed `after`, the other fields decoded
    as JSON) answers as the two steps, whatever the event holds around the row."""
    value_decoder = codecs.value_decoder(s)
    shape = compile_shaper(s, s.column_names)
    fused = row_decoder(s, s.column_names, value_decoder, shape)
    assert fused.__code__.co_filename.startswith("<json row")
    general = two_steps(value_decoder, shape)
    key = tuple("k" if t.kind == "string" else 1 for t in s.key_types)
    names = [*s.column_names, "other"]
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5),
                        st.floats(), st.sampled_from([2**31, 2**63, -(2**63) - 1]))
    values = st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)),
        max_leaves=6)
    typed_rows = st.fixed_dictionaries({c.name: st.one_of(st.none(), _value_for(c.type))
                                        for c in s.columns})
    rows = st.one_of(st.none(), values, st.dictionaries(st.sampled_from(names), values),
                     typed_rows, typed_rows)
    plain = {"before": rows, "ts_ms": scalars,
             "source": st.one_of(values, st.just({"db": "x", "lsn": 1})),
             "transaction": st.none()}
    ops = st.sampled_from(["c", "u", "r", "d", "t", None, 1])
    clean = st.fixed_dictionaries({"op": st.sampled_from(["c", "u", "r", "c", "d", "t"]),
                                   "after": typed_rows}, optional=plain)
    event = st.one_of(clean, clean, st.fixed_dictionaries({"op": ops}, optional={
        **plain, "after": rows, "payload": scalars, "schema": scalars, "extra": scalars}))
    as_text = event.map(lambda o: json.dumps(o, ensure_ascii=False).encode("utf-8",
                                                                           "surrogatepass"))
    poisoned = st.tuples(as_text, st.sampled_from(POISON)).map(
        lambda tp: tp[0][:-1] + b', "source": ' + tp[1] + b"}")

    @FUZZ
    @given(st.one_of(as_text, as_text, as_text, poisoned, st.binary(max_size=20),
                     poison_json(names),
                     st.sampled_from([b"null", b'{"op": "d"}', b'{"op": "c", "after": {}}',
                                      b'{"op": "c", "after": {"id": 1}, "source": "\xff"}'])))
    def run(b: bytes) -> None:
        typed_path_on(fused)
        assert outcome(fused, b, key) == outcome(general, b, key)
        typed[0] += fused.__globals__["_counts"][0]

    typed = [0]
    run()
    assert typed[0] > 20  # the typed path answered for many of the events

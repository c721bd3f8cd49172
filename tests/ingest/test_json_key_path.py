"""A table's composite JSON key of string, int and long columns goes a typed msgspec path
(`materializer.ingest.keypath`) that gives exactly what decode + encode give: the same key
tuple and stored bytes, the same rejection (message and reason) through the general path
for anything it does not take. Property tests over key-shaped and broken JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from materializer.formats import codecs
from materializer.ingest.jsonrow import MISSES_TO_STOP
from materializer.ingest.keypath import general_key_path, key_path
from materializer.store.keys import KeyCodec
from tests.formats.test_fuzz_decoders import FUZZ, POISON, spec
from tests.ingest.test_fast_paths import outcome

SPECS = [spec({"region": "string", "id": "long", "v": "string"}, ["region", "id"], "json",
              "json"),
         spec({"id": "int", "region": "string", "v": "string"}, ["id", "region"], "json",
              "json"),
         spec({"a": "long", "b": "int", "c": "string", "v": "double"}, ["a", "b", "c"], "json",
              "json")]

EDGE_VALUES = [0, -1, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63 - 1, 2**63, -(2**63),
               -(2**63) - 1, 10**30, 1.0, -0.0, 1e300, True, False, None, "", "a\x00b", "é",
               "x" * 300, "😀" * 130, [], {}, [1], {"id": 1}]
RAW_EDGES = [b"", b"null", b"1", b'"k"', b"[]", b"{}", b'{"region": "eu", "id": 1}x',
             b'\xef\xbb\xbf{"region": "eu", "id": 1}', b'{"region": "\xff", "id": 1}',
             b'{"region": "\\ud800", "id": 1}', b'{"region": "eu", "id": 1e2}',
             b'{"region": "eu", "id": 01}', b'{"region": "eu", "id": 1, "id": "x"}',
             b'{"region": "eu", "id": "x", "id": 1}', b'{"region": "eu", "id": 1, "id": null}',
             b' {"region" : "eu" , "id" : 7 } ', *POISON]


def _key_objects(names: list[str]) -> st.SearchStrategy[bytes]:
    """JSON objects of the key columns (some missing, extra, given twice, null, of
    another type), sometimes in Connect's wrapper."""
    value = st.one_of(st.sampled_from(EDGE_VALUES), st.integers(), st.text(max_size=8))
    members = st.lists(st.tuples(st.sampled_from([*names, "other", "payload"]), value),
                       max_size=len(names) + 2)
    exact = st.fixed_dictionaries({n: value for n in names}).map(lambda d: list(d.items()))
    obj = st.one_of(exact, members).map(
        lambda kv: "{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in kv) + "}")
    wrapped = obj.map(lambda o: '{"schema": {"type": "struct", "fields": []}, "payload": '
                      + o + "}")
    return st.one_of(obj, wrapped).map(lambda t: t.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize("s", SPECS, ids=["string-long", "int-string", "long-int-string"])
def test_json_object_key_path_equals_decode_and_encode(s: Any) -> None:
    dec = codecs.key_decoder(s)
    codec = KeyCodec(s.key_types)
    general = general_key_path(dec, codec)
    names = list(s.key_columns)

    @FUZZ
    @given(st.one_of(_key_objects(names), st.sampled_from(RAW_EDGES), st.binary(max_size=20)))
    def run(b: bytes) -> None:
        fast = key_path(s, dec, codec)  # a fresh one: misses never turn the typed path off
        assert outcome(fast, b) == outcome(general, b)

    run()


def test_json_object_key_is_read_without_the_general_decoder() -> None:
    s = SPECS[0]
    codec = KeyCodec(s.key_types)

    def refuse(b: bytes) -> tuple[Any, ...]:
        raise AssertionError("the general decoder was called")

    fast = key_path(s, refuse, codec)
    assert fast(b'{"id": 7, "region": "eu-west"}') == (("eu-west", 7),
                                                       codec.encode(("eu-west", 7)))


def test_json_object_key_path_gives_up_for_keys_that_keep_missing() -> None:
    s = SPECS[0]
    dec = codecs.key_decoder(s)
    calls = [0]

    def counted(b: bytes) -> tuple[Any, ...]:
        calls[0] += 1
        return dec(b)

    fast = key_path(s, counted, KeyCodec(s.key_types))
    wrapped = json.dumps({"schema": {"type": "struct", "fields": [
        {"field": "region", "type": "string"}, {"field": "id", "type": "int64"}]},
        "payload": {"region": "eu", "id": 1}}).encode()
    for _ in range(MISSES_TO_STOP):
        assert fast(wrapped)[0] == ("eu", 1)
    assert calls[0] == MISSES_TO_STOP
    assert fast(b'{"region": "eu", "id": 2}')[0] == ("eu", 2)
    assert calls[0] == MISSES_TO_STOP + 1  # off: every key now takes the general path

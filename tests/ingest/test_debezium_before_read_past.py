"""A Debezium JSON event's `before` image is read past by the generated decoder
(`materializer.ingest.jsonrow`): checked as JSON and as UTF-8 without being built, it
answers as the two steps answer for any `before`, poison included (invalid UTF-8, an
encoded surrogate, a lone surrogate escape, NaN, nesting past what can be read)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from materializer.formats import codecs
from materializer.ingest.jsonrow import row_decoder, two_steps
from materializer.ingest.shaper import compile_shaper
from tests.formats.test_fuzz_decoders import FUZZ, POISON
from tests.ingest.test_fast_paths import DEBEZIUM_SPECS, outcome, typed_path_on

BEFORE_POISON = [*POISON, b'"\xff"', b'{"s": "\xc3"}', b'["\xed\xa0\x80"]', b'"\xc0\xaf"',
                 b'{"s": "caf\xc3\xa9"}', b'"\xf0\x9f\x98\x80"', b"[" * 3000 + b"]" * 3000,
                 b"[" * 100 + b"]" * 100, b'{"a": 1, "a": 2}', b"[1,]", b"Infinity",
                 b'"\\ud800\\u0041"', b'"\\ud83d\\ude00"', b"1e999", b"-0", b'"\\u0000"']


def _decoders(s: Any) -> tuple[Any, Any]:
    value_decoder = codecs.value_decoder(s)
    shape = compile_shaper(s, s.column_names)
    return row_decoder(s, s.column_names, value_decoder, shape), two_steps(value_decoder, shape)


@pytest.mark.parametrize("s", DEBEZIUM_SPECS, ids=["all-types", "typed"])
def test_any_before_answers_as_the_two_steps(s: Any) -> None:
    fused, general = _decoders(s)
    key = tuple("k" if t.kind == "string" else 1 for t in s.key_types)
    after = {c.name: None for c in s.columns if c.name not in s.key_columns}
    text = st.text(max_size=6).map(lambda t: json.dumps(t, ensure_ascii=False).encode(
        "utf-8", "surrogatepass"))
    before = st.one_of(st.sampled_from(BEFORE_POISON), text,
                       st.binary(max_size=8).map(lambda b: b'"' + b.replace(b'"', b"") + b'"'))

    @FUZZ
    @given(before, st.sampled_from(["c", "u", "d", "r"]))
    def run(b: bytes, op: str) -> None:
        typed_path_on(fused)
        event = (b'{"op": "' + op.encode() + b'", "before": ' + b + b', "after": '
                 + json.dumps(after).encode() + b"}")
        assert outcome(fused, event, key) == outcome(general, event, key)

    run()


def test_before_is_not_built() -> None:
    fused, _ = _decoders(DEBEZIUM_SPECS[1])
    event = fused.__globals__["_decode"](b'{"op": "u", "before": {"id": 1, "s": "x"}, '
                                         b'"after": {"id": 1, "s": "y"}}')
    assert isinstance(event.before, msgspec.Raw)
    assert fused(b'{"op": "u", "before": {"id": 1, "s": "x"}, "after": {"id": 1, "s": "y"}}',
                 (1,))[1] == "y"
    assert fused.__globals__["_counts"] == [1, 0]  # the typed path took it

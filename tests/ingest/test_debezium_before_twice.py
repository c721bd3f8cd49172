"""The generated Debezium JSON decoder (`materializer.ingest.jsonrow`) reads `before` past
as `msgspec.Raw`; it must still answer as the two steps do for what only json's reading of
it refuses: invalid UTF-8 in a `before` given twice (msgspec keeps the last one, the first
was never checked as UTF-8; json refuses the bytes) and an integer of more digits than
`sys.get_int_max_str_digits()` (msgspec reads it past, json's `int` raises). Without the
check, an event json refuses was applied (a row, or a delete)."""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.formats.test_fuzz_decoders import FUZZ
from tests.ingest.test_debezium_before_read_past import _decoders
from tests.ingest.test_fast_paths import DEBEZIUM_SPECS, outcome, typed_path_on

SPEC = DEBEZIUM_SPECS[1]  # id long, s string not null, ...
AFTER = b'{"id": 1, "s": "x"}'


def _event(op: bytes, *befores: bytes, names: tuple[bytes, ...] = ()) -> bytes:
    fields = [b'"' + (names[i] if i < len(names) else b"before") + b'": ' + b
              for i, b in enumerate(befores)]
    after = b"null" if op == b"d" else AFTER
    return b'{"op": "' + op + b'", ' + b", ".join(fields) + b', "after": ' + after + b"}"


def _same(event: bytes) -> tuple[str, Any]:
    fused, general = _decoders(SPEC)
    typed_path_on(fused)
    got, want = outcome(fused, event, (1,)), outcome(general, event, (1,))
    assert got == want, event[:80]
    return got


@pytest.mark.parametrize("op", [b"u", b"d"])
@pytest.mark.parametrize("poison", [b'"\xff"', b'{"s": "caf\xc3"}', b'["\xc0\xaf"]'])
def test_a_before_given_twice_with_invalid_utf8_answers_as_the_two_steps(
        op: bytes, poison: bytes) -> None:
    assert _same(_event(op, poison, b"null"))[0] == "error"
    # msgspec matches an escaped name to the field too
    assert _same(_event(op, poison, b"null", names=(b"b\\u0065fore",)))[0] == "error"
    assert _same(_event(op, b"null", poison))[0] == "error"


@pytest.mark.parametrize("op", [b"u", b"d"])
def test_a_before_with_an_integer_json_refuses_answers_as_the_two_steps(op: bytes) -> None:
    limit = sys.get_int_max_str_digits()
    long = b"7" * (limit + 1)
    for before in (long, b"-" + long, b'{"n": [' + long + b"]}"):
        assert _same(_event(op, before))[0] == "error"
        assert _same(_event(op, before, b"null"))[0] == "error"
    # as many digits as json reads, a float, text: read, as json reads them
    for before in (b"7" * limit, long + b".5", long + b"e3", b'"' + long + b'"'):
        assert _same(_event(op, before))[0] == "ok"


def test_a_lowered_digit_limit_is_the_one_checked() -> None:
    limit = sys.get_int_max_str_digits()
    try:
        sys.set_int_max_str_digits(640)
        assert _same(_event(b"u", b"9" * 641))[0] == "error"
        assert _same(_event(b"u", b"9" * 640))[0] == "ok"
        sys.set_int_max_str_digits(0)  # no limit: json reads any integer
        assert _same(_event(b"u", b"9" * 10_000))[0] == "ok"
    finally:
        sys.set_int_max_str_digits(limit)


def test_the_digit_run_check_is_a_search_for_the_run() -> None:
    from materializer.ingest.jsonrow import _holds_long_integer

    chunk = st.one_of(st.integers(0, 40).map(lambda n: b"5" * n),
                      st.sampled_from([b"", b" ", b'"', b"-", b".", b"x", b"\xff", b"[1,"]))

    @FUZZ
    @given(st.lists(chunk, max_size=12), st.integers(1, 30))
    def run(parts: list[bytes], limit: int) -> None:
        b = b"".join(parts)
        want = re.search(rb"[0-9]{%d}" % (limit + 1), b) is not None
        assert _holds_long_integer(b, limit) == want

    run()

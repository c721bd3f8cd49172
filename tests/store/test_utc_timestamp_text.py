"""Timestamp text in UTC as JavaScript's toISOString writes it (`2024-03-05T10:11:12.123Z`)
is read by a shortcut in `temporal_values.to_timestamp` that gives what the full path
gives: the same microseconds, and for text that is no timestamp (a 30th of February, hour
24, a leap second, year 0) the same error, message included."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from materializer import temporal_values
from materializer.temporal_values import to_timestamp
from tests.formats.test_fuzz_decoders import FUZZ


def _outcome(v: str) -> tuple[str, Any]:
    try:
        return "ok", to_timestamp(v)
    except (TypeError, ValueError) as e:
        return type(e).__name__, str(e)


def _digits(n: int) -> st.SearchStrategy[str]:
    return st.integers(0, 10**n - 1).map(lambda i: f"{i:0{n}d}")


def _near(n: int, lo: int, hi: int) -> st.SearchStrategy[str]:
    """n-digit numbers, mostly in lo..hi (valid), some anywhere."""
    return st.one_of(st.integers(lo, hi).map(lambda i: f"{i:0{n}d}"), _digits(n))


UTC_TEXT = st.builds(
    lambda y, mo, d, h, mi, s, frac, tail: f"{y}-{mo}-{d}T{h}:{mi}:{s}{frac}{tail}",
    st.one_of(_near(4, 1970, 2100), st.sampled_from(["0000", "0001", "9999"])),
    _near(2, 1, 12), _near(2, 1, 31), _near(2, 0, 23), _near(2, 0, 59), _near(2, 0, 60),
    st.one_of(st.just(""), st.integers(1, 12).flatmap(_digits).map(lambda f: "." + f)),
    st.sampled_from(["Z", "Z", "z", "+00:00", "", "ZZ"]))


@FUZZ
@given(UTC_TEXT)
@example("2024-02-30T00:00:00Z")
@example("2024-01-01T24:00:00Z")
@example("2016-12-31T23:59:60Z")
@example("0000-01-01T00:00:00Z")
@example("0001-01-01T00:00:00Z")
@example("9999-12-31T23:59:59.9999999Z")
@example("2024-03-05T10:11:12.123456789Z")
def test_utc_text_shortcut_equals_the_full_path(text: str) -> None:
    fast = _outcome(text)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(temporal_values, "_UTC_TEXT", lambda v: None)
        assert _outcome(text) == fast


def test_utc_text_takes_the_shortcut(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(v: str) -> None:
        raise AssertionError("the full path was taken")

    monkeypatch.setattr(temporal_values, "_ISO_TIMESTAMP", refuse)
    assert to_timestamp("1970-01-01T00:00:01.5Z") == 1_500_000
    assert to_timestamp("2024-03-05T10:11:12.123Z") == 1_709_633_472_123_000

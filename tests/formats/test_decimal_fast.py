"""The decimal converter's shortcut for text that is already in stored form
(`decimals.canonical_decimal_text`) answers exactly what the full conversion
(`decimals.exact_decimal`) answers."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from materializer.decimals import canonical_decimal_text, decimal_converter, exact_decimal

SHAPES = st.tuples(st.integers(1, 38), st.integers(0, 38)).map(
    lambda ps: (ps[0], min(ps[0], ps[1])))
DIGITS = st.text("0123456789", max_size=40)


@st.composite
def decimal_texts(draw: st.DrawFn) -> str:
    """Texts near the canonical form: signs, leading zeros, any number of digits on
    either side of the point, exponents, blanks."""
    sign = draw(st.sampled_from(["", "-", "+"]))
    whole = draw(DIGITS)
    point = draw(st.sampled_from([".", "", "."]))
    frac = draw(DIGITS)
    tail = draw(st.sampled_from(["", "", "", "e2", "E-8", " ", "\n"]))
    return sign + whole + point + frac + tail


def outcome(conv: Any, text: str) -> tuple[str, str]:
    try:
        return "ok", conv(text)
    except (TypeError, ValueError, ArithmeticError) as e:
        return "error", type(e).__name__


@given(SHAPES, decimal_texts())
def test_the_shortcut_answers_as_the_full_conversion(shape: tuple[int, int], text: str
                                                     ) -> None:
    precision, scale = shape
    fast = decimal_converter(precision, scale)
    full = exact_decimal(precision, scale)
    assert outcome(fast, text) == outcome(full, text)


@given(SHAPES, st.integers(-(10**38), 10**38), st.integers(0, 38))
def test_canonical_texts_round_trip(shape: tuple[int, int], unscaled: int, at: int) -> None:
    """Texts the shortcut takes are stored unchanged; the others go the full way."""
    precision, scale = shape
    sign = "-" if unscaled < 0 else ""
    digits = str(abs(unscaled)).rjust(at + 1, "0")
    text = sign + (digits[:-at] + "." + digits[-at:] if at else digits)
    full = exact_decimal(precision, scale)
    expected = outcome(full, text)
    if canonical_decimal_text(precision, scale).fullmatch(text):
        assert expected == ("ok", text)
    assert outcome(decimal_converter(precision, scale), text) == expected


def test_known_cases() -> None:
    conv = decimal_converter(12, 2)
    assert conv("1234.56") == "1234.56"
    assert conv("-0.00") == "0.00"  # no negative zero
    assert conv("007.50") == "7.50"
    assert canonical_decimal_text(8, 8).fullmatch("0.00000001") is None  # Decimal: 1E-8
    assert decimal_converter(8, 8)("0.00000001") == "1E-8"
    assert canonical_decimal_text(12, 2).fullmatch("1234.5") is None

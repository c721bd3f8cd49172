"""Decimal values: input (numbers, decimal text, Connect's base64 unscaled integers) to
the stored form, the decimal's text at its scale, exactly.

`decimal_converter` is what `materializer.values.to_storage` uses for a decimal column:
`exact_decimal` (the full conversion, in a context as wide as the declared precision),
with a shortcut for text that is already in stored form (`canonical_decimal_text`),
which is returned as it is; tests/formats/test_decimal_fast.py compares the two.
"""

from __future__ import annotations

import base64
import decimal
import re
from collections.abc import Callable
from typing import Any

from materializer.cautions import Caution

Converter = Callable[[Any], Any]


def scaled(unscaled: int, scale: int) -> decimal.Decimal:
    """unscaled * 10**-scale, exactly (whatever the decimal context's precision); a
    negative scale (Java's BigDecimal has them: Protobuf and Connect decimals) multiplies."""
    return decimal.Decimal(f"{unscaled}E{-scale}")


def scaled_text(unscaled: int, scale: int) -> str:
    """unscaled * 10**-scale as plain decimal text (no exponent), exactly: the same value
    as `scaled`, in the form a decimal column's converter takes as it is when the scale
    is the column's and the value fits (`canonical_decimal_text`), without a Decimal."""
    if scale <= 0:
        return str(unscaled * 10 ** -scale)
    digits = str(-unscaled if unscaled < 0 else unscaled).rjust(scale + 1, "0")
    return f"{'-' if unscaled < 0 else ''}{digits[:-scale]}.{digits[-scale:]}"


def _from_base64(v: Any, scale: int) -> decimal.Decimal:
    """A decimal's two's-complement big-endian unscaled integer, in base64 text or bytes
    (Connect's Decimal; Debezium decimal.handling.mode=precise)."""
    raw = v
    if isinstance(v, str):
        try:
            raw = base64.b64decode(v, validate=True)
        except ValueError as e:  # binascii.Error
            shown = v if len(v) <= 40 else v[:40] + "..."
            raise ValueError(f"{shown!r} is not base64 (the column's encoding: base64)"
                             ) from e
    if not raw:
        raise ValueError("empty base64: no unscaled integer (the column's encoding: base64)")
    return scaled(int.from_bytes(raw, "big", signed=True), scale)


_DECIMAL_TEXT = re.compile(
    r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    r"|(?i:[+-]?(?:inf|infinity|s?nan[0-9]*))")  # not finite: refused as not fitting
"""The decimal text `exact_decimal` reads: plain ASCII (sign, digits, point, exponent).
Python's Decimal also reads blanks around it, `_` between digits ("1_000" is 1000) and
non-ASCII digits: guesses, refused."""

_DOUBLE_DIGITS = 15
"""Significant decimal digits a double always holds exactly (DBL_DIG)."""


def canonical_decimal_text(precision: int, scale: int) -> re.Pattern[str]:
    """The decimal texts that are already their own stored form at decimal(precision,
    scale): plain digits, exactly `scale` of them after the point, at most precision -
    scale before it and no leading zero, not a negative zero, and printed by Decimal
    without an exponent (a value below 1 only at a scale of 6 or less). For these the
    converter's answer is the text itself (tests/formats/test_decimal_fast.py)."""
    whole = precision - scale
    ints = [] if scale > 6 else ["0"]  # below 1 at a larger scale, Decimal prints 1E-7
    if whole > 0:
        ints.append(f"[1-9][0-9]{{0,{whole - 1}}}")
    if not ints:
        return re.compile(r"(?!)")  # decimal(p,p) with p > 6: no text is taken as it is
    frac = rf"\.[0-9]{{{scale}}}" if scale else ""
    negative_zero = r"-0(?:\.0*)?\Z"
    return re.compile(rf"(?!{negative_zero})-?(?:{'|'.join(ints)}){frac}", re.ASCII)


def exact_decimal(precision: int, scale: int, base64_text: bool = False,
                  unrounded: bool = False, rounded: Caution | None = None) -> Converter:
    """Numbers and decimal text (or, with `base64_text`, base64 text and bytes of the
    unscaled integer, never decimal text) to the decimal's text at `scale`, exactly:
    rounding (half-even) happens only to the scale, in a context as wide as the declared
    precision (Python's default context has 28 digits), so a decimal(38,s) keeps all 38.
    A value whose integer part has more than precision - scale digits does not fit
    (ValueError, before any arithmetic on it). With `unrounded` (a key column), neither
    does a value with more decimal places than the scale (other than zeros): keys of the
    topic that round alike would share one row. Otherwise `rounded`, if given, is told of
    each value that had more decimal places than the scale (other than zeros)."""
    quantum = decimal.Decimal(1).scaleb(-scale)
    limit = decimal.Decimal(10) ** (precision - scale)
    whole_digits = precision - scale
    exact = decimal.Context(prec=precision + 2, rounding=decimal.ROUND_HALF_EVEN,
                            Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN,
                            traps=[decimal.InvalidOperation])
    construct = decimal.Decimal
    plain_text = _DECIMAL_TEXT.fullmatch

    def conv(v: Any) -> Any:
        if base64_text and isinstance(v, str | bytes | bytearray):
            v = _from_base64(v, scale)
        if isinstance(v, bool) or not isinstance(v, decimal.Decimal | int | float | str):
            raise TypeError(f"expected a decimal, got {type(v).__name__}")
        if isinstance(v, str) and plain_text(v) is None:
            raise ValueError(f"{_shown(v)} is not a decimal (plain decimal text: digits, "
                             "a point, an exponent; no blanks or '_')")
        try:
            d = construct(str(v) if isinstance(v, float) else v)  # exact, no context
        except decimal.InvalidOperation as e:
            raise ValueError(f"{_shown(v)} is not a decimal") from e
        if not d.is_finite() or (d and d.adjusted() >= whole_digits):
            raise ValueError(f"{_shown(v)} does not fit decimal({precision},{scale})")
        if type(v) is float and d and d.adjusted() + 1 + scale > _DOUBLE_DIGITS:
            raise ValueError(
                f"{v!r} came as a double (a JSON number, an Avro float or double), which "
                f"holds {_DOUBLE_DIGITS} significant digits exactly, and decimal("
                f"{precision},{scale}) needs {d.adjusted() + 1 + scale} here: digits may "
                "have been lost before it was read; send it as a string or a "
                "Connect/Avro decimal")
        q = d.quantize(quantum, context=exact)
        if q.copy_abs() >= limit:  # rounded up to the next power of ten (copy_abs is
            # exact: abs() rounds to the default context's 28 digits, 10**38 - 1 to 1E+38)
            raise ValueError(f"{_shown(v)} does not fit decimal({precision},{scale})")
        if unrounded and q != d:  # Decimal comparison is exact
            raise ValueError(f"{_shown(v)} has more decimal places than decimal({precision},"
                             f"{scale}) keeps: as a key it would share a row with the keys "
                             "it rounds to")
        if rounded is not None and q != d:
            rounded(lambda: f"{_shown(v)} has more decimal places than decimal({precision},"
                    f"{scale}) keeps: stored rounded half-even as {q} (and so are later "
                    "such values; declare a larger scale to keep them)")
        return str(q) if q else str(q.copy_abs())  # no negative zero (-0.001 -> 0.00)

    return conv


def _shown(v: Any) -> str:
    """A value for an error message, cut to 60 characters."""
    text = repr(v) if isinstance(v, str) else str(v)
    return text if len(text) <= 60 else text[:57] + "..."


def decimal_converter(precision: int, scale: int, base64_text: bool = False,
                      unrounded: bool = False, rounded: Caution | None = None
                      ) -> Converter:
    """The stored form of a decimal(precision, scale) column's values: `exact_decimal`, and
    for a text column first the shortcut for text already in stored form."""
    exact = exact_decimal(precision, scale, base64_text, unrounded, rounded)
    if base64_text:
        return exact
    canonical = canonical_decimal_text(precision, scale).fullmatch

    def conv(v: Any) -> Any:
        if type(v) is str and canonical(v) is not None:
            return v
        return exact(v)
    return conv


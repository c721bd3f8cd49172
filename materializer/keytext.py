"""Key values written as text (`materializer get`/`scan` arguments and HTTP path segments):
one rule for both, typed by the key columns. The text `null` is the string "null"."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from materializer.columns import ColumnType
from materializer.errors import UsageError

#
# One rule for the text of a key value, whoever reads it: the CLI (`get`, `scan
# --prefix`) and the HTTP API (path segments, `prefix=`) accept the same texts and
# give the same values and the same errors.

TextConverter = Callable[[str], Any]
KeyTextParser = Callable[[Sequence[str]], tuple[Any, ...]]
_INT_TEXT = re.compile(r"-?[0-9]+")
_INT_DIGITS = 20  # significant digits of the largest 64-bit integer (and one more)
_FLOAT_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?")
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SHOWN = 40  # characters of an offending text quoted in an error


def _int_text(s: str) -> int:
    """A decimal integer, leading zeros and all (`01`, `-007`); one with more significant
    digits than any 64-bit integer is out of range, said so (never "not an integer", nor
    Python's limit on digits read)."""
    if not _INT_TEXT.fullmatch(s):
        raise ValueError("expected an integer")
    if len(s.lstrip("-").lstrip("0")) > _INT_DIGITS:
        raise ValueError("out of range for a 64-bit integer")
    return int(s)


def _float_text(s: str) -> float:
    """A float/double key's text: a decimal number that is a double exactly, or the
    shortest text that reads back as one (what Python's repr and JSON encoders print:
    "0.1"). Others would be rounded to a neighbouring key (an integer past 2**53, a
    nonzero number that underflows to 0, one beyond the range, digits past a double's
    shortest text): ValueError, as a JSON key that is not exactly a double is refused."""
    if not _FLOAT_TEXT.fullmatch(s):
        raise ValueError("expected a decimal number")
    f = float(s)
    if repr(f) == s:  # "1.5", "0.1", "-0.0": the common case, no Decimal
        return f
    if not math.isfinite(f):
        raise ValueError("beyond the range of a double")
    d = Decimal(s)  # exact, whatever the length: comparisons below are exact too
    if d == Decimal(f) or d == Decimal(repr(f)):  # "1e3", "0.10", "-0", "5."
        return f
    raise ValueError(f"not exactly a double: it would be read as {f!r} (give a double's "
                     "exact value or its shortest text)")


def _decimal_text(s: str) -> str:
    """A decimal key's text: plain ASCII decimal text (sign, digits, point, exponent),
    checked again and converted by the column's own converter. Whitespace, `_` and
    non-ASCII digits, which Python's Decimal would read, are refused as int keys' are."""
    if not _DECIMAL_TEXT.fullmatch(s):
        raise ValueError("expected a decimal number")
    return s


def _bool_text(s: str) -> bool:
    if s == "true":
        return True
    if s == "false":
        return False
    raise ValueError("expected true or false")


def _as_text(s: str) -> str:
    return s


_ISO_EXAMPLE = {"date": "2024-05-01", "time": "12:30:00", "timestamp": "2024-05-01T12:30:00Z"}


def _iso_text(kind: str) -> TextConverter:
    """A date, time or timestamp key's text as it is (the store's converters read the ISO
    8601 text), refusing a number that no ISO basic form has the digits of (epoch days,
    seconds or milliseconds are no key text: `20240501` and `123000` are ISO) with a
    message saying what to write, not the ISO parser's ("month must be in 1..12")."""
    example = _ISO_EXAMPLE[kind]

    def check(s: str) -> str:
        digits = s.lstrip("+-")
        if digits.isdigit() and (digits != s or len(digits) not in (2, 4, 6, 8)):
            raise ValueError(f"a {kind} key is ISO 8601 text (e.g. {example}), not a number")
        return s
    return check


def text_converter(t: ColumnType) -> TextConverter:
    """How the text of one key value becomes a key component of type `t`.

    int/long: a decimal integer (`-?[0-9]+`); float/double: a decimal number
    (no `nan`, `inf` or hex) that is a double exactly or the shortest text of one
    (`_float_text`); decimal: plain ASCII decimal text; boolean: `true` or `false`;
    every other type (string, uuid, date, time, timestamp, bytes as standard base64 or in
    the column's declared `encoding`: hex, base64-url-safe), and decimal text, as it is,
    checked and converted by the store's own key converters
    (`materializer.values.key_storage` of the key types `columns.key_unit` gives).
    No text stands for null: `null` in a string column is the string "null".
    Raises ValueError for a text that does not fit.
    """
    if t.kind in ("int", "long"):
        return _int_text
    if t.kind in ("float", "double"):
        return _float_text
    if t.kind == "boolean":
        return _bool_text
    if t.kind == "decimal" and t.encoding != "base64":  # base64: base64 text, as values
        return _decimal_text
    if t.kind in _ISO_EXAMPLE:
        return _iso_text(t.kind)
    return _as_text


def key_text_parser(columns: Sequence[str], types: Sequence[ColumnType]) -> KeyTextParser:
    """`key_from_text` for fixed key columns, with the converters chosen once.

    The parser takes the texts of a full key or of a prefix (the leading columns) and
    returns the key components in order; UsageError naming the column (and quoting the
    text) for one that does not fit, or when there are more texts than columns.
    """
    cols = tuple(columns)
    convs = tuple(text_converter(t) for t in types)
    if len(cols) != len(convs):
        raise ValueError(f"{len(cols)} key column name(s) for {len(convs)} type(s)")

    def parse(texts: Sequence[str]) -> tuple[Any, ...]:
        if len(texts) > len(convs):
            raise UsageError(f"the key ({', '.join(cols)}) has {len(convs)} value(s), "
                             f"got {len(texts)}")
        out = []
        for col, conv, s in zip(cols, convs, texts, strict=False):
            try:
                out.append(conv(s))
            except ValueError as e:
                shown = s if len(s) <= _SHOWN else s[:_SHOWN] + "..."
                raise UsageError(f"key column {col!r}: {e}, got {shown!r}") from None
        return tuple(out)

    return parse


def key_from_text(columns: Sequence[str], types: Sequence[ColumnType],
                  texts: Sequence[str]) -> tuple[Any, ...]:
    """Key components (a full key or a leading prefix) from their texts, typed by the key
    columns `columns` of types `types` (see `text_converter`); UsageError if one does not
    fit. The CLI and the HTTP API both read key text through this rule."""
    return key_text_parser(columns, types)(texts)

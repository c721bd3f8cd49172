"""JSON read from a record: what `json.loads` gives, minus what no reader could serve.

Every JSON decoder (keys, values, the Kafka Connect wrapper, Debezium JSON and the
JSON text of Debezium `Json` fields) reads through here. `loads` returns what
`json.loads` returns and raises RecordError with one of these reasons:

  malformed_json  not JSON (json.loads says why)
  too_deep        nested so deep that the parser gives up (about 1000 levels): the
                  C scanner's RecursionError. (A json column's value may nest at
                  most MAX_DEPTH levels: its converter refuses more as too_deep.)
  bad_unicode     a string, anywhere (values, object keys, fields no column reads),
                  holding a lone UTF-16 surrogate: a `\\ud800`-style escape without
                  its pair, or bytes json decodes leniently (UTF-8 with encoded
                  surrogates, UTF-16/32). Such a string is not Unicode text: stored,
                  it could not be written as UTF-8 by any reader.

Numbers are left as json reads them (NaN, Infinity and 1e999 become float nan/inf):
whether a number fits is the column's business (`materializer.values`), and a
non-finite one fits none.

Cost on the common path: one call of msgspec's JSON decoder (a strict RFC 8259 parser
in C, about five times faster than json's scanner). It refuses everything strict JSON
does not allow (NaN and Infinity, numbers beyond a double, lone surrogates, invalid
UTF-8, a BOM), and whatever it accepts, json.loads reads as the same value (test:
tests/formats/test_jsonread_fast.py); so anything it refuses takes the json path
below, which gives the answer and the errors it always gave. On that path, strict
UTF-8 text without a backslash pays one `in` test (a memchr) beyond the parse. Text
with escapes is scanned for a surrogate escape without its pair (a regular expression;
escaped emoji, `\\ud83d\\ude00`, are pairs); only then, or when json decoded the bytes
leniently, is the decoded value written out as UTF-8 to confirm (RecordError
bad_unicode).
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec

from materializer.errors import RecordError

__all__ = ["fast_json_loads", "json_path_loads", "loads", "loads_text"]

_strict_decode = msgspec.json.Decoder().decode
_raw_decode = json.JSONDecoder().raw_decode
_json_loads = json.loads
_detect_encoding = json.detect_encoding
_to_text = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode
# JSON escapes that matter here, left to right: an escaped backslash (skipped, so the
# `u` after it is no escape), a surrogate pair (json joins it: fine), and group 1: a
# surrogate escape left alone, which json decodes to a lone surrogate
_ESCAPES = r"\\(?:\\|u[dD](?:[89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|" \
           r"([89a-fA-F][0-9a-fA-F]{2})))"
_ESCAPES_BYTES = re.compile(_ESCAPES.encode())
_ESCAPES_TEXT = re.compile(_ESCAPES)
_SURROGATE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")  # any surrogate escape: a quick test
_SURROGATE_TEXT = re.compile(r"\\u[dD][89a-fA-F]")
_TOO_DEEP = "JSON nested too deeply to read"


def _slow(data: bytes) -> tuple[Any, bool]:
    """`json.loads(data)`, and whether it decoded the bytes other than as strict UTF-8
    (it decodes UTF-8 with `surrogatepass`, and detects UTF-16/32)."""
    obj = _json_loads(data)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return obj, True
    return obj, not _detect_encoding(data).startswith("utf-8")


def fast_json_loads(data: bytes) -> Any:
    """`json.loads(data)` with the same results and errors, faster for the common case.

    UTF-8 text that starts with the value goes straight to the C scanner; anything
    else (leading whitespace, a BOM, other encodings, trailing data) takes `json.loads`.
    """
    try:
        text = data.decode("utf-8")
        obj, end = _raw_decode(text)
    except ValueError:  # UnicodeDecodeError is one
        return _json_loads(data)
    if end != len(text):  # trailing whitespace is fine; anything else raises as it does
        return _json_loads(data)
    return obj


def _lone_surrogate_escape(escapes: re.Pattern[Any], text: Any) -> bool:
    """Whether JSON text holds a surrogate escape that json leaves unpaired."""
    return any(m.group(1) is not None for m in escapes.finditer(text))


def _check_unicode(obj: Any) -> None:
    """RecordError(bad_unicode) if a string in `obj` (a key or a value) holds a lone
    surrogate: all of it written out as UTF-8, in C."""
    try:
        _to_text(obj).encode("utf-8")
    except RecursionError as e:
        raise RecordError(_TOO_DEEP, "too_deep") from e
    except UnicodeEncodeError as e:
        raise RecordError("a JSON string holds a lone UTF-16 surrogate (like \\ud800 "
                          "without its pair), which is not Unicode text", "bad_unicode"
                          ) from e


def loads(data: bytes) -> Any:
    """`json.loads(data)`; RecordError(malformed_json | too_deep | bad_unicode)."""
    try:
        return _strict_decode(data)
    except Exception:  # noqa: BLE001 - not strict JSON, or too deep: the json path decides
        return json_path_loads(data)


def json_path_loads(data: bytes) -> Any:
    """`loads` through json alone (what `loads` does with what msgspec refuses)."""
    try:
        try:
            text = data.decode("utf-8")
            obj, end = _raw_decode(text)
        except ValueError:  # not UTF-8, or not JSON from the first byte: json.loads
            obj, lenient = _slow(data)
        else:
            if end == len(text):
                if "\\" not in text:  # no escape at all: the common case ends here
                    return obj
                lenient = False
            else:
                obj, lenient = _slow(data)
    except RecursionError as e:
        raise RecordError(_TOO_DEEP, "too_deep") from e
    except ValueError as e:
        raise RecordError(f"malformed JSON: {e}", "malformed_json") from e
    if lenient or (_SURROGATE_BYTES.search(data) is not None
                   and _lone_surrogate_escape(_ESCAPES_BYTES, data)):
        _check_unicode(obj)
    return obj


def loads_text(text: str) -> Any:
    """`json.loads(text)` for JSON text carried in a record's string (Debezium's `Json`
    fields): ValueError when it is not JSON, RecordError(too_deep | bad_unicode)."""
    try:
        obj = _json_loads(text)
    except RecursionError as e:
        raise RecordError(_TOO_DEEP, "too_deep") from e
    if "\\" in text and _SURROGATE_TEXT.search(text) is not None and (
            _lone_surrogate_escape(_ESCAPES_TEXT, text)):
        _check_unicode(obj)
    return obj

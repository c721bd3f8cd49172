"""Bytes written as text: the input `encoding`s of a bytes column.

Debezium's `binary.handling.mode` writes a binary column's value as bytes (`bytes`, base64
text in JSON) or as text in one of three encodings, which no reader can tell apart (hex
`fbff0102` is also valid base64, of other bytes): a bytes column says which one its text
is in with `encoding: base64 | base64-url-safe | hex`.

Guarantees (`bytes_in`): text is read in the declared encoding only, strictly, so that one
text gives one value and any other text is refused (ValueError naming the encoding):
  base64           RFC 4648 standard alphabet with its padding (Java's
                   `Base64.getEncoder()`, Debezium's `base64`), as Python's
                   `b64decode(validate=True)` reads it;
  base64-url-safe  the URL-safe alphabet (`-` and `_`), with its padding as Java's
                   `Base64.getUrlEncoder()` writes it (Debezium's `base64-url-safe`) or
                   without any (as other producers write it); partial padding is refused;
  hex              an even number of hexadecimal digits, either case (Debezium's `hex`
                   writes lower case), nothing else (no spaces, no `0x` / `\\x`).
Both base64 forms refuse a last character with bits set that encode nothing (another
text of the same bytes). Bytes (Avro `bytes`, a Connect `bytes` field, Protobuf) are
taken as they are: the encoding is how text is read, not how binary values are.
`bytes_text` writes bytes in an encoding as Debezium would (padded base64, lower-case hex).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any

_b64encode = base64.b64encode
_b64decode = base64.b64decode
_URL_SAFE = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def canonical_base64(v: str, what: str = "a bytes column") -> bytes:
    """The bytes of standard, padded, canonical base64 text; ValueError otherwise."""
    try:
        raw = _b64decode(v, validate=True)
    except ValueError as e:
        raise ValueError(f"expected base64 text for {what}") from e
    if _b64encode(raw) != v.encode("ascii"):  # ascii: validate=True let nothing else by
        # unused bits set in the last character: other texts decode to the same bytes
        raise ValueError(f"expected canonical base64 text for {what} (the last "
                         "character has bits set that encode nothing)")
    return raw


def _from_base64(v: str) -> bytes:
    return canonical_base64(v, "a bytes column (the column's encoding: base64)")


def _from_url_safe(v: str) -> bytes:
    if not _URL_SAFE.fullmatch(v) or len(v) % 4 == 1 or ("=" in v and len(v) % 4):
        raise ValueError("expected URL-safe base64 text (A-Z a-z 0-9 - _, padded with = or "
                         "not at all) for a bytes column (the column's encoding: "
                         "base64-url-safe)")
    padded = v if "=" in v else v + "=" * (-len(v) % 4)
    raw = base64.urlsafe_b64decode(padded)
    if base64.urlsafe_b64encode(raw).decode("ascii") != padded:
        raise ValueError("expected canonical URL-safe base64 text for a bytes column: the "
                         "last character has bits set that encode nothing (the column's "
                         "encoding: base64-url-safe)")
    return raw


def _from_hex(v: str) -> bytes:
    try:
        return binascii.a2b_hex(v)  # an even number of hex digits, nothing else
    except ValueError as e:
        raise ValueError("expected hex text (an even number of digits 0-9, a-f, either "
                         "case) for a bytes column (the column's encoding: hex)") from e


_DECODERS: dict[str, Callable[[str], bytes]] = {
    "base64": _from_base64, "base64-url-safe": _from_url_safe, "hex": _from_hex}


def bytes_in(encoding: str) -> Callable[[Any], Any]:
    """The converter of a bytes column that declares `encoding` (see the module doc):
    bytes as they are, text decoded in that encoding (ValueError for text that is not),
    TypeError for anything else."""
    decode = _DECODERS[encoding]

    def conv(v: Any) -> Any:
        t = type(v)
        if t is bytes:
            return v
        if t is str:
            return decode(v)
        if isinstance(v, bytes | bytearray):
            return bytes(v)
        raise TypeError(f"expected bytes or {encoding} text, got {t.__name__}")
    return conv


def _hex_text(b: bytes) -> str:
    return b.hex()


def _url_safe_text(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode("ascii")


def _base64_text(b: bytes) -> str:
    return _b64encode(b).decode("ascii")


_ENCODERS: dict[str, Callable[[bytes], str]] = {
    "base64": _base64_text, "base64-url-safe": _url_safe_text, "hex": _hex_text}


def bytes_text(encoding: str | None) -> Callable[[bytes], str]:
    """Bytes -> their text in `encoding` (None: standard base64, how JSON carries bytes),
    which `bytes_in(encoding)` reads back to the same bytes."""
    return _ENCODERS[encoding or "base64"]

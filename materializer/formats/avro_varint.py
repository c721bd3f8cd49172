"""Avro varints read from bytes, for the generated readers (`formats.avro_compiled`), and
the refusals of those readers: bytes that end early (`Truncated`), bytes no Avro writer
writes (`Invalid`).

Guarantee: `long_rest` reads a varint of at most 10 bytes and 64 bits exactly as a plain
loop over its bytes reads it, and refuses any longer one (`Invalid`); bytes that end
before it does raise IndexError (tests/formats/test_avro_fast_reads.py).
"""

from __future__ import annotations


class Truncated(Exception):
    """The bytes end before the value does."""


class Invalid(Exception):
    """The bytes are not a value of the schema (as no Avro writer writes them)."""


def long_rest(b: bytes, p: int, n: int) -> tuple[int, int]:
    """The rest of a varint whose first byte `n` (>= 0x80) was read: (its unsigned value
    before zig-zag, the offset after it). Invalid past 10 bytes or 64 bits. Unrolled for
    the lengths timestamps and large ids take (up to 6 bytes: 41-bit epoch milliseconds);
    longer ones go on in `_long_tail`, the same loop."""
    c = b[p]
    n = (n & 0x7F) | (c & 0x7F) << 7
    if c < 0x80:
        return n, p + 1
    c = b[p + 1]
    n |= (c & 0x7F) << 14
    if c < 0x80:
        return n, p + 2
    c = b[p + 2]
    n |= (c & 0x7F) << 21
    if c < 0x80:
        return n, p + 3
    c = b[p + 3]
    n |= (c & 0x7F) << 28
    if c < 0x80:
        return n, p + 4
    c = b[p + 4]
    n |= (c & 0x7F) << 35
    if c < 0x80:
        return n, p + 5
    return _long_tail(b, p + 5, n)


def _long_tail(b: bytes, p: int, n: int) -> tuple[int, int]:
    """`long_rest` from the varint's 7th byte on (42 bits read)."""
    shift = 42
    while True:
        c = b[p]
        p += 1
        n |= (c & 0x7F) << shift
        if c < 0x80:
            break
        shift += 7
        if shift > 63:
            raise Invalid("varint longer than 10 bytes")
    if n >> 64:
        raise Invalid("varint beyond 64 bits")
    return n, p

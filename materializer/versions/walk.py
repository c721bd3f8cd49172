"""Walking two sorted (key, value) sequences together: the pairs that differ, in key order.

`differing(a, b)` is the whole of a keyed diff's I/O loop. Both inputs are in strictly
increasing key order (an LMDB cursor is); it yields `(key, value in a or None, value in
b or None)` for every key whose value differs or that only one side holds, and nothing
for keys equal on both sides.

It compares in windows: a window of `a` equal to the aligned window of `b` is passed
over by one list comparison in C, and only a window that differs is looked into, with
`map(operator.ne, ...)` (also C) to find where. So unchanged rows cost a few tens of
nanoseconds each and the Python-level work is proportional to the changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from operator import ne

Pair = tuple[bytes, bytes]
Diff = tuple[bytes, bytes | None, bytes | None]

FETCH = 16384
"""Items taken from each input at a time."""
WINDOW = 128
"""Items compared at a time; a change that shifts the alignment costs at most this."""


def differing(a: Iterable[Pair], b: Iterable[Pair]) -> Iterator[Diff]:
    """(key, a's value or None, b's value or None) for every key not equal in both."""
    ia, ib = iter(a), iter(b)
    bufa: list[Pair] = list(islice(ia, FETCH))
    bufb: list[Pair] = list(islice(ib, FETCH))
    i = j = 0
    while True:
        if i == len(bufa):
            bufa, i = list(islice(ia, FETCH)), 0
            if not bufa:
                break
        if j == len(bufb):
            bufb, j = list(islice(ib, FETCH)), 0
            if not bufb:
                break
        n = min(len(bufa) - i, len(bufb) - j, WINDOW)
        wa = bufa[i:i + n]
        wb = bufb[j:j + n]
        if wa == wb:
            i += n
            j += n
            continue
        flags = list(map(ne, wa, wb))
        pos = 0
        while True:
            try:
                at = flags.index(True, pos)
            except ValueError:  # the rest of the window is equal
                i += n
                j += n
                break
            ka, va = wa[at]
            kb, vb = wb[at]
            if ka == kb:  # same key, another value: the alignment holds
                yield ka, va, vb
                pos = at + 1
                continue
            i += at  # a key only one side holds: the rest of the window is misaligned
            j += at
            if ka < kb:
                yield ka, va, None
                i += 1
            else:
                yield kb, None, vb
                j += 1
            break
    for k, v in bufa[i:]:
        yield k, v, None
    for k, v in ia:
        yield k, v, None
    for k, v in bufb[j:]:
        yield k, None, v
    for k, v in ib:
        yield k, None, v

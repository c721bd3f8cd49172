"""Checks of lookup arguments shared by the local views (`Store`) and the cluster client
(`Client`), so both refuse the same mistakes with the same words: a `limit` that is not a
whole number of at least 1, and one key given to `get_many` where a list of keys goes."""

from __future__ import annotations

from typing import Any

from materializer.errors import UsageError


def check_limit(limit: Any, what: str, hint: str = "") -> None:
    """UsageError unless `limit` is a whole number (an int, not a bool) of at least 1."""
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise UsageError(f"limit {limit!r} is not a whole number: ask for a number of "
                         f"{what}s" + (f" ({hint})" if hint else ""))
    if limit < 1:
        raise UsageError(f"limit {limit!r} is below 1: ask for at least one {what}"
                         + (f" ({hint})" if hint else ""))


def refuse_one_key(keys: Any) -> None:
    """UsageError for `get_many("ab")`: a string (or bytes) is one key, which iterated would
    be read as the keys "a" and "b" and answer their rows."""
    if isinstance(keys, str | bytes | bytearray):
        raise UsageError(f"get_many takes a list of keys, got the one key {keys!r}: use "
                         "get(key), or get_many([key])")

"""Cautions: a value its column keeps, but not quite as the record carried it (a decimal
rounded to the column's scale, an integer timestamp that looks like seconds read as
milliseconds). The record is applied; the worker says so in a warning naming the table,
the column and the first such value, once per column and process, so the declaration
can be fixed (a larger scale, `encoding: s`).

A converter is given a `Caution` and calls it with a function that builds the message,
so a record that needs none costs no text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

Caution = Callable[[Callable[[], str]], None]

log = logging.getLogger("materializer.values")

_warned: set[tuple[str, str]] = set()


def warn_once(table: str, column: str) -> Caution:
    """A `Caution` logging its first message for `table`'s `column` (once per process)."""
    def caution(message: Callable[[], str]) -> None:
        if (table, column) in _warned:
            return
        _warned.add((table, column))
        log.warning("table %s column %r: %s (logged once per column)", table, column,
                    message())
    return caution

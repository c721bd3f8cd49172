"""The applied change of one table row: what a change event says (SPEC §5)."""

from __future__ import annotations

from typing import Any, NamedTuple


class Change(NamedTuple):
    """One applied change of a table row, in stored form (see `materializer.values`)."""

    op: str  # "c", "u" or "d"
    partition: int
    offset: int
    timestamp_ms: int
    key: tuple[Any, ...]
    before: tuple[Any, ...] | None
    after: tuple[Any, ...] | None

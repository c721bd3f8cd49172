"""The event time of stream events: the Kafka record's timestamp, or the row's timestamp
column (ksqlDB TIMESTAMP, YAML `timestamp_column`) when the stream declares one.

Stream events are stored with their event time and read newest first by it (then by
offset). With a timestamp column, an event whose row has it null, or that has no row (a
null value), keeps the record's timestamp.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from materializer.specs import RelationSpec

Event = tuple[bytes, int, int, "tuple[Any, ...] | None"]
"""(encoded key, offset, event time in ms, stored row or None)."""


def event_times(spec: RelationSpec, layout: Sequence[str]
                ) -> Callable[[list[Event]], list[Event]] | None:
    """A rewrite of a batch's events that takes each event's time from its row, or None
    when the record timestamps stand (no timestamp column)."""
    found = spec.event_time_slot(layout)
    if found is None:
        return None
    slot, per_ms = found

    def retime(events: list[Event]) -> list[Event]:
        out: list[Event] = []
        for kb, offset, ts, row in events:
            v = None if row is None else row[slot]
            out.append((kb, offset, ts if v is None else int(v) // per_ms, row))
        return out
    return retime

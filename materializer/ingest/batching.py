"""A polled batch sorted for applying: records by topic and partition (offset order
kept), and the partition ends the poll reached (`connectors.kafka.Polled`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def split_ends(ends: Mapping[tuple[str, int], int] | None) -> dict[str, dict[int, int]]:
    """A poll's partition ends (connectors.kafka.Polled) as topic -> partition -> offset."""
    out: dict[str, dict[int, int]] = {}
    for (topic, p), offset in (ends or {}).items():
        out.setdefault(topic, {})[p] = offset
    return out


def split_by_partition(msgs: list[Any], also: Iterable[str] = ()
                       ) -> dict[str, dict[int, list[Any]]]:
    """A polled batch as topic -> partition -> records (offset order kept); topics in
    `also` (whose partition ends were reached) are there even without records."""
    by_tp: dict[str, dict[int, list[Any]]] = {t: {} for t in also}
    for m in msgs:
        parts = by_tp.get(m.topic())
        if parts is None:
            parts = by_tp[m.topic()] = {}
        lst = parts.get(m.partition())
        if lst is None:
            parts[m.partition()] = [m]
        else:
            lst.append(m)
    return by_tp

"""A table replaying its topic without change events after `on_reset: rebuild` stages its
snapshot (`op: r`) once every partition it holds reached the end seen when the replay began
(`materializer.ingest.resync.replayed_to_start_end`). A second reset during that replay (the
topic deleted and created again once more) starts the replay over: the end to reach is the
new topic's, seen from then on, not the one the first replay recorded. Before, the target of
the first replay stayed (the relation owed the snapshot already, so nothing reset it): with a
lower one, the snapshot was staged part-way through the new replay and the rest of it went
out as c/u/d events, history re-announced, which the replay is there to avoid."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from materializer.ingest.relation import open_relation
from materializer.ingest.resets import rebuild_in_place
from materializer.ingest.resync import PendingSnapshots
from tests.support.changes import table

SPEC = table(columns={"id": "long", "name": "string"})


class EndsSource:
    """What `replayed_to_start_end` reads of a source: its partitions and their ends."""

    def __init__(self) -> None:
        self.assigned = {(SPEC.topic, 0)}
        self.end = 0

    def end_offset(self, topic: str, partition: int) -> int | None:
        return self.end


def test_a_second_reset_mid_replay_waits_for_the_new_topics_end(tmp_path: Path) -> None:
    rel = open_relation(SPEC, tmp_path)
    rel.outbox = object()  # type: ignore[assignment]  # a table with its change events on
    staged: list[dict[int, int]] = []
    pending = PendingSnapshots(lambda r: None)
    pending._snapshot = lambda r: staged.append(dict(r.next_offsets))  # type: ignore[method-assign]
    pending.add(rel)  # the first reset: replayed silently from here on
    assert pending.silent(rel) and rel.outbox is None
    source = EndsSource()
    feeds: Any = [(source, [rel])]

    source.end = 10  # the end when the first replay began
    rel.next_offsets = {0: 4}
    pending.settle(feeds)
    assert staged == []

    catalog: Any = SimpleNamespace(store_path=tmp_path, map_size=1 << 30)
    rebuild_in_place(rel, None, catalog, None, pending, [])  # the topic recreated again
    assert rel.next_offsets == {}
    source.end = 100  # the new topic's end when its replay began
    pending.settle(feeds)
    rel.next_offsets = {0: 10}  # part-way through the new topic
    pending.settle(feeds)
    assert staged == [], "the snapshot was staged before the new topic's start end"
    rel.next_offsets = {0: 100}
    pending.settle(feeds)
    assert staged == [{0: 100}]


def test_a_reset_while_an_older_stores_debt_keeps_events_replays_silently(
        tmp_path: Path) -> None:
    """State of an older materializer owes a snapshot while its events go on (`keep_events`:
    its records are new changes, `ingest.announced`); its topic reset meanwhile replays from
    the beginning, history: without events, as any replay after a reset, then the snapshot.
    Before, the relation owing already, nothing changed: the replay went out as c/u/d."""
    rel = open_relation(SPEC, tmp_path)
    rel.outbox = SimpleNamespace(drain=lambda: None)  # type: ignore[assignment]
    pending = PendingSnapshots(lambda r: None)
    pending.add(rel, keep_events=True)
    assert pending.owes(rel) and not pending.silent(rel) and rel.outbox is not None

    catalog: Any = SimpleNamespace(store_path=tmp_path, map_size=1 << 30)
    rebuild_in_place(rel, None, catalog, None, pending, [])  # the topic recreated
    assert pending.owes(rel) and pending.silent(rel) and rel.outbox is None
    assert rel.writer.snapshot_due() and not rel.writer.snapshot_due_keeps_events()

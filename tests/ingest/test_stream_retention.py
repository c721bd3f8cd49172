"""A stream's retention (`max_events_per_key`) holds for every key, not only those appended
to since it was declared: lowering it trims the keys no record touches any more at the next
start. Real relation files, no broker."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from materializer.ingest.relation import open_relation
from materializer.specs import StreamSpec
from materializer.store import Store
from materializer.versions.take import take_snapshot
from tests.support.api import SpecWriter, columns

S = StreamSpec(name="public.s", topic="s", columns=columns({"k": "int", "n": "long"}),
               key_columns=("k",), max_events_per_key=100)


def ns(store: Store, key: int | None, as_of: str | None = None) -> list[int]:
    return sorted(e["n"] for e in store.stream("s", as_of=as_of).events(key, 1000) if e)


def fill(data: Path) -> SpecWriter:
    w = SpecWriter(str(data), S)
    for p in (0, 1):
        w.write([(k, {"n": 100 * p + 10 * (k or 0) + i}) for k in (1, 2, None) for i in range(6)],
                partition=p)
    return w


def reopen(data: Path, keep: int, offsets: dict[int, int]) -> SpecWriter:
    w = SpecWriter(str(data), dataclasses.replace(S, max_events_per_key=keep))
    w.offsets = dict(offsets)
    return w


def test_a_lowered_retention_trims_every_key_of_every_partition(tmp_path: Path) -> None:
    data = tmp_path / "data"
    w = fill(data)
    with Store.open(data) as store:
        assert len(ns(store, 1)) == 12
    w = reopen(data, 2, w.offsets)
    w.write([(2, {"n": 999})], partition=0)  # only key 2 of partition 0 gets a record
    with Store.open(data) as store:
        # per partition the 2 newest
        assert ns(store, 1) == [14, 15, 114, 115]
        assert ns(store, None) == [4, 5, 104, 105]
        assert ns(store, 2) == [25, 124, 125, 999]
        assert len(store.stream("s").scan()) == 12
    take_snapshot(data, "A")
    with Store.open(data) as store:
        assert ns(store, 1, "A") == [14, 15, 114, 115]


def test_raised_then_lowered_again_trims_again(tmp_path: Path) -> None:
    data = tmp_path / "data"
    w = fill(data)
    w = reopen(data, 2, w.offsets)
    w = reopen(data, 5, w.offsets)  # raised: nothing to trim, the next records are kept
    w.write([(1, {"n": 50 + i}) for i in range(3)], partition=0)
    with Store.open(data) as store:
        assert ns(store, 1) == [14, 15, 50, 51, 52, 114, 115]
    reopen(data, 3, w.offsets)
    with Store.open(data) as store:
        assert ns(store, 1) == [50, 51, 52, 114, 115]


def test_state_without_a_recorded_retention_is_trimmed_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    w = fill(data)
    with w.writer.env.begin(write=True) as txn:  # as state written before it was recorded
        txn.delete(b"max_events_per_key", db=w.writer._meta_db)
    rel = open_relation(dataclasses.replace(S, max_events_per_key=4), data)
    with Store.open(data) as store:
        assert ns(store, 2) == [22, 23, 24, 25, 122, 123, 124, 125]
    assert rel.writer.apply_retention(4) == 0  # recorded: the next start trims nothing

"""A full LMDB map met while a batch records its next offsets or counters (probe h83).

`WriteBatch.set_next_offset` and `add_counter` wrote without `translated`, so a map that
filled up on those writes (rather than on the rows) raised py-lmdb's own MapFullError:
`Relation.apply` did not take it for `MapFull`, never grew the map, and the worker died
with a traceback telling the user to pass `Environment(map_size=)`, below its ceiling.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from materializer.errors import StoreError
from materializer.ingest.relation import open_relation
from materializer.store import writer as store_writer
from materializer.store.batch import MapFull
from tests.support.api import USERS


@pytest.fixture(autouse=True)
def _small_maps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_writer, "INITIAL_MAP_SIZE", 64 << 10)


def test_a_batch_whose_offsets_fill_the_map_grows_it(tmp_path: Path) -> None:
    rel = open_relation(USERS, tmp_path, map_size=64 << 20)
    ends = {p: 5 for p in range(600)}  # one next offset per partition: meta pages only
    rel.apply({}, ends=ends)
    assert rel.writer.env.info()["map_size"] > 64 << 10
    assert rel.writer.next_offsets() == ends


def test_offsets_and_counters_on_a_full_map_are_map_full(tmp_path: Path) -> None:
    rel = open_relation(USERS, tmp_path, map_size=64 << 10)
    with pytest.raises(MapFull, match="store.map_size"), rel.writer.begin() as wb:
        for p in range(100_000):
            wb.set_next_offset(p, 1)
    with pytest.raises(MapFull, match="store.map_size"), rel.writer.begin() as wb:
        for p in range(100_000):
            wb.add_counter(p, "applied", 1)


def test_offsets_past_the_ceiling_name_the_setting(tmp_path: Path) -> None:
    rel = open_relation(USERS, tmp_path, map_size=64 << 10)
    with pytest.raises(StoreError, match=r"ceiling of 65,536 bytes .* raise `store.map_size`"):
        rel.apply({}, ends={p: 5 for p in range(2000)})

"""A stream's scan says which partition each event is in: one key's events at one offset
may be in two partitions (a key is not bound to a partition), and only the partition tells
them apart. Real relation files, no broker."""

from __future__ import annotations

from pathlib import Path

from materializer.specs import StreamSpec
from materializer.store import Store
from tests.support.api import SpecWriter, columns

S = StreamSpec(name="public.s", topic="s", columns=columns({"k": "int", "n": "long"}),
               key_columns=("k",))


def test_scan_names_the_partition_of_every_event(tmp_path: Path) -> None:
    w = SpecWriter(str(tmp_path), S)
    w.write([(1, {"n": 1}), (None, {"n": 2})], partition=0)
    w.write([(1, {"n": 1}), (None, None)], partition=1)
    with Store.open(tmp_path) as store:
        s = store.stream("s")
        assert [(e["key"], e["partition"], e["offset"], e["value"]) for e in s.scan()] == [
            ([None], 0, 1, {"k": None, "n": 2}), ([None], 1, 1, None),
            ([1], 0, 0, {"k": 1, "n": 1}), ([1], 1, 0, {"k": 1, "n": 1})]
        assert [(e["partition"], e["offset"]) for e in s.scan(prefix=(1,), limit=1)] == [(0, 0)]
        assert [e["partition"] for e in s.scan(limit=3, json_form=True)] == [0, 1, 0]

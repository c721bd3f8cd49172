"""A partition's end reached by the consumer moves the next offset up to it (`Relation.apply`
with `ends`), past what no record stands for (a transaction's commit marker), in the
batch's own transaction; without a broker."""

from __future__ import annotations

from pathlib import Path

from materializer.store import RelationWriter, Store
from materializer.testing import FakeRecord
from tests.ingest.test_apply_rules import table


def stored_next_offsets(data_dir: Path, relation: str) -> dict[int, int]:
    with Store(data_dir) as store:
        return store.relation(relation).next_offsets()


def test_an_end_past_the_last_record_is_the_next_offset(tmp_path: Path) -> None:
    h = table(tmp_path)
    out = h.rel.apply({0: [FakeRecord(b"1", b'{"name": "a"}', 0),
                           FakeRecord(b"2", b'{"name": "b"}', 1)]}, ends={0: 3})
    assert out[0].next_offset == 3 and out[0].applied == 2
    assert h.rel.next_offsets == {0: 3} == stored_next_offsets(tmp_path, "users")
    assert [r["id"] for r in h.rows()] == [1, 2]


def test_an_end_alone_moves_a_partition_without_records(tmp_path: Path) -> None:
    h = table(tmp_path)
    h.rel.apply({0: [FakeRecord(b"1", b'{"name": "a"}', 0)]})
    out = h.rel.apply({}, ends={0: 2, 1: 1})  # 1 in partition 0 and 0 in partition 1: markers
    assert {p: o.next_offset for p, o in out.items()} == {0: 2, 1: 1}
    assert stored_next_offsets(tmp_path, "users") == {0: 2, 1: 1}


def test_an_end_at_or_below_the_next_offset_writes_nothing(tmp_path: Path) -> None:
    h = table(tmp_path)
    h.rel.apply({0: [FakeRecord(b"1", b'{"name": "a"}', 0)]})
    writer: RelationWriter = h.rel.writer
    before = writer.env.info()["last_txnid"]
    assert h.rel.apply({}, ends={0: 1}) == {} and h.rel.apply({}, ends={0: 0}) == {}
    assert writer.env.info()["last_txnid"] == before  # not even an empty transaction
    assert stored_next_offsets(tmp_path, "users") == {0: 1}


def test_a_record_that_stops_the_partition_keeps_it_there(tmp_path: Path) -> None:
    h = table(tmp_path, "on_error='fail'")
    out = h.rel.apply({0: [FakeRecord(b"1", b'{"name": "a"}', 0),
                           FakeRecord(b"2", b"not json", 1)]}, ends={0: 3})
    assert out[0].fatal is not None and out[0].next_offset == 1
    assert stored_next_offsets(tmp_path, "users") == {0: 1}

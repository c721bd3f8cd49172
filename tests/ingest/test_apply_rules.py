"""Merge rules of `materializer.ingest.apply` (SPEC §2, §4) on real LMDB, without a broker."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from materializer.catalog.ddl import parse_ddl
from materializer.formats.codecs import key_decoder, value_decoder
from materializer.ingest.apply import PartitionOutcome, TableApplier
from materializer.ingest.relation import Relation, open_relation
from materializer.specs import StreamSpec, TableSpec
from materializer.store import RelationWriter, Store
from materializer.testing import FakeRecord


def enc(obj: Any) -> bytes | None:
    return None if obj is None else json.dumps(obj).encode()


@dataclass
class Harness:
    """One relation on a fresh store: feed records, read rows back through `Store`."""

    data_dir: Path
    spec: TableSpec | StreamSpec
    rel: Relation = field(init=False)
    offsets: Iterator[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.rel = open_relation(self.spec, self.data_dir, map_size=1 << 24)

    @property
    def writer(self) -> RelationWriter:
        return self.rel.writer

    def recs(self, *pairs: tuple[Any, Any]) -> list[FakeRecord]:
        """Records at the next offsets from (key, value) pairs given as JSON-able objects."""
        out = []
        for k, v in pairs:
            off = next(self.offsets)
            out.append(FakeRecord(enc(k), enc(v), off, 1000 + off))
        return out

    def apply(self, records: Sequence[FakeRecord], partition: int = 0, start: int = 0
              ) -> PartitionOutcome:
        self.rel.next_offsets[partition] = start
        return self.rel.apply({partition: records})[partition]

    def feed(self, *pairs: tuple[Any, Any]) -> PartitionOutcome:
        return self.apply(self.recs(*pairs))

    def get(self, key: Any) -> dict[str, Any] | None:
        with Store(self.data_dir) as store:
            return store.table(self.spec.name).get(key)

    def rows(self) -> list[dict[str, Any]]:
        with Store(self.data_dir) as store:
            return store.table(self.spec.name).scan()

    def events(self, key: Any, limit: int = 100) -> list[dict[str, Any] | None]:
        with Store(self.data_dir) as store:
            return store.stream(self.spec.name).events(key, limit)


def spec_of(sql: str) -> TableSpec | StreamSpec:
    (spec,) = parse_ddl(sql)
    return spec


def table(tmp_path: Path, with_: str = "", cols: str = "name STRING, age BIGINT") -> Harness:
    sql = (f"CREATE TABLE users (id INT PRIMARY KEY, {cols}) "
           f"WITH (kafka_topic='users', key_format='JSON'{', ' + with_ if with_ else ''})")
    return Harness(tmp_path, spec_of(sql))


CHANGES = "changes_topic='users.changes'"


# ----------------------------------------------------------------------------- overwrite


def test_overwrite_replaces_the_row_and_emits_c_then_u(tmp_path: Path) -> None:
    h = table(tmp_path, CHANGES)
    out = h.feed((1, {"name": "Ann", "age": 30}), (2, {"name": "Bob"}))
    assert [c.op for c in out.changes] == ["c", "c"] and out.applied == 2
    out = h.feed((1, {"name": "Ann", "age": 31}))
    (ch,) = out.changes
    assert (ch.op, ch.key, ch.before, ch.after) == ("u", (1,), (1, "Ann", 30), (1, "Ann", 31))
    assert (ch.partition, ch.offset, ch.timestamp_ms) == (0, 2, 1002)
    assert h.get(1) == {"id": 1, "name": "Ann", "age": 31}
    assert h.get(2) == {"id": 2, "name": "Bob", "age": None}


def test_key_columns_come_from_the_key_not_the_value(tmp_path: Path) -> None:
    h = table(tmp_path)
    h.feed((1, {"id": 99, "name": "Ann"}))
    assert h.get(1) == {"id": 1, "name": "Ann", "age": None}
    assert h.get(99) is None


def test_an_unchanged_row_is_silent(tmp_path: Path) -> None:
    h = table(tmp_path, CHANGES)
    h.feed((1, {"name": "Ann"}))
    out = h.feed((1, {"name": "Ann"}))
    assert out.changes == [] and out.applied == 0


def test_later_records_in_a_batch_see_earlier_ones(tmp_path: Path) -> None:
    h = table(tmp_path, CHANGES)
    out = h.feed((1, {"name": "a"}), (1, {"name": "b"}), (1, None), (1, {"name": "c"}))
    assert [(c.op, c.before, c.after) for c in out.changes] == [
        ("c", None, (1, "a", None)), ("u", (1, "a", None), (1, "b", None)),
        ("d", (1, "b", None), None), ("c", None, (1, "c", None))]
    assert h.get(1) == {"id": 1, "name": "c", "age": None}


# ----------------------------------------------------------------------------- tombstones


def test_tombstone_deletes_the_row_and_emits_d(tmp_path: Path) -> None:
    h = table(tmp_path, CHANGES)
    h.feed((1, {"name": "Ann", "age": 3}))
    out = h.feed((1, None))
    (ch,) = out.changes
    assert (ch.op, ch.before, ch.after) == ("d", (1, "Ann", 3), None)
    assert h.get(1) is None and h.rows() == []


def test_delete_of_an_absent_key_changes_nothing(tmp_path: Path) -> None:
    h = table(tmp_path, CHANGES)
    h.feed((1, {"name": "Ann"}))
    out = h.feed((7, None))
    assert out.changes == [] and out.applied == 0 and out.rejected == []
    assert out.next_offset == 2
    assert [r["id"] for r in h.rows()] == [1]


def test_debezium_delete_is_a_tombstone(tmp_path: Path) -> None:
    pytest.importorskip("materializer.formats.avro")
    h = Harness(tmp_path, spec_of(
        "CREATE TABLE t (id INT PRIMARY KEY, v STRING) "
        "WITH (kafka_topic='t', key_format='JSON', value_format='debezium-json', "
        "changes_topic='c')"))
    out = h.feed((1, {"op": "c", "before": None, "after": {"id": 1, "v": "x"}}),
                 (1, {"op": "d", "before": {"id": 1, "v": "x"}, "after": None}))
    assert [c.op for c in out.changes] == ["c", "d"]
    assert h.get(1) is None


# ----------------------------------------------------------------------------- ignore


def test_ignore_keeps_the_first_row_until_it_is_deleted(tmp_path: Path) -> None:
    h = table(tmp_path, f"on_existing='ignore', {CHANGES}")
    h.feed((1, {"name": "first"}))
    out = h.feed((1, {"name": "second"}))
    assert out.changes == [] and h.get(1) == {"id": 1, "name": "first", "age": None}
    out = h.feed((1, None), (1, {"name": "third"}), (1, {"name": "fourth"}))
    assert [c.op for c in out.changes] == ["d", "c"]
    assert h.get(1) == {"id": 1, "name": "third", "age": None}


# ----------------------------------------------------------------------------- versioned


def versioned(tmp_path: Path, extra: str = "") -> Harness:
    return table(tmp_path, f"on_existing='versioned', version_column='v', {CHANGES}{extra}",
                 cols="name STRING, v BIGINT")


def test_versioned_greater_wins_smaller_is_ignored(tmp_path: Path) -> None:
    h = versioned(tmp_path)
    h.feed((1, {"name": "v5", "v": 5}))
    out = h.feed((1, {"name": "v3", "v": 3}))
    assert out.changes == [] and h.get(1) == {"id": 1, "name": "v5", "v": 5}
    out = h.feed((1, {"name": "v9", "v": 9}))
    assert [c.op for c in out.changes] == ["u"] and h.get(1) == {"id": 1, "name": "v9", "v": 9}


def test_versioned_tie_wins(tmp_path: Path) -> None:
    h = versioned(tmp_path)
    h.feed((1, {"name": "a", "v": 5}))
    out = h.feed((1, {"name": "b", "v": 5}))
    assert [c.op for c in out.changes] == ["u"]
    assert h.get(1) == {"id": 1, "name": "b", "v": 5}


def test_versioned_null_version_is_rejected(tmp_path: Path) -> None:
    h = versioned(tmp_path, ", on_error='skip'")
    out = h.feed((1, {"name": "no version"}), (2, {"name": "ok", "v": 1}),
                 (2, {"name": "later, no version", "v": None}))
    assert [(r.offset, r.reason, r.policy) for r in out.rejected] == [
        (0, "null_version", "skip"), (2, "null_version", "skip")]
    assert h.get(1) is None and h.get(2) == {"id": 2, "name": "ok", "v": 1}
    assert out.next_offset == 3


def test_versioned_null_version_under_fail_stops_at_the_record(tmp_path: Path) -> None:
    h = versioned(tmp_path)
    out = h.feed((1, {"name": "a", "v": 1}), (2, {"name": "b"}), (3, {"name": "c", "v": 1}))
    assert out.fatal is not None and out.fatal.offset == 1
    assert out.next_offset == 1
    assert h.get(1) is not None and h.get(3) is None


# ----------------------------------------------------------------------------- partial


def partial(tmp_path: Path) -> Harness:
    return table(tmp_path, f"partial_update='name', {CHANGES}",
                 cols="name STRING, age BIGINT, email STRING")


def test_partial_update_of_a_new_key_leaves_the_other_columns_null(tmp_path: Path) -> None:
    h = partial(tmp_path)
    h.feed((1, {"name": "Ann", "age": 30, "email": "a@x"}))
    assert h.get(1) == {"id": 1, "name": "Ann", "age": None, "email": None}


def test_partial_update_keeps_the_stored_columns(tmp_path: Path) -> None:
    h = partial(tmp_path)
    spec = h.spec
    # seed a full row as another writer of the same table would
    assert isinstance(spec, TableSpec)
    full = TableApplier(replace(spec, partial_update=None), spec.column_names,
                        key_decoder(spec), value_decoder(spec))
    with h.writer.begin() as wb:
        full.apply(wb.partition(0), 0, h.recs((1, {"name": "Ann", "age": 30, "email": "a@x"})))
    out = h.feed((1, {"name": "Anna", "age": 99}))
    (ch,) = out.changes
    assert (ch.op, ch.before, ch.after) == ("u", (1, "Ann", 30, "a@x"), (1, "Anna", 30, "a@x"))
    assert h.get(1) == {"id": 1, "name": "Anna", "age": 30, "email": "a@x"}


def test_partial_update_after_a_delete_is_a_new_key(tmp_path: Path) -> None:
    h = partial(tmp_path)
    h.feed((1, {"name": "Ann"}))
    out = h.feed((1, None), (1, {"name": "Again", "age": 5}))
    assert [c.op for c in out.changes] == ["d", "c"]
    assert h.get(1) == {"id": 1, "name": "Again", "age": None, "email": None}


# ----------------------------------------------------------------------------- soft key


def test_soft_primary_key_writes_blind(tmp_path: Path) -> None:
    h = table(tmp_path, "soft_primary_key=true")
    assert h.rel.applier.blind  # type: ignore[union-attr]
    out = h.feed((1, {"name": "a"}), (1, {"name": "b"}), (2, {"name": "c"}), (3, None))
    assert out.changes == [] and out.applied == 4  # no read, so the absent delete counts too
    assert [r["name"] for r in h.rows()] == ["b", "c"]


# ----------------------------------------------------------------------------- replays


def test_replaying_from_the_stored_offset_changes_nothing(tmp_path: Path) -> None:
    h = table(tmp_path, CHANGES)
    recs = h.recs((1, {"name": "a"}), (2, {"name": "b"}), (1, {"name": "c"}), (2, None))
    first = h.apply(recs)
    before = h.rows()
    (start,) = h.writer.next_offsets().values()  # what the worker resumes from
    again = h.apply(recs, start=start)
    assert [c.op for c in first.changes] == ["c", "c", "u", "d"]
    assert again.changes == [] and again.applied == 0 and h.rows() == before
    assert again.next_offset == first.next_offset == start == 4


def test_reapplying_the_latest_records_is_silent(tmp_path: Path) -> None:
    h = table(tmp_path, CHANGES)
    recs = h.recs((1, {"name": "a", "age": 1}), (2, {"name": "b"}), (3, None))
    h.apply(recs)
    before = h.rows()
    again = h.apply(recs)  # e.g. redelivered after a crash between commit and emit
    assert again.changes == [] and again.applied == 0 and h.rows() == before


def test_records_below_the_start_offset_are_passed_over(tmp_path: Path) -> None:
    h = table(tmp_path, CHANGES)
    recs = h.recs((1, {"name": "a"}), (1, {"name": "b"}), (2, {"name": "c"}))
    out = h.apply(recs, start=2)
    assert [(c.op, c.key) for c in out.changes] == [("c", (2,))]
    assert h.get(1) is None and out.next_offset == 3


# ----------------------------------------------------------------------------- null keys


@pytest.mark.parametrize("policy", ["drop", "dead_letter"])
def test_null_keys_are_rejected_by_policy(tmp_path: Path, policy: str) -> None:
    dlt = ", dead_letter_topic='dlq'" if policy == "dead_letter" else ""
    h = table(tmp_path, f"null_key='{policy}'{dlt}")
    out = h.feed((None, {"name": "no key"}), (1, {"name": "ok"}))
    (r,) = out.rejected
    assert (r.offset, r.reason, r.policy, r.key, r.value) == (
        0, "null_key", policy, None, b'{"name": "no key"}')
    assert out.applied == 1 and out.next_offset == 2
    out = h.apply([FakeRecord(b"null", enc({"name": "x"}), next(h.offsets))])  # a JSON null key
    assert [(r.reason, r.policy, r.key) for r in out.rejected] == [("null_key", policy, b"null")]
    assert len(h.rows()) == 1


def test_null_key_under_fail_stops(tmp_path: Path) -> None:
    h = table(tmp_path, "null_key='fail'")
    out = h.feed((1, {"name": "a"}), (None, {"name": "b"}), (3, {"name": "c"}))
    assert out.fatal is not None and out.fatal.reason == "null_key" and out.fatal.offset == 1
    assert out.next_offset == 1 and [r["id"] for r in h.rows()] == [1]


def test_a_null_column_of_a_composite_key_is_a_null_key(tmp_path: Path) -> None:
    h = Harness(tmp_path, spec_of("CREATE TABLE o (c INT, id INT, v STRING, "
                                  "PRIMARY KEY (c, id)) WITH (kafka_topic='o', "
                                  "key_format='JSON')"))
    out = h.feed(({"c": 1, "id": None}, {"v": "x"}), ({"c": None, "id": 1}, {"v": "y"}),
                 ({"c": 1, "id": 2}, {"v": "z"}))
    assert [r.reason for r in out.rejected] == ["null_key", "null_key"]
    assert h.get((1, 2)) == {"c": 1, "id": 2, "v": "z"}


def test_a_bad_value_is_routed_by_on_error(tmp_path: Path) -> None:
    h = table(tmp_path, "on_error='skip'")
    recs = [FakeRecord(b"1", b"{not json", 0), FakeRecord(b"2", enc({"age": "old"}), 1),
            FakeRecord(b"3", enc({"name": "ok"}), 2)]
    out = h.apply(recs)
    assert [(r.offset, r.reason) for r in out.rejected] == [(0, "malformed_json"),
                                                            (1, "type_mismatch")]
    assert [r["id"] for r in h.rows()] == [3]


# ----------------------------------------------------------------------------- streams


def stream(tmp_path: Path, with_: str = "") -> Harness:
    return Harness(tmp_path, spec_of(
        "CREATE STREAM clicks (user_id STRING KEY, url STRING) "
        f"WITH (kafka_topic='clicks', key_format='string'{', ' + with_ if with_ else ''})"))


def srecs(h: Harness, *pairs: tuple[str | None, Any]) -> list[FakeRecord]:
    out = []
    for k, v in pairs:
        off = next(h.offsets)
        out.append(FakeRecord(None if k is None else k.encode(), enc(v), off, 1000 + off))
    return out


def test_stream_events_newest_first(tmp_path: Path) -> None:
    h = stream(tmp_path)
    out = h.apply(srecs(h, ("u1", {"url": "/a"}), ("u2", {"url": "/x"}), ("u1", {"url": "/b"})))
    assert out.applied == 3 and out.next_offset == 3
    h.apply(srecs(h, ("u1", {"url": "/c"})))
    assert [e and e["url"] for e in h.events("u1")] == ["/c", "/b", "/a"]
    assert [e and e["url"] for e in h.events("u1", limit=2)] == ["/c", "/b"]
    assert h.events("u2") == [{"user_id": "u2", "url": "/x"}]
    assert h.events("nobody") == []


def test_stream_keeps_null_keys_and_tombstones(tmp_path: Path) -> None:
    h = stream(tmp_path)
    out = h.apply(srecs(h, (None, {"url": "/anon"}), ("u1", {"url": "/a"}), ("u1", None)))
    assert out.rejected == [] and out.applied == 3
    assert h.events("u1") == [None, {"user_id": "u1", "url": "/a"}]
    assert h.events(None) == [{"user_id": None, "url": "/anon"}]


def test_a_not_null_stream_key_column_refuses_a_null_key(tmp_path: Path) -> None:
    """A stream key column declared NOT NULL stored null-key events with NULL in it (the
    row, `GET /tables` and every read then contradicted the declaration): such a record is
    a bad record (`null_key`, routed by `on_error`); a nullable key column keeps them."""
    h = Harness(tmp_path, spec_of(
        "CREATE STREAM clicks (user_id STRING NOT NULL KEY, region STRING KEY, url STRING) "
        "WITH (kafka_topic='clicks', key_format='json', on_error='skip')"))
    recs = [FakeRecord(None, enc({"url": "/none"}), 0, 1000),
            FakeRecord(b"null", enc({"url": "/null"}), 1, 1001),
            FakeRecord(enc({"user_id": None, "region": "eu"}), enc({"url": "/field"}), 2, 1002),
            FakeRecord(enc({"user_id": "u1", "region": None}), enc({"url": "/ok"}), 3, 1003)]
    out = h.apply(recs)
    assert [(r.offset, r.reason) for r in out.rejected] == [(0, "null_key"), (1, "null_key"),
                                                            (2, "null_key")]
    assert out.applied == 1 and out.next_offset == 4
    assert h.events(("u1", None)) == [{"user_id": "u1", "region": None, "url": "/ok"}]
    assert h.events((None, None)) == [] and h.events((None, "eu")) == []
    # under `fail` (the default) the worker stops naming the policy a stream has: on_error
    from materializer.ingest.worker import fatal_message

    strict = Harness(tmp_path / "strict", replace(h.spec, on_error="fail"))
    out = strict.apply([FakeRecord(None, enc({"url": "/none"}), 0, 1000)])
    assert out.fatal is not None and out.fatal.reason == "null_key"
    assert "(policy on_error: fail;" in fatal_message(strict.rel, out.fatal)


def test_stream_trims_to_max_events_per_key(tmp_path: Path) -> None:
    h = stream(tmp_path, "max_events_per_key=3")
    h.apply(srecs(h, *[("u1", {"url": f"/{i}"}) for i in range(5)], ("u2", {"url": "/z"})))
    assert [e and e["url"] for e in h.events("u1")] == ["/4", "/3", "/2"]
    h.apply(srecs(h, ("u1", {"url": "/5"})))
    assert [e and e["url"] for e in h.events("u1")] == ["/5", "/4", "/3"]
    assert len(h.events("u2")) == 1
    with Store(tmp_path) as store:
        (stats,) = store.stream("public.clicks").partition_stats()
    assert stats["rows"] == 4  # 3 events of u1 + 1 of u2


def test_stream_replay_is_idempotent(tmp_path: Path) -> None:
    h = stream(tmp_path)
    recs = srecs(h, ("u1", {"url": "/a"}), ("u1", {"url": "/b"}))
    h.apply(recs)
    h.apply(recs)
    assert [e and e["url"] for e in h.events("u1")] == ["/b", "/a"]

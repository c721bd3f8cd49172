"""Batches of a store shared by worker processes (`run --processes N`) are decided on the
committed rows before the write transaction (ingest.relation `_stage_on_committed`). The
outcome must equal deciding inside the transaction, and a partition another process wrote
in between must be decided again inside it: nothing applied twice, before images exact."""

from __future__ import annotations

import json
import marshal
import random
from pathlib import Path
from typing import Any

import pytest

from connectors.producer import Sink
from materializer.changes.outbox import OUTBOX_DB, ChangeOutbox
from materializer.ingest.relation import Relation, open_relation
from materializer.store import Store
from materializer.testing import FakeRecord
from tests.support.changes import table

SPEC = table(columns={"id": "long", "n": "long"})


def _relation(store: Path, shared: bool) -> Relation:
    rel = open_relation(SPEC, store, map_size=1 << 24)
    rel.shared = shared
    rel.outbox = ChangeOutbox(SPEC, rel.writer, rel.applier.layout,  # type: ignore[union-attr]
                              Sink({"bootstrap.servers": "127.0.0.1:9"}, {"log_level": 0}), 2,
                              shared=shared, drains=False)
    return rel


def _records(rng: random.Random, start: int, n: int) -> list[FakeRecord]:
    out = []
    for off in range(start, start + n):
        k = str(rng.randrange(6)).encode()
        v = None if rng.random() < 0.2 else json.dumps({"n": rng.randrange(3)}).encode()
        out.append(FakeRecord(k, v, off))
    return out


def _events(rel: Relation) -> list[tuple[int, str, Any, Any]]:
    """The outbox's events in key order: (offset, op, before, after)."""
    out = []
    for _, raw in rel.writer.side_table(OUTBOX_DB).first_items(10_000):
        _, _, value = marshal.loads(raw)
        if value is not None:
            ev = json.loads(value)
            out.append((ev["source"]["offset"], ev["op"], ev["before"], ev["after"]))
    return out


def _rows(store: Path) -> dict[Any, Any]:
    with Store.open(store) as s:
        return {r["id"]: r for r in s.table(SPEC.name).scan(json_form=True)}


def _stored(store: Path) -> list[tuple[bytes, bytes]]:
    """Every stored (key, row), a key that both partitions hold once per partition."""
    with Store.open(store) as s:
        return s.table(SPEC.name).scan_raw(every_copy=True)


def test_decided_before_the_transaction_equals_inside(tmp_path: Path) -> None:
    rng = random.Random(3)
    batches = [_records(rng, i * 40, 40) for i in range(6)]
    results = []
    for shared in (False, True):
        rel = _relation(tmp_path / str(shared), shared)
        for recs in batches:
            rel.apply({0: recs, 1: recs[:10]})
        results.append((_events(rel), rel.writer.next_offsets()))
    assert results[0] == results[1] and results[0][0]
    assert _stored(tmp_path / "False") == _stored(tmp_path / "True")


def test_a_partition_written_by_another_process_meanwhile_is_decided_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker a decides a batch of partition 0 on the committed rows; before its write
    transaction, worker b (the partition's new owner after a rebalance) commits offsets
    0-4 of the same records. a must apply only 5-9, on b's rows."""
    rng = random.Random(5)
    first = _records(rng, 0, 20)
    batch = _records(rng, 20, 10)
    a, b = _relation(tmp_path, True), _relation(tmp_path, True)
    a.apply({0: first})  # both have now opened partition 0's database
    b.apply({0: first})  # below b's stored offset: nothing again
    decide = Relation._stage_on_committed

    def b_commits_meanwhile(self: Relation, parts: Any) -> Any:
        decided = decide(self, parts)
        if self is a:
            b.apply({0: batch[:5]})
        return decided

    monkeypatch.setattr(Relation, "_stage_on_committed", b_commits_meanwhile)
    a.apply({0: batch})
    events = _events(a)
    offsets = [e[0] for e in events]
    assert len(offsets) == len(set(offsets)) and offsets == sorted(offsets)
    assert max(offsets) >= 25  # a applied part of its batch itself
    model: dict[Any, Any] = {}
    for off, op, before, after in events:  # each event's before is the previous after
        key = (after or before)["id"]
        assert before == model.get(key), (off, op)
        model[key] = after
        if after is None:
            del model[key]
    assert a.writer.next_offsets() == {0: 30}
    assert {k: v for k, v in model.items()} == _rows(tmp_path)

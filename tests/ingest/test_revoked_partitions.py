"""Partitions revoked from a worker (a consumer group rebalance) are not answered as
current state: the worker marks them in its store, readers skip them, and the mark is
cleared when the partition is assigned to it again."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from materializer.errors import PartitionsNotHeld
from materializer.status import read_status
from materializer.store import Store
from tests.support.api import CLICKS, USERS, SpecWriter, user_row
from tests.support.workers import (
    USERS_TABLE,
    caught_up,
    read_topic,
    start_worker,
    unique,
    wait_until,
    write_config,
)

TABLE = USERS_TABLE


def test_readers_skip_revoked_partitions(tmp_path: Path) -> None:
    users, clicks = SpecWriter(str(tmp_path), USERS), SpecWriter(str(tmp_path), CLICKS)
    for p in range(3):
        users.write([(i, user_row(i)) for i in range(30) if i % 3 == p], partition=p)
        clicks.write([(f"u{p}", {"url": f"/{p}", "n": p})], partition=p)
    with Store.open(tmp_path) as store:
        view, stream = store.table("users"), store.stream("clicks")
        assert len(view) == 30 and stream.events("u1") == [{"user_id": "u1", "url": "/1",
                                                            "n": 1}]
        assert users.writer.set_revoked([1], True) and clicks.writer.set_revoked([1], True)
        assert not users.writer.set_revoked([1], True)  # already marked
        three = view.get(3)
        assert three is not None and three["name"] == "user-3"
        with pytest.raises(PartitionsNotHeld):  # a miss is not "absent" now
            view.get(4)
        assert view.get(4, held_only=True) is None
        assert view.get_many([1, 2, 4], held_only=True) == [None, view.get(2), None]
        assert len(view) == 20 and all(r["id"] % 3 != 1 for r in view.scan(held_only=True))
        assert stream.events("u1", held_only=True) == []
        with pytest.raises(PartitionsNotHeld):  # events of partition 0 only: not all
            stream.events("u0")
        assert len(stream.events("u0", held_only=True)) == 1
        assert len(stream.scan(held_only=True)) == 2
        # progress is still reported for every partition, with the mark
        stats = {s["partition"]: s for s in view.partition_stats()}
        assert stats[1]["revoked"] and not stats[0]["revoked"]
        assert set(view.next_offsets()) == {0, 1, 2}
        assert users.writer.set_revoked([1], False) and clicks.writer.set_revoked([1], False)
        assert view.get(4) is not None and len(view) == 30 and len(stream.events("u1")) == 1


def _assigned(store: Path) -> set[int]:
    status = read_status(store) or {}
    return {p for _, p in status.get("assigned", [])}


@pytest.mark.integration
def test_a_worker_answers_only_its_own_partitions_after_a_rebalance(
        session_broker: DevBroker, tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("users"), partitions=4)
    ends = produce_records(session_broker.kafka_config(), topic, [
        (i.to_bytes(8, "big", signed=True), json.dumps({"name": f"n{i}"}).encode())
        for i in range(400)])
    part_of = {int.from_bytes(k, "big", signed=True): p
               for p, _, k, _ in read_topic(session_broker, topic, ends) if k is not None}
    group = unique("split")
    body = TABLE.format(topic=topic)
    cfg_a = write_config(tmp_path / "a" / "t.yaml", session_broker, body, group=group)
    cfg_b = write_config(tmp_path / "b" / "t.yaml", session_broker, body, group=group)
    store_a, store_b = cfg_a.parent / "data", cfg_b.parent / "data"
    a = start_worker(cfg_a)
    try:
        wait_until(caught_up(store_a, "shop.users", ends), 90, "A to hold every partition", a)
        b = start_worker(cfg_b)
        try:
            def split() -> bool:
                mine, theirs = _assigned(store_a), _assigned(store_b)
                return bool(mine) and bool(theirs) and mine.isdisjoint(theirs) \
                    and mine | theirs == {0, 1, 2, 3}
            wait_until(split, 90, "the group to split the partitions", b)
            owned_a, owned_b = _assigned(store_a), _assigned(store_b)

            def answers_only_its_own(store: Path, owned: set[int]) -> bool:
                with Store.open(store) as s:
                    try:
                        rows = s.table("shop.users").get_many(sorted(part_of), held_only=True)
                    except Exception:  # noqa: BLE001 - not materialized yet
                        return False
                got = {k for k, r in zip(sorted(part_of), rows, strict=True) if r is not None}
                return got == {k for k, p in part_of.items() if p in owned}
            wait_until(lambda: answers_only_its_own(store_a, owned_a), 30,
                       "A to stop answering B's partitions", a)
            wait_until(lambda: answers_only_its_own(store_b, owned_b), 60,
                       "B to answer its partitions", b)
            with Store.open(store_a) as s:
                users = s.table("shop.users")
                assert len(users) == sum(1 for p in part_of.values() if p in owned_a)
                with pytest.raises(PartitionsNotHeld):  # B's partitions: not known here
                    users.scan()
                assert {r["id"] for r in users.scan(held_only=True)} == \
                    {k for k, p in part_of.items() if p in owned_a}
        finally:
            b.send_signal(signal.SIGTERM)
            assert b.wait(30) == 0
        # B left: its partitions come back to A, which answers them again
        wait_until(lambda: _assigned(store_a) == {0, 1, 2, 3}, 90, "A to get them back", a)
        wait_until(lambda: answers_only_its_own(store_a, {0, 1, 2, 3}), 30,
                   "A to answer every partition again", a)
    finally:
        a.send_signal(signal.SIGTERM)
        assert a.wait(30) == 0
    with Store.open(store_a) as s:  # a clean stop marks nothing: the state stays readable
        assert len(s.table("shop.users")) == 400

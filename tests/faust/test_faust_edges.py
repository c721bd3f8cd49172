"""lmdb:// edges found by a probe (no broker: faust apps built but never started, faust's
calls made as a real worker makes them): a key too long for LMDB, another app's table in
the same directory, a second worker on one table, deletes of keys held by another
partition (`table.clear()`)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from faust.types import TP

from materializer.errors import StoreError
from materializer.store import Store
from tests.faust.support import cl_event, make_app, store_of

ROOT = Path(__file__).resolve().parents[2]


def test_a_key_too_long_is_refused_without_taking_the_next_writes_acknowledgement(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # faust sends a write's changelog record, announces it (on_table_set), then sets the
    # store: the refused key's record is in the changelog and acknowledged like any other.
    # Before: its acknowledgement was matched with the next write, both were journaled,
    # and the next flush wrote the long key to LMDB: StoreError, the worker crashed.
    store = store_of(make_app(tmp_path).Table("counts", default=int, key_type=str, partitions=1))
    monkeypatch.setattr(store, "_write_partition", lambda key, logged: 0)
    tp = TP(store.changelog_topic, 0)
    long = b'"' + b"x" * 600 + b'"'
    store.announced()
    with pytest.raises(ValueError, match="too long"):
        store._set(long, b"1")
    store.announced()
    store._set(b'"b"', b"2")
    caplog.set_level(logging.ERROR, "materializer.faust")
    for offset, (key, value) in enumerate([(long, b"1"), (b'"b"', b"2")]):
        store.acked(0, offset, key, value)
        store.set_persisted_offset(tp, offset)
    store.flush()
    assert caplog.records == []
    assert store.persisted_offset(tp) == 1
    assert dict(store.items()) == {"b": 2} and len(store) == 1
    assert store._get(long) is None
    store.announced()  # the counts of announced and set writes still agree
    store._set(b'"c"', b"3")
    store.acked(0, 2, b'"c"', b"3")
    store.set_persisted_offset(tp, 2)
    store.flush()
    assert caplog.records == []
    assert dict(store.items()) == {"b": 2, "c": 3}


def test_another_apps_table_of_the_same_name_in_the_directory_is_refused(
        tmp_path: Path) -> None:
    # Before: app2 took app1's rows and app1's changelog offsets as its own (a key app2
    # never wrote was served, app2's changelog records below app1's offset were skipped).
    one = store_of(make_app(tmp_path, "app1").Table("counts", default=int, key_type=str,
                                              partitions=1))
    one.apply_changelog_batch([cl_event(one.changelog_topic, 0, i, b'"k%d"' % i, b"1")
                               for i in range(10)], None, None)
    two = store_of(make_app(tmp_path, "app2").Table("counts", default=int, key_type=str,
                                              partitions=1))
    with pytest.raises(StoreError, match="holds the changelog 'app1-counts-changelog'"):
        two.persisted_offset(TP(two.changelog_topic, 0))


def test_a_second_worker_on_the_same_table_is_refused(tmp_path: Path) -> None:
    # Before: both wrote the table, each marked the other's partitions revoked and read its
    # own as empty (a count of 5 incremented was stored, and sent to the changelog, as 1).
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, faust
            app = faust.App("t", broker="kafka://127.0.0.1:9",
                            store="lmdb://{tmp_path}/tables", datadir="{tmp_path}/faust")
            app.Table("counts", default=int, key_type=str, partitions=1).data._open()
            print("held", flush=True)
            sys.stdin.read()
            """)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        store = store_of(make_app(tmp_path).Table("counts", default=int, key_type=str,
                                                  partitions=1))
        with pytest.raises(StoreError, match=rf"in use by another worker \(pid {holder.pid}\)"):
            store.persisted_offset(TP(store.changelog_topic, 0))
    finally:
        holder.kill()
        holder.communicate()
    store = store_of(make_app(tmp_path).Table("counts", default=int, key_type=str, partitions=1))
    assert store.persisted_offset(TP(store.changelog_topic, 0)) is None  # free again


def test_clear_deletes_the_keys_every_partition_holds(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # faust's Table.clear() sends every key's tombstone to the current event's partition.
    # Before: keys stored in another partition stayed on disk and were served again (len,
    # items, get, Store) at the next flush, a second after clear().
    store = store_of(make_app(tmp_path).Table("counts", default=int, key_type=str, partitions=2))
    topic = store.changelog_topic
    store.apply_changelog_batch([cl_event(topic, 0, 0, b'"a"', b"1"),
                                 cl_event(topic, 1, 0, b'"c"', b"3"),
                                 cl_event(topic, 1, 1, b'"d"', b"4")], None, None)
    monkeypatch.setattr(store, "_write_partition", lambda key, logged: 0)
    keys = [k for k, _ in store._iteritems()]
    for _ in keys:  # Table.on_clear: a tombstone and an on_table_del per key
        store.announced()
    store.clear()
    assert len(store) == 0 and dict(store.items()) == {}
    for offset, key in enumerate(keys, start=1):
        store.acked(0, offset, key, None)
        store.set_persisted_offset(TP(topic, 0), offset)
    store.flush()
    assert len(store) == 0 and dict(store.items()) == {}
    assert store._get(b'"c"') is None
    with Store.open(tmp_path / "tables") as s:
        assert s.table("counts").scan() == []
    assert store.persisted_offset(TP(topic, 0)) == len(keys)
    assert store.persisted_offset(TP(topic, 1)) == 1  # local deletes move no offset


def test_a_partition_this_worker_never_held_is_not_read_as_absent(tmp_path: Path) -> None:
    # Two workers of one app: each recovers and serves one partition of the changelog.
    # Before: a partition this worker never held had no database here, so nothing marked
    # it revoked: `Store.get` of a key another worker serves answered None (a 404 over
    # HTTP) instead of PartitionsNotHeld (probe h58, two live workers).
    from materializer.errors import PartitionsNotHeld  # noqa: PLC0415

    store = store_of(make_app(tmp_path).Table("counts", default=int, key_type=str,
                                              partitions=2))
    topic = store.changelog_topic
    mine, theirs = TP(topic, 0), TP(topic, 1)
    assert store.persisted_offset(mine) is None  # as at the worker's start: opens the table
    asyncio.run(store.on_rebalance({mine}, set(), {mine}))
    with Store.open(tmp_path / "tables") as s:
        # while its recovery runs, a newly assigned partition is not current here either
        with pytest.raises(PartitionsNotHeld):
            s.table("counts").get("a")
        store.apply_changelog_batch([cl_event(topic, 0, 0, b'"a"', b"1")], None, None)
        asyncio.run(store.on_recovery_completed({mine}, set()))
        assert s.table("counts").get("a") == {"key": "a", "value": 1}
        with pytest.raises(PartitionsNotHeld):
            s.table("counts").get("held-by-the-other-worker")
        assert s.table("counts").get("held-by-the-other-worker", held_only=True) is None
    assert theirs.partition == 1

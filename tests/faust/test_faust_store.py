"""lmdb:// without a broker: what reaches the disk and when, and how `Store` reads it back
(faust apps built but never started; changelog records given as faust events would)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from faust.types import TP

from connectors.faust_view import FaustTableView
from materializer.errors import StoreError, UsageError
from materializer.store import Store
from tests.faust.support import cl_event, make_app, store_of


def test_a_write_reaches_the_disk_with_its_offset_only_once_its_changelog_record_is_acked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(tmp_path)
    store = store_of(app.Table("counts", default=int, key_type=str, partitions=2))
    monkeypatch.setattr(store, "_write_partition", lambda key, logged: 1)
    tp = TP(store.changelog_topic, 1)
    store.announced()  # what faust's on_table_set tells the store
    store._set(b'"apples"', b"3")
    assert store._get(b'"apples"') == b"3"  # the app reads its own write at once
    store.flush()
    with Store.open(tmp_path / "tables") as s:
        assert s.table("counts").get("apples") is None
        assert store.persisted_offset(tp) is None
        store.acked(1, 41, b'"apples"', b"3")
        store.set_persisted_offset(tp, 41)
        store.flush()
        assert s.table("counts").get("apples") == {"key": "apples", "value": 3}
    assert store.persisted_offset(tp) == 41
    assert len(store) == 1 and dict(store.items()) == {"apples": 3}


def test_recovery_batches_skip_what_the_disk_has_and_store_offsets_with_rows(
        tmp_path: Path) -> None:
    app = make_app(tmp_path)
    store = store_of(app.Table("counts", default=int, key_type=str, partitions=2))
    topic = store.changelog_topic
    store.apply_changelog_batch([cl_event(topic, 0, 0, b'"a"', b"1"),
                                 cl_event(topic, 0, 1, b'"b"', b"2"),
                                 cl_event(topic, 1, 0, b'"c"', b"3"),
                                 cl_event(topic, 0, 2, b'"a"', None)], None, None)
    assert store.replayed == 4
    assert store.persisted_offset(TP(topic, 0)) == 2
    assert store.persisted_offset(TP(topic, 1)) == 0
    store.apply_changelog_batch([cl_event(topic, 0, 1, b'"b"', b"9"),  # already on disk
                                 cl_event(topic, 0, 3, b'"d"', b"4")], None, None)
    assert dict(store.items()) == {"b": 2, "c": 3, "d": 4}


def test_store_reads_a_windowed_table_by_key_and_window(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    hits = app.Table("hits", default=int, key_type=str, partitions=1).tumbling(10.0)
    store = store_of(hits.table)
    topic = store.changelog_topic
    rows = [("apples", 0.0, 9.9, 2), ("apples", 10.0, 19.9, 5), ("applesauce", 0.0, 9.9, 1)]
    store.apply_changelog_batch(
        [cl_event(topic, 0, i, json.dumps([k, [s, e]], separators=(",", ":")).encode(),
                str(n).encode()) for i, (k, s, e, n) in enumerate(rows)], None, None)
    with Store.open(tmp_path / "tables") as s:
        view = s.table("hits")
        assert isinstance(view, FaustTableView)
        assert view.key_columns == ("key", "window_start", "window_end")
        assert view.get(("apples", 10.0, 19.9)) == {"key": "apples", "window_start": 10.0,
                                                    "window_end": 19.9, "value": 5}
        assert view.get(("apples", (0.0, 9.9)))["value"] == 2
        assert [r["value"] for r in view.scan(("apples",))] == [2, 5]
        assert len(view.scan()) == 3
        assert view.meta.identity["columns"][0] == ["key", "string", True]


def test_json_form_serves_json_values_as_documents_and_raw_values_as_base64(
        tmp_path: Path) -> None:
    app = make_app(tmp_path)
    docs = store_of(app.Table("docs", key_type=str, partitions=1))
    raw = store_of(app.Table("blobs", key_type=str, value_type=bytes, partitions=1))
    docs.apply_changelog_batch([cl_event(docs.changelog_topic, 0, 0, b'"u1"',
                                       b'{"name": "Ann", "tags": [1, 2]}')], None, None)
    raw.apply_changelog_batch([cl_event(raw.changelog_topic, 0, 0, b'"u1"', b"\x00\xff")],
                              None, None)
    with Store.open(tmp_path / "tables") as s:
        assert s.table("docs").get("u1", json_form=True) == {
            "key": "u1", "value": {"name": "Ann", "tags": [1, 2]}}
        assert s.table("blobs").get("u1") == {"key": "u1", "value": b"\x00\xff"}
        assert s.table("blobs").get("u1", json_form=True)["value"] == "AP8="


def test_changed_serializers_against_existing_state_are_refused(tmp_path: Path) -> None:
    store = store_of(make_app(tmp_path, "a").Table("t", key_type=str, partitions=1))
    store.apply_changelog_batch([cl_event(store.changelog_topic, 0, 0, b'"k"', b"1")], None, None)
    other = store_of(make_app(tmp_path, "a").Table("t", key_type=str, value_type=bytes,
                                                   partitions=1))
    with pytest.raises(StoreError, match="value_serializer changed"):
        other.persisted_offset(TP(other.changelog_topic, 0))


def test_a_bytes_keyed_table_is_looked_up_by_base64_text_as_its_rows_show_keys(
        tmp_path: Path) -> None:
    # key_type=bytes (faust's raw codec). Before: a key's text (HTTP path segment, the
    # base64 a JSON-form row shows) was looked up as its own UTF-8 bytes: the row shown
    # with key "awA=" answered 404 at /rows/awA=, and /rows/awA= answered the row of the
    # key b"awA=" if there was one (probe h58).
    app = make_app(tmp_path)
    blobs = store_of(app.Table("blobs", key_type=bytes, value_type=bytes, partitions=1))
    blobs.apply_changelog_batch([cl_event(blobs.changelog_topic, 0, 0, b"k\x00", b"\xff"),
                                 cl_event(blobs.changelog_topic, 0, 1, b"awA=", b"\x01")],
                                None, None)
    with Store.open(tmp_path / "tables") as s:
        view = s.table("blobs")
        shown = view.scan(json_form=True)
        assert {r["key"] for r in shown} == {"awA=", "YXdBPQ=="}
        for r in shown:
            assert view.get(r["key"], json_form=True) == r
        assert view.get(b"k\x00") == {"key": b"k\x00", "value": b"\xff"}
        with pytest.raises(UsageError, match="base64"):
            view.get("k\x00")


def test_a_record_keyed_table_refuses_keys_no_record_can_match(tmp_path: Path) -> None:
    """A faust table keyed by Records stores each key as the Record serializes itself: a
    key given as text, a number or a plain object (an HTTP path, the CLI, a JSON lookup)
    never matches one, and read as absent (404) for keys the table holds (probe h58).
    Refused now, saying how to look them up; the Record itself finds its row."""
    import faust

    class UserKey(faust.Record, serializer="json"):
        user: str

    app = make_app(tmp_path)
    users = store_of(app.Table("users", key_type=UserKey, value_type=int, partitions=1))
    key = UserKey(user="ana")
    users.apply_changelog_batch([cl_event(users.changelog_topic, 0, 0, key.dumps(), b"7")],
                                None, None)
    with Store.open(tmp_path / "tables") as s:
        view = s.table("users")
        assert view.get(key) is not None and view.get(key)["value"] == 7
        for given in ("ana", {"user": "ana"}, 1):
            with pytest.raises(UsageError, match="keys are faust Records"):
                view.get(given)

"""lmdb:// and faust's processing guarantees, and values of faust's base64-layered codecs
(pickle) over JSON (probe h63; no broker: faust apps built but never started)."""

from __future__ import annotations

import base64
import pickle
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.exceptions import ImproperlyConfigured
from faust.types import TP

from materializer.store import Store
from tests.faust.support import cl_event, make_app, store_of


def test_exactly_once_is_refused_at_start(tmp_path: Path) -> None:
    # faust-streaming never calls set_persisted_offset under exactly_once (see the next
    # test). Before: lmdb:// kept every write in memory for the worker's life (one journal
    # entry per write), wrote no row to disk, and `Store`/HTTP read the app's keys as
    # absent (404) once recovery had marked the partitions served.
    app = faust.App("eos", broker="kafka://127.0.0.1:9", store=f"lmdb://{tmp_path}/tables",
                    datadir=str(tmp_path / "faust"), processing_guarantee="exactly_once")
    table = app.Table("counts", default=int, key_type=str, partitions=1)
    with pytest.raises(ImproperlyConfigured, match="exactly_once.*robinhood/faust#599"):
        table.data  # noqa: B018 - faust creates the store here, at the worker's start


def test_faust_still_never_persists_changelog_offsets_under_exactly_once() -> None:
    """The faust behaviour the refusal above rests on: under exactly_once a table's
    changelog offset waits in `persist_offset_on_commit` keyed by the changelog partition,
    and `on_commit` looks it up by the committed source partitions, so it never reaches
    the store. If this fails, faust fixed robinhood/faust#599: lift the refusal (and test
    exactly_once end to end)."""
    app = faust.App("eos-canary", broker="kafka://127.0.0.1:9", store="memory://",
                    processing_guarantee="exactly_once")
    persisted: list[tuple[TP, int]] = []

    class Recorder:
        def set_persisted_offset(self, tp: TP, offset: int) -> None:
            persisted.append((tp, offset))

    changelog_tp, source_tp = TP("eos-canary-counts-changelog", 0), TP("words", 0)
    app.tables.persist_offset_on_commit(Recorder(), changelog_tp, 41)  # type: ignore[arg-type]
    app.tables.on_commit({source_tp: 42})
    assert persisted == []


@pytest.mark.filterwarnings("ignore::faust.exceptions.SecurityWarning")  # pickle: ours
def test_pickle_values_are_served_in_json_as_base64_of_the_pickle(tmp_path: Path) -> None:
    # faust's pickle codec is pickle then base64 (its `binary` layer): the stored bytes are
    # base64 text already. Before: JSON form (HTTP, `materializer get`) served base64 of
    # that text, base64 of base64: one b64decode gave text, not a pickle.
    class State(faust.Record, serializer="pickle"):
        last: str
        n: int

    app = make_app(tmp_path)
    pk = store_of(app.Table("pk", key_type=str, value_type=State, partitions=1))
    blobs = store_of(app.Table("blobs", key_type=str, value_type=bytes, partitions=1))
    value = State(last="w7", n=3)
    stored = value.dumps()
    assert stored == base64.b64encode(base64.b64decode(stored))  # base64 text, as said
    pk.apply_changelog_batch([cl_event(pk.changelog_topic, 0, 0, b'"k"', stored),
                              cl_event(pk.changelog_topic, 0, 1, b'"bad"', b"not base64!")],
                             None, None)
    blobs.apply_changelog_batch([cl_event(blobs.changelog_topic, 0, 0, b'"k"', b"\x00\xff")],
                                None, None)
    with Store.open(tmp_path / "tables") as s:
        view = s.table("pk")
        shown = view.get("k", json_form=True)
        assert shown is not None
        loaded: Any = pickle.loads(base64.b64decode(shown["value"]))  # noqa: S301 - ours
        assert loaded == value.to_representation()
        assert view.get("k")["value"] == value.to_representation()  # Python: decoded
        # a value the codec did not write: its stored bytes, as before
        assert base64.b64decode(view.get("bad", json_form=True)["value"]) == b"not base64!"
        assert s.table("blobs").get("k", json_form=True)["value"] == "AP8="  # raw: unchanged

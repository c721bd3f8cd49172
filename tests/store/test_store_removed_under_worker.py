"""A store removed (`rm -rf`) under a running worker left it writing into files nobody can
open again, for ever (a warning a second about the status file; every commit lost at the
next start). It now stops with exit 1 naming what went; so it does when one relation's
files are removed. A rebuild in place (a new generation) is not taken for a removal."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from materializer.devbroker import DevBroker
from materializer.errors import StoreError
from materializer.store.presence import StorePresence
from tests.support.workers import (
    start_worker,
    string_key_table,
    wait_until,
    worker_running,
    write_config,
)


def test_a_worker_whose_store_is_removed_stops_saying_so(tmp_path: Path,
                                                          session_broker: DevBroker) -> None:
    topic = session_broker.create_topic(partitions=1)
    cfg = write_config(tmp_path / "cfg.yaml", session_broker, string_key_table(topic))
    store = tmp_path / "data"
    proc = start_worker(cfg)
    wait_until(worker_running(store, proc), 60, "the worker to run", proc)
    shutil.rmtree(store)
    assert proc.wait(30) == 1
    log = next(tmp_path.glob("worker-*.log")).read_text()
    assert f"the store directory {store} was removed or replaced" in log, log[-2000:]
    assert "Traceback" not in log


def test_a_relation_file_removed_or_replaced_is_named(tmp_path: Path) -> None:
    gen = tmp_path / "relations" / "t" / "g1"
    gen.mkdir(parents=True)
    (gen / "data.mdb").write_bytes(b"x")
    presence = StorePresence(tmp_path)
    presence.check([gen])
    presence.check([gen])  # unchanged: nothing said
    fresh = tmp_path / "relations" / "t" / "g2"  # a rebuild in place: a new generation
    fresh.mkdir()
    (fresh / "data.mdb").write_bytes(b"y")
    presence.check([fresh])
    (fresh / "data.mdb").unlink()
    with pytest.raises(StoreError, match="g2/data.mdb was removed or replaced"):
        presence.check([fresh])

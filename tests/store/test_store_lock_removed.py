"""The store lock's file removed (or replaced) under its holder (probe h83).

The lock is an flock on `<store>/lock`: removing the file (a cleanup script, `rm` of what
looks stale) leaves the holder locking a file nobody can open, and a second `run` created
a new file, locked it and wrote the store beside the first one. The holder now checks
every second that the file it locked is still `<store>/lock` and stops naming it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from materializer.errors import StoreError
from materializer.store import StoreLock
from materializer.store.lock import check_held
from materializer.store.presence import StorePresence
from tests.support.workers import (
    USERS_TABLE,
    caught_up,
    start_worker,
    unique,
    wait_until,
    worker_running,
    write_config,
)


def test_a_removed_or_replaced_lock_file_is_named(tmp_path: Path) -> None:
    store = tmp_path / "data"
    check_held(store)  # not held here: nothing to check
    with StoreLock.acquire(store, "run"):
        check_held(store)
        StorePresence(store).check([])
        (store / "lock").unlink()
        with pytest.raises(StoreError, match=r"store lock .*/lock was removed or replaced"):
            check_held(store)
        with pytest.raises(StoreError, match="removed or replaced"):
            StorePresence(store).check([])
        (store / "lock").write_text("{}")  # another file in its place
        with pytest.raises(StoreError, match="removed or replaced"):
            check_held(store)


@pytest.mark.integration
def test_a_worker_whose_lock_file_is_removed_stops_saying_so(session_broker: DevBroker,
                                                            tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("lockgone"), partitions=1)
    ends = produce_records(session_broker.kafka_config(), topic, [
        (i.to_bytes(8, "big", signed=True), json.dumps({"name": str(i)}).encode())
        for i in range(20)])
    cfg = write_config(tmp_path / "t.yaml", session_broker, USERS_TABLE.format(topic=topic))
    store = tmp_path / "data"
    worker = start_worker(cfg)
    wait_until(worker_running(store, worker), 60, "the worker to start", worker)
    wait_until(caught_up(store, "shop.users", ends), 60, "the rows", worker)
    os.unlink(store / "lock")
    wait_until(lambda: worker.poll() is not None, 30, "the worker to stop")
    assert worker.returncode == 1
    log = next(tmp_path.glob("worker-*.log")).read_text()
    assert f"the store lock {store / 'lock'} was removed or replaced" in log, log[-2000:]
    assert "Traceback" not in log, log[-3000:]

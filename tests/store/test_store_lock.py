"""One writer per store: `run` and `rebuild` take `<store>/lock`; readers take nothing.

Real processes throughout: the lock is an `flock` that the kernel releases when its
last holder dies, so it is tested across processes (second run, rebuild, kill -9).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from materializer.store import Store, StoreLock, StoreLocked
from tests.support.workers import (
    USERS_TABLE,
    caught_up,
    run_cli,
    start_worker,
    unique,
    wait_until,
    worker_running,
    write_config,
)

TABLE = USERS_TABLE


def _records(n: int) -> list[tuple[bytes | None, bytes | None]]:
    return [(i.to_bytes(8, "big", signed=True), json.dumps({"name": f"u{i}"}).encode())
            for i in range(n)]


@pytest.mark.integration
def test_second_writer_is_refused_naming_the_holder(session_broker: DevBroker,
                                                    tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("users"), partitions=2)
    ends = produce_records(session_broker.kafka_config(), topic, _records(200))
    cfg = write_config(tmp_path / "t.yaml", session_broker, TABLE.format(topic=topic))
    store = tmp_path / "data"
    holder = start_worker(cfg)
    try:
        wait_until(worker_running(store, holder), 60, "the first worker", holder)
        wait_until(caught_up(store, "shop.users", ends), 60, "the first worker to catch up",
                   holder)
        # the same declaration file (same group), and another group on the same store
        other_group = write_config(tmp_path / "other.yaml", session_broker,
                                   TABLE.format(topic=topic), group=unique("other"))
        for config in (cfg, other_group):
            t0 = time.monotonic()
            second = run_cli("run", str(config), "--no-api", timeout=60)
            assert second.returncode == 1, second.stderr
            assert time.monotonic() - t0 < 30  # refused at once, not after a timeout
            assert f"pid {holder.pid}" in second.stderr, second.stderr
            assert "materializer run" in second.stderr
            assert "Traceback" not in second.stderr
        rebuilt = run_cli("rebuild", str(cfg), "shop.users")
        assert rebuilt.returncode == 1, rebuilt.stderr
        assert f"pid {holder.pid}" in rebuilt.stderr and "Traceback" not in rebuilt.stderr
        # nothing was deleted under the running worker, and readers need no lock
        with Store.open(store) as s:
            assert len(s.table("shop.users")) == 200
        got = run_cli("get", str(cfg), "shop.users", "7")
        assert got.returncode == 0 and json.loads(got.stdout)["name"] == "u7"
        assert holder.poll() is None
        # kill -9: the kernel releases the flock with the process
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        rebuilt = run_cli("rebuild", str(cfg), "shop.users")
        assert rebuilt.returncode == 0, rebuilt.stderr
        after = start_worker(cfg)
        try:
            wait_until(worker_running(store, after), 60, "a worker after the rebuild", after)
        finally:
            after.send_signal(signal.SIGTERM)
            assert after.wait(30) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)


def _try_lock(store: Path) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(f"""
        from materializer.store import StoreLock, StoreLocked
        try:
            StoreLock.acquire({str(store)!r}, "probe").release()
            print("acquired")
        except StoreLocked as e:
            print("refused:", e)
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)


def test_lock_object_is_shared_with_children_and_freed_with_the_last(tmp_path: Path) -> None:
    store = tmp_path / "data"
    lock = StoreLock.acquire(store, "materializer run test.yaml")
    text = (store / "lock").read_text()
    assert str(os.getpid()) in text and "materializer run test.yaml" in text
    with pytest.raises(StoreLocked, match=f"pid {os.getpid()}"):
        StoreLock.acquire(store, "again")  # not even the same process takes it twice
    # a spawned child inherits the lock through its descriptor and keeps it alive
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from materializer.store import StoreLock
            lock = StoreLock.inherit({str(store)!r}, {lock.fd})
            print("holding", flush=True)
            sys.stdin.read()
            lock.release()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        pass_fds=lock.pass_fds())
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "holding"
        lock.release()  # the parent lets go; the child still holds it
        refused = _try_lock(store)
        assert refused.stdout.startswith("refused:"), refused.stdout + refused.stderr
        assert f"pid {os.getpid()}" in refused.stdout  # the holder that took it
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(30)
        assert child.stdout is not None
        child.stdout.close()
    assert _try_lock(store).stdout.strip() == "acquired"


def test_lock_on_a_store_path_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_text("not a directory")
    with pytest.raises(Exception, match="not a directory") as info:
        StoreLock.acquire(path, "run")
    assert not isinstance(info.value, OSError)

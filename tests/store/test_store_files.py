"""The store's files: what a store path must be, how names map to directories."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from materializer.ingest.relation import open_relation
from materializer.store import Store
from materializer.testing import FakeRecord
from tests.support.api import USERS, user_row
from tests.support.workers import caught_up, run_cli, start_worker, unique, wait_until, write_config

OFFLINE = """\
kafka:
  bootstrap.servers: 127.0.0.1:1
store:
  path: {store}
api:
  listen: 127.0.0.1:1
tables:
  - name: shop.users
    topic: users
    columns: {{id: long, name: string}}
    primary_key: [id]
    key_format: long
    value_format: json
"""


@pytest.mark.parametrize("command", [["run", "--no-api"], ["get", "shop.users", "1"],
                                     ["scan", "shop.users"], ["status"], ["serve"]])
def test_a_store_path_that_is_a_file_is_said_plainly(tmp_path: Path,
                                                     command: list[str]) -> None:
    store = tmp_path / "data"
    store.write_text("a file, not a directory\n")
    cfg = tmp_path / "t.yaml"
    cfg.write_text(OFFLINE.format(store=store))
    done = run_cli(command[0], str(cfg), *command[1:], timeout=60)
    assert done.returncode in (1, 2), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert f"{store} is not a directory" in done.stderr, done.stderr
    assert store.read_text() == "a file, not a directory\n"


SCHEMA = "s" + "x" * 199
TABLE = "T (a:b) #1 [c]{d}-e_" + "y" * 180
LONG = f"{SCHEMA}.{TABLE}"


@pytest.mark.integration
def test_longest_valid_names_are_stored(session_broker: DevBroker, tmp_path: Path) -> None:
    assert len(SCHEMA) == 200 and len(TABLE) == 200
    topic = session_broker.create_topic(unique("long"), partitions=2)
    body = f"""\
tables:
  - name: "{LONG}"
    topic: {topic}
    columns: {{id: long, name: string}}
    primary_key: [id]
    key_format: long
    value_format: json
"""
    ends = produce_records(session_broker.kafka_config(), topic, [
        (i.to_bytes(8, "big", signed=True), json.dumps({"name": f"n{i}"}).encode())
        for i in range(20)])
    cfg = write_config(tmp_path / "t.yaml", session_broker, body)
    checked = run_cli("check", str(cfg))
    assert checked.returncode == 0, checked.stderr
    store = tmp_path / "data"
    worker = start_worker(cfg)
    try:
        wait_until(caught_up(store, LONG, ends), 60, "the long-named table", worker)
    finally:
        worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    with Store.open(store) as s:
        assert s.names() == [LONG]
        assert s.table(LONG).get(7) == {"id": 7, "name": "n7"}
    got = run_cli("get", str(cfg), LONG, "3")
    assert got.returncode == 0 and json.loads(got.stdout) == {"id": 3, "name": "n3"}
    for p in (store / "relations").iterdir():
        assert len(p.name) < 100, p.name
    rebuilt = run_cli("rebuild", str(cfg), LONG)
    assert rebuilt.returncode == 0, rebuilt.stderr
    with Store.open(store) as s:
        assert s.names() == [LONG] and len(s.table(LONG)) == 20


def _legacy(store: Path, name: str) -> None:
    """Turn a relation into the layout of earlier versions: `relations/<name>/`."""
    rel = store / "relations"
    link = next(p for p in rel.iterdir() if p.is_symlink())
    target = link.resolve()
    link.unlink()
    target.rename(rel / name)
    for p in rel.iterdir():
        if p.name != name:
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def test_stores_of_the_earlier_layout_stay_readable_and_are_moved_by_a_writer(
        tmp_path: Path) -> None:
    store = tmp_path / "data"
    rel = open_relation(USERS, store)
    rel.apply({0: [FakeRecord(json.dumps(i).encode(), json.dumps(user_row(i)).encode(), i)
                   for i in range(5)]})
    del rel
    from materializer.store.environment import close_env  # the writer's env, to move files

    for p in (store / "relations").iterdir():
        close_env(p)
    _legacy(store, USERS.name)
    with Store.open(store) as s:
        assert s.names() == [USERS.name]
        view = s.table("users")  # the default schema still resolves
        assert len(view) == 5
        # a writer (another process, as a worker is) moves it into the current layout
        moved = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
            import json
            from materializer.ingest.relation import open_relation
            from materializer.testing import FakeRecord
            from tests.support.api import USERS, user_row
            rel = open_relation(USERS, {str(store)!r})
            assert rel.next_offsets == {{0: 5}}, rel.next_offsets
            rel.apply({{0: [FakeRecord(b"9", json.dumps(user_row(9)).encode(), 5)]}})
        """)], capture_output=True, text=True, timeout=60)
        assert moved.returncode == 0, moved.stderr
        assert not (store / "relations" / USERS.name).exists()
        assert len(s.table("users")) == 6 and s.table("users").get(9) is not None
        assert s.names() == [USERS.name]


def _modes(store: Path) -> dict[str, int]:
    """Permission bits of the store and everything in it (links not followed)."""
    out = {".": store.stat().st_mode & 0o777}
    for p in store.rglob("*"):
        if not p.is_symlink():
            out[str(p.relative_to(store))] = p.stat().st_mode & 0o777
    return out


def _owner_only(modes: dict[str, int], store: Path) -> None:
    for rel, mode in modes.items():
        want = 0o700 if (store / rel).is_dir() else 0o600
        assert mode == want, f"{rel}: {oct(mode)}, expected {oct(want)}"


def test_store_files_are_the_owners_only_whatever_the_umask(tmp_path: Path) -> None:
    from materializer.store import StoreLock

    store = tmp_path / "data"
    old = os.umask(0)
    try:
        with StoreLock.acquire(store, "test"):
            rel = open_relation(USERS, store)
            rel.apply({0: [FakeRecord(b"1", json.dumps(user_row(1)).encode(), 0)]})
    finally:
        os.umask(old)
    modes = _modes(store)
    assert {"lock", "relations"} <= set(modes)
    assert any(k.endswith("data.mdb") for k in modes) and any(k.endswith("lock.mdb")
                                                              for k in modes)
    assert any(k.endswith("/name") for k in modes)
    _owner_only(modes, store)


@pytest.mark.integration
def test_a_worker_leaves_owner_only_files(session_broker: DevBroker, tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("users"), partitions=1)
    body = OFFLINE.format(store="unused").split("tables:\n", 1)[1].replace(
        "topic: users", f"topic: {topic}")
    ends = produce_records(session_broker.kafka_config(), topic, [
        (i.to_bytes(8, "big", signed=True), json.dumps({"name": f"n{i}"}).encode())
        for i in range(5)])
    cfg = write_config(tmp_path / "t.yaml", session_broker, "tables:\n" + body)
    store = tmp_path / "data"
    old = os.umask(0)  # the worker inherits the most permissive umask there is
    try:
        worker = start_worker(cfg)
    finally:
        os.umask(old)
    try:
        wait_until(caught_up(store, "shop.users", ends), 60, "the worker", worker)
        wait_until(lambda: (store / "worker.json").exists(), 30, "the status file", worker)
    finally:
        worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    modes = _modes(store)
    assert "worker.json" in modes and "lock" in modes
    _owner_only(modes, store)

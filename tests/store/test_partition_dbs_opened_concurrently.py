"""Threads sharing a view whose partition DBs are not open yet (its first reads, or
partitions assigned since): a thread whose read transaction began while another thread
opened them took the partition list that thread published, with handles its own
transaction did not know, and its read failed with "mdb_get: Invalid argument" (or
"mdb_cursor_open: Invalid argument"): 3 reads in 12 runs of 8 threads starting together
(probe h100). It begins again instead. The interleaving is forced here: thread B's
transaction begins, then thread A opens the DBs and reads, then B goes on."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from materializer.store import Store
from materializer.store import generation as generation_module
from materializer.store.environment import close_env
from tests.support.api import USERS, SpecWriter, user_row


def test_a_transaction_begun_before_the_dbs_were_opened_does_not_use_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    users = SpecWriter(str(tmp_path), USERS)
    for p in range(3):
        users.write([(i, user_row(i)) for i in range(30) if i % 3 == p], partition=p)
    close_env(users.writer.path)  # read as another process reads: no DB opened yet
    view = Store.open(tmp_path).table("users")
    b_began, a_done = threading.Event(), threading.Event()
    real = generation_module.read_txn

    def read_txn(env: Any) -> Any:
        txn = real(env)
        if threading.current_thread().name == "B" and not b_began.is_set():
            b_began.set()  # B's transaction has begun: let A open the DBs and read
            assert a_done.wait(30)
        return txn

    monkeypatch.setattr(generation_module, "read_txn", read_txn)
    got: dict[str, Any] = {}

    def read(name: str) -> None:
        try:
            got[name] = view.get_many([1, 2, 3, 29])
        except Exception as e:  # noqa: BLE001 - the test reports it
            got[name] = e

    b = threading.Thread(target=read, args=("B",), name="B")
    b.start()
    assert b_began.wait(30)
    read("A")  # opens the partition DBs and publishes them
    a_done.set()
    b.join(30)
    want = [user_row(k) | {"seen": got["A"][i]["seen"], "born": got["A"][i]["born"],
                           "blob": got["A"][i]["blob"]} for i, k in enumerate([1, 2, 3, 29])]
    assert got["A"] == want
    assert got["B"] == got["A"], got["B"]

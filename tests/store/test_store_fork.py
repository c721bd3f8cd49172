"""A Store used across fork(): LMDB forbids using an environment in a process forked from
the one that opened it. Before, a forked child read through its parent's environment: each
of its read transactions took a reader slot under the parent's pid that nothing freed while
the parent lived (600 reads in children filled the 512-slot table: MDB_READERS_FULL for
every reader of the file on the machine), and a child could renew the parent's own cached
slot. Now the child gets ForkedError, a clear StoreError (multiprocessing's fork Pool hands it to
the parent as it is), and the parent's slots are left alone; relations the parent never
opened read normally in the child."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.api import ORDERS, USERS, SpecWriter, user_row

SCRIPT = r"""
import json, os, sys
from materializer.store import Store

data = sys.argv[1]
store = Store.open(data)
users = store.table("users")
assert users.get(1)["id"] == 1
env = users._g.env

def slots():
    return len(env.readers().strip().splitlines()) - 1

before = slots()
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    out = {}
    for what, call in [("inherited view", lambda: users.get(1)),
                       ("inherited view, 600 reads", lambda: [users.get(k) for k in range(600)]),
                       ("new Store", lambda: Store.open(data).table("users").get(1)),
                       ("inherited scan", lambda: users.scan(limit=5))]:
        try:
            call()
            out[what] = "answered"
        except Exception as e:
            out[what] = f"{type(e).__name__}: {e}"
    try:
        out["never opened by the parent"] = len(Store.open(data).table("shop.orders"))
    except Exception as e:
        out["never opened by the parent"] = f"{type(e).__name__}: {e}"
    os.write(w, json.dumps(out).encode())
    os._exit(0)
os.close(w)
os.waitpid(pid, 0)
child = json.loads(os.read(r, 1 << 16))

import multiprocessing as mp

def read(k):
    return users.get(k)["id"]

with mp.get_context("fork").Pool(2) as pool:  # the error reaches the parent as it is
    try:
        child["fork Pool"] = f"answered {pool.map(read, range(40))[:3]}"
    except Exception as e:
        child["fork Pool"] = f"{type(e).__name__}: {e}"
print(json.dumps({"child": child, "slots_before": before, "slots_after": slots(),
                  "parent_reads": users.get(2)["id"], "parent": os.getpid()}))
"""


def _build(data: Path) -> None:
    users = SpecWriter(str(data), USERS)
    for p in range(3):
        users.write([(i, user_row(i)) for i in range(300) if i % 3 == p], partition=p)
    SpecWriter(str(data), ORDERS).write(
        [({"customer_id": 1, "order_id": o}, {"total": "1.00", "note": "n"}) for o in range(4)])


def test_a_forked_child_is_refused_its_parents_environments(tmp_path: Path) -> None:
    _build(tmp_path)
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    child = got["child"]
    for what in ("inherited view", "inherited view, 600 reads", "new Store", "inherited scan",
                 "fork Pool"):
        assert child[what].startswith("ForkedError: "), (what, child[what])
        assert f"was forked from process {got['parent']}" in child[what]
        assert "Open the Store in the child only" in child[what]
    # the parent's reader slots are untouched, and it keeps reading
    assert got["slots_after"] == got["slots_before"], got
    assert got["parent_reads"] == 2
    # a relation the parent never opened is the child's own to open
    assert child["never opened by the parent"] == 4

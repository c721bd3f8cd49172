"""A store some of whose partitions are marked revoked (a rebalance gave them to another
worker, or the group session was lost while the broker was away) does not hold their rows:
answered alone (no cluster routing: `run --processes N`, `serve` beside a worker), a miss
is 503 "not known", never 404 "absent". Found by a probe: `run --processes 2` answered 404
for every key the topic held once the broker had been stopped for a session timeout. The
Python `Store` and the CLI (`get`, `scan`) say so too: PartitionsNotHeld, exit 3."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

with warnings.catch_warnings():  # starlette suggests httpx2; httpx is what is installed
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from materializer.api.app import create_app
from materializer.errors import PartitionsNotHeld
from materializer.store import Store
from materializer.versions.take import take_snapshot
from tests.support.api import CLICKS, USERS, SpecWriter, api_process, build_data_dir
from tests.support.workers import run_cli

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def revoked_store(tmp_path: Path) -> Iterator[tuple[Path, dict[str, SpecWriter]]]:
    """30 users over 3 partitions (user i in partition i % 3), partition 1 revoked."""
    writers = build_data_dir(tmp_path, n_users=30, partitions=3)
    writers[CLICKS.name].write([("u9", {"url": "/9", "n": 9})], partition=1)
    for name in (USERS.name, CLICKS.name):
        assert writers[name].writer.set_revoked([1], True)
    yield tmp_path, writers


def _answers(get: Callable[[str], httpx.Response]) -> dict[str, int]:
    return {"held": get("/tables/users/rows/3").status_code,
            "unheld": get("/tables/users/rows/4").status_code,
            "nowhere": get("/tables/users/rows/99999").status_code}


def test_a_miss_while_partitions_are_not_held_is_503_not_absent(
        revoked_store: tuple[Path, dict[str, SpecWriter]]) -> None:
    data, writers = revoked_store
    with TestClient(create_app(str(data), None)) as c:
        assert _answers(c.get) == {"held": 200, "unheld": 503, "nowhere": 503}
        detail = c.get("/tables/users/rows/4").json()["detail"]
        assert "partitions 1 of public.users are not held" in detail
        assert c.post("/tables/users/lookup", json={"keys": [[3]]}).json()["rows"][0]["id"] == 3
        assert c.post("/tables/users/lookup", json={"keys": [[3], [4]]}).status_code == 503
        assert c.get("/tables/users/rows").status_code == 503  # a page without their rows
        # events of partition 0: partition 1 may hold newer events of the key (503)
        assert c.get("/streams/clicks/keys/u1/events").status_code == 503
        assert c.get("/streams/clicks/keys/u9/events").status_code == 503
        for name in (USERS.name, CLICKS.name):  # held again: answered as before
            assert writers[name].writer.set_revoked([1], False)
        assert _answers(c.get) == {"held": 200, "unheld": 200, "nowhere": 404}
        assert c.get("/tables/users/rows").status_code == 200
        assert c.get("/streams/clicks/keys/u9/events").json()["events"][0]["n"] == 9


def test_the_api_process_fast_path_says_so_too(
        revoked_store: tuple[Path, dict[str, SpecWriter]]) -> None:
    data, _ = revoked_store
    with api_process(data) as url, httpx.Client(base_url=url, timeout=10) as h:
        assert _answers(h.get) == {"held": 200, "unheld": 503, "nowhere": 503}


def test_python_reads_raise_instead_of_answering_absent(
        revoked_store: tuple[Path, dict[str, SpecWriter]]) -> None:
    """`Store` and its views (user code on a cluster worker's machine, or after a lost
    session) answered None / [] for keys of revoked partitions: "absent" where the store
    does not know."""
    data, writers = revoked_store
    with Store.open(data) as store:
        users, clicks = store.table("users"), store.stream("clicks")
        assert users.get(3)["id"] == 3  # a hit in a held partition is an answer
        for read in (lambda: users.get(4), lambda: users.get(99999),
                     lambda: users.get_many([3, 4]), lambda: users.scan(limit=5),
                     lambda: clicks.events("u9"), lambda: clicks.scan()):
            with pytest.raises(PartitionsNotHeld) as e:
                read()
            assert e.value.partitions == frozenset({1}) and e.value.exit_code == 3
        assert [r["id"] for r in users.get_many([3, 6])] == [3, 6]
        with pytest.raises(PartitionsNotHeld):  # events found in a held partition: the
            clicks.events("u1")  # revoked one may hold newer events of the key
        assert clicks.events("u1", held_only=True)
        # the partitions this store holds, asked for as such (what a cluster worker does)
        assert users.get(4, held_only=True) is None
        assert users.get_many([3, 4], held_only=True)[1] is None
        assert len(users.scan(held_only=True)) == 20
        assert clicks.events("u9", held_only=True) == []
        for name in (USERS.name, CLICKS.name):
            assert writers[name].writer.set_revoked([1], False)
        assert users.get(99999) is None and users.get(4)["id"] == 4
        assert len(users.scan()) == 30


def test_cli_get_and_scan_say_not_held_exit_3(
        revoked_store: tuple[Path, dict[str, SpecWriter]], tmp_path: Path) -> None:
    data, _ = revoked_store
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"""\
kafka: {{bootstrap.servers: '127.0.0.1:9'}}
store: {{path: '{data}'}}
tables:
  - name: users
    topic: users
    columns: {{id: int, name: string, score: double, born: date, seen: timestamp,
              tags: array<string>, blob: bytes, version: long, check: string}}
    primary_key: [id]
    key_format: json
    value_format: json
streams:
  - name: clicks
    topic: clicks
    columns: {{user_id: string, url: string, n: long}}
    key: [user_id]
    key_format: json
    value_format: json
""")
    held = run_cli("get", str(cfg), "users", "3")
    assert held.returncode == 0 and json.loads(held.stdout)["id"] == 3, held.stderr
    for args in (("get", "users", "4"), ("scan", "users"), ("get", "clicks", "u9"),
                 ("get", "clicks", "u1")):
        got = run_cli(args[0], str(cfg), *args[1:])
        assert got.returncode == 3, (args, got.stdout, got.stderr)
        assert "partitions 1 of public." in got.stderr and "not held" in got.stderr
        assert "Traceback" not in got.stderr and got.stdout == ""


def test_a_snapshot_taken_while_partitions_were_revoked_does_not_say_absent(
        revoked_store: tuple[Path, dict[str, SpecWriter]]) -> None:
    """A cluster worker's snapshot holds its own partitions: `?as_of=` answered 404 (and
    `Store.at(...).get` None) for the other workers' keys."""
    data, writers = revoked_store
    take_snapshot(data, "s1")
    with Store.open(data) as store:
        old = store.table("users", as_of="s1")
        assert old.get(3)["id"] == 3
        with pytest.raises(PartitionsNotHeld, match="in snapshot 's1'") as e:
            old.get(4)
        assert e.value.partitions == frozenset({1})
        assert old.get(4, held_only=True) is None
    with TestClient(create_app(str(data), None)) as c:
        assert c.get("/tables/users/rows/3?as_of=s1").status_code == 200
        missed = c.get("/tables/users/rows/4?as_of=s1")
        assert missed.status_code == 503 and "in snapshot 's1'" in missed.json()["detail"]
        assert c.post("/tables/users/lookup?as_of=s1", json={"keys": [[4]]}).status_code == 503
        assert c.get("/tables/users/rows?as_of=s1").status_code == 503


def test_a_diff_over_partitions_not_held_is_refused(
        revoked_store: tuple[Path, dict[str, SpecWriter]]) -> None:
    """Partition 1 revoked in one version and held in the other read as every row of it
    added (or removed): a diff that the topic's history never made."""
    data, writers = revoked_store
    take_snapshot(data, "revoked")
    for name in (USERS.name, CLICKS.name):
        assert writers[name].writer.set_revoked([1], False)
    take_snapshot(data, "held")
    with Store.open(data) as store:
        users = store.table("users")
        assert list(users.diff("held")) == []  # both hold every partition
        with pytest.raises(PartitionsNotHeld, match="in 'revoked'"):
            list(users.diff("revoked", "held"))
        # the partitions both hold: nothing changed there
        assert list(users.diff("revoked", "held", held_only=True)) == []
        assert list(store.stream("clicks").diff("revoked", held_only=True)) == []
    with TestClient(create_app(str(data), None)) as c:
        refused = c.get("/tables/users/diff?from=revoked&to=held")
        assert refused.status_code == 503, refused.text
        assert "partitions 1 of public.users" in refused.json()["detail"]
        assert c.get("/tables/users/diff?from=held").status_code == 200


def test_metrics_export_no_stale_copy_of_a_revoked_partition(
        revoked_store: tuple[Path, dict[str, SpecWriter]]) -> None:
    """Rows, offsets and counters of a revoked partition (another worker's, in a cluster)
    were exported like held ones: summed over the workers, they counted twice."""
    data, writers = revoked_store
    with TestClient(create_app(str(data), None)) as c:
        text = c.get("/metrics").text
        assert 'materializer_rows{relation="public.users",partition="0"} 10' in text
        assert 'materializer_rows{relation="public.users",partition="1"}' not in text
        assert 'materializer_next_offset{relation="public.users",partition="1"}' not in text
        assert 'materializer_partition_revoked{relation="public.users",partition="1"} 1' in text
        assert 'materializer_partition_revoked{relation="public.users",partition="0"}' not in text
        for name in (USERS.name, CLICKS.name):
            assert writers[name].writer.set_revoked([1], False)
        text = c.get("/metrics").text
        assert 'materializer_rows{relation="public.users",partition="1"} 10' in text
        assert "materializer_partition_revoked" not in text


def test_a_stream_key_in_a_held_and_a_revoked_partition_is_not_answered_in_part(
        tmp_path: Path) -> None:
    """A key's events in partitions 0 and 1, the newer ones in 1, which is revoked: the
    store answered partition 0's older events as the newest (200, no error)."""
    clicks = SpecWriter(str(tmp_path), CLICKS)
    clicks.write([("u1", {"url": "/old", "n": 1})], partition=0, ts=1_000)
    clicks.write([("u1", {"url": "/new", "n": 2})], partition=1, ts=2_000)
    assert clicks.writer.set_revoked([1], True)
    with Store.open(tmp_path) as store:
        with pytest.raises(PartitionsNotHeld):
            store.stream("clicks").events("u1", limit=1)
        assert [e["n"] for e in store.stream("clicks").events("u1", held_only=True)] == [1]
    with TestClient(create_app(str(tmp_path), None)) as c:
        assert c.get("/streams/clicks/keys/u1/events?limit=1").status_code == 503
    assert clicks.writer.set_revoked([1], False)
    with Store.open(tmp_path) as store:
        assert [e["n"] for e in store.stream("clicks").events("u1", limit=1)] == [2]

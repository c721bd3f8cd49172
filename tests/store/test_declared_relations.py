"""A relation the store keeps but the configuration `run` last started with no longer
declares (renamed, removed) stopped following its topic: readers refuse it, naming why,
rather than serve its last rows as current. Declared again, it is read again."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from materializer.api.app import create_app
from materializer.catalog.load import load_catalog_text
from materializer.errors import NotFound
from materializer.ingest.opening import open_relations
from materializer.specs import TableSpec
from materializer.store import Store
from tests.support.api import SpecWriter, columns

USERS = TableSpec(name="public.users", topic="t", columns=columns({"id": "int", "v": "string"},
                                                                  ["id"]),
                  key_columns=("id",), key_format="json", value_format="json")


def declare(tmp: Path, name: str) -> None:
    """What `run` does at start with a configuration declaring one table `name` on t."""
    text = (f"store:\n  path: {tmp / 'data'}\ntables:\n  - name: {name}\n    topic: t\n"
            "    columns: {id: int, v: string}\n    primary_key: [id]\n")
    open_relations(load_catalog_text(text, str(tmp / "t.yaml")), None)


def test_a_relation_no_longer_declared_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    SpecWriter(str(data), USERS).write([(1, {"v": "a"})])
    with Store.open(data) as store:  # no worker recorded anything yet: read as it is
        assert store.table("users").get(1) == {"id": 1, "v": "a"}
    declare(tmp_path, "customers")
    with Store.open(data) as store, pytest.raises(NotFound, match="not declared"):
        store.table("users")
    with TestClient(create_app(str(data), None)) as client:
        assert client.get("/tables/users/rows/1").status_code == 404
        assert [t["name"] for t in client.get("/tables").json()["tables"]] == \
            ["public.customers"]
    declare(tmp_path, "users")
    with Store.open(data) as store:
        assert store.table("users").get(1) == {"id": 1, "v": "a"}


def test_snapshots_and_diffs_leave_out_a_relation_no_longer_declared(tmp_path: Path) -> None:
    """A snapshot holds what the store serves at its instant: a relation no longer declared
    (its rows as of some earlier time) is left out, and a diff to the live store refuses it
    as the live read does (it answered the stale rows as live before)."""
    from materializer.versions.diff import iter_entries
    from materializer.versions.take import take_snapshot

    data = tmp_path / "data"
    w = SpecWriter(str(data), USERS)
    w.write([(1, {"v": "a"})])
    declare(tmp_path, "users")
    take_snapshot(data, "A")
    w.write([(1, {"v": "b"})])
    declare(tmp_path, "customers")
    m = take_snapshot(data, "B")
    assert sorted(m.relations) == ["public.customers"] and m.complete
    with pytest.raises(NotFound, match="not declared"):
        take_snapshot(data, "C", ["users"])
    with pytest.raises(NotFound, match="not declared"):
        list(iter_entries(data, "users", "A", None))
    with pytest.raises(NotFound, match="not declared when the snapshot was taken"):
        list(iter_entries(data, "users", "A", "B"))  # were all "removed": B does not know
    with TestClient(create_app(str(data), None)) as client:
        assert client.get("/tables/users/rows/1", params={"as_of": "A"}).json() == \
            {"id": 1, "v": "a"}
        assert client.get("/tables/users/rows/1", params={"as_of": "B"}).status_code == 404
        assert client.get("/tables/users/diff", params={"from": "A"}).status_code == 404
        r = client.post("/snapshots", json={"name": "D", "tables": ["users"]})
        assert r.status_code == 404 and "not declared" in r.json()["detail"]
    declare(tmp_path, "users")
    assert sorted(take_snapshot(data, "E").relations) == ["public.users"]
    assert [(e["diff_type"], e["changed"]) for e in iter_entries(data, "users", "A", None)] \
        == [("modified", ["v"])]


def test_a_view_kept_across_the_change_says_so_too(tmp_path: Path) -> None:
    """A view opened while the relation was declared (user code keeping it, the HTTP API of
    a `serve` started before the worker's restart) went on answering its last rows as
    current; it now refuses within CHECK_INTERVAL, and reads again once declared again."""
    from materializer.store.read import CHECK_INTERVAL
    from tests.support.workers import wait_until

    data = tmp_path / "data"
    SpecWriter(str(data), USERS).write([(1, {"v": "a"})])
    declare(tmp_path, "users")
    with Store.open(data) as store, TestClient(create_app(str(data), None)) as client:
        kept = store.table("users")
        assert kept.get(1) == {"id": 1, "v": "a"}
        assert client.get("/tables/users/rows/1").status_code == 200
        declare(tmp_path, "customers")

        def refused() -> bool:
            try:
                kept.get(1)
            except NotFound as e:
                return "not declared" in str(e)
            return False
        wait_until(refused, 10 * CHECK_INTERVAL + 5, "the kept view to refuse")
        wait_until(lambda: client.get("/tables/users/rows/1").status_code == 404, 5,
                   "the API to answer 404")
        assert "not declared" in client.get("/tables/users/rows/1").json()["detail"]
        declare(tmp_path, "users")
        wait_until(lambda: client.get("/tables/users/rows/1").status_code == 200, 5,
                   "the API to answer again")
        assert kept.get(1) == {"id": 1, "v": "a"}

"""The HTTP surface of versions, in process: ?as_of=, /snapshots, and paged diffs."""

from __future__ import annotations

import gc
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():  # starlette suggests httpx2; httpx is what is installed
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from materializer.api.app import create_app
from materializer.versions.diff import iter_entries
from materializer.versions.paths import drop_snapshot
from materializer.versions.take import take_snapshot
from tests.support.api import build_data_dir, user_row, user_row_json

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with snapshot A, then changes: 0, 3 removed, 1..29 step 4 modified, 500+
    added in users, one click added."""
    root = tmp_path_factory.mktemp("versions-http")
    writers = build_data_dir(root, n_users=60, partitions=3)
    take_snapshot(root, "A")
    users = writers["public.users"]
    for p in range(3):
        users.write([(i, None if i in (0, 3) else user_row(i, 1))
                     for i in [0, 3, *range(1, 30, 4)] if i % 3 == p], partition=p)
    users.write([(i, user_row(i)) for i in range(500, 520)], partition=0)
    writers["public.clicks"].write([("u1", {"url": "/new", "n": 9})])
    return root


@pytest.fixture(scope="module")
def client(data: Path) -> Iterator[TestClient]:
    with TestClient(create_app(str(data), None)) as c:
        yield c


def test_as_of_on_rows_lookup_scan_and_events(client: TestClient) -> None:
    assert client.get("/tables/users/rows/0", params={"as_of": "A"}).json() == user_row_json(0)
    assert client.get("/tables/users/rows/0").status_code == 404  # live: removed since
    assert client.get("/tables/users/rows/1").json() == user_row_json(1, 1)
    r = client.post("/tables/users/lookup", params={"as_of": "A"}, json={"keys": [1, 500]})
    assert r.json() == {"rows": [user_row_json(1), None]}
    rows, after = [], None
    while True:
        params: dict[str, Any] = {"as_of": "A", "limit": 25}
        if after:
            params["after"] = after
        page = client.get("/tables/users/rows", params=params).json()
        rows += page["rows"]
        after = page["next"]
        if after is None:
            break
    assert rows == [user_row_json(i) for i in range(60)]
    r = client.get("/streams/clicks/keys/u1/events", params={"as_of": "A", "limit": 1})
    assert r.json() == {"events": [{"user_id": "u1", "url": "/p4", "n": 4}]}


def test_absent_snapshot_is_404_with_the_names(client: TestClient) -> None:
    for r in (client.get("/tables/users/rows/1", params={"as_of": "B"}),
              client.post("/tables/users/lookup", params={"as_of": "B"}, json={"keys": [1]}),
              client.get("/tables/users/rows", params={"as_of": "B"}),
              client.get("/streams/clicks/keys/u1/events", params={"as_of": "B"}),
              client.get("/tables/users/diff", params={"from": "B"})):
        assert r.status_code == 404, r.text
        assert r.json()["snapshots"] == ["A"]
        assert "no snapshot named 'B' (snapshots: A)" in r.json()["detail"]


def test_diff_pages_are_the_whole_diff(client: TestClient, data: Path) -> None:
    want = list(iter_entries(data, "public.users", "A", None, json_form=True))
    assert [e["diff_type"] for e in want].count("removed") == 2
    assert [e["diff_type"] for e in want].count("added") == 20
    got, after, pages = [], None, 0
    while True:
        params: dict[str, Any] = {"from": "A", "limit": 4}
        if after:
            params["after"] = after
        r = client.get("/tables/users/diff", params=params)
        assert r.status_code == 200, r.text
        got += r.json()["diff"]
        pages += 1
        after = r.json()["next"]
        if after is None:
            break
    assert got == want and pages == -(-len(want) // 4)
    r = client.get("/streams/clicks/diff", params={"from": "A", "to": "A"})
    assert r.json() == {"diff": [], "next": None}
    r = client.get("/streams/clicks/diff", params={"from": "A"})
    assert [(e["diff_type"], e["value"]["url"]) for e in r.json()["diff"]] == [("added", "/new")]


def test_diff_rejects_what_does_not_fit(client: TestClient) -> None:
    assert client.get("/tables/users/diff").status_code == 400  # from is required
    r = client.get("/tables/users/diff", params={"from": "A", "after": "!!"})
    assert r.status_code == 400 and "malformed cursor" in r.json()["detail"]
    r = client.get("/tables/clicks/diff", params={"from": "A"})
    assert r.status_code == 404 and "/streams/clicks/diff" in r.json()["detail"]
    r = client.get("/tables/nope/diff", params={"from": "A"})
    assert r.status_code == 404 and "no table or stream named 'nope'" in r.json()["detail"]
    r = client.get("/tables/users/diff", params={"from": "A", "limit": 0})
    assert r.status_code == 400


def test_take_list_and_drop_snapshots(client: TestClient) -> None:
    r = client.post("/snapshots", json={"name": "api-1", "tables": ["users"]})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "api-1" and list(r.json()["relations"]) == ["public.users"]
    assert r.json()["relations"]["public.users"]["rows"] == 78
    assert client.get("/tables/users/rows/505", params={"as_of": "api-1"}).status_code == 200
    r = client.post("/snapshots", json={"name": "api-1"})
    assert r.status_code == 409 and "exists already" in r.json()["detail"]
    r = client.post("/snapshots", json={"name": "x", "tables": ["nope"]})
    assert r.status_code == 404 and "no table or stream named 'nope'" in r.json()["detail"]
    assert client.post("/snapshots", json={"name": "a/b"}).status_code == 400
    assert client.post("/snapshots", content=b"{").status_code == 400
    assert client.post("/snapshots", json={"name": "y", "tables": "users"}).status_code == 400
    # no table named, or a misspelt key: were snapshots of every table
    for body in ({"name": "y", "tables": None}, {"name": "y", "tables": []},
                 {"name": "y", "table": ["users"]}):
        r = client.post("/snapshots", json=body)
        assert r.status_code == 400 and "leave it out for all" in r.json()["detail"], body
    assert "unknown: 'table'" in r.json()["detail"]
    listed = client.get("/snapshots").json()["snapshots"]
    assert [m["name"] for m in listed] == ["A", "api-1"]
    assert listed[1]["relations"]["public.users"]["offsets"] == {"0": 44, "1": 23, "2": 23}
    assert client.delete("/snapshots/api-1").json() == {"dropped": "api-1"}
    r = client.delete("/snapshots/api-1")
    assert r.status_code == 404 and r.json()["snapshots"] == ["A"]
    r = client.get("/tables/users/rows/505", params={"as_of": "api-1"})
    assert r.status_code == 404 and r.json()["snapshots"] == ["A"]


def test_snapshot_endpoints_need_the_token(data: Path) -> None:
    with TestClient(create_app(str(data), "s3cret")) as c:
        assert c.get("/snapshots").status_code == 401
        assert c.post("/snapshots", json={"name": "t"}).status_code == 401
        assert c.get("/tables/users/diff", params={"from": "A"}).status_code == 401
        assert c.get("/tables/users/rows/1", params={"as_of": "A"}).status_code == 401
        ok = {"Authorization": "Bearer s3cret"}
        assert c.get("/tables/users/rows/1", params={"as_of": "A"}, headers=ok).json() \
            == user_row_json(1)


def _mapped(snapshot: str) -> bool:
    """Whether this process still maps a file of `snapshot` (dropped: deleted, space in use)."""
    with open("/proc/self/maps") as maps:
        return any(f"/snapshots/.drop-{snapshot}-" in line for line in maps)


def test_the_api_lets_go_of_dropped_snapshots(tmp_path: Path) -> None:
    """A scheduled snapshot the API read (`?as_of=`), pruned since, leaves this process at
    its next `?as_of=` read, so its disk space is freed: the views of the API's relation
    indexes kept it mapped before."""
    build_data_dir(tmp_path, n_users=30, partitions=3)
    for name in ("auto-1", "auto-2"):
        take_snapshot(tmp_path, name, scheduled=True)
    app = create_app(str(tmp_path), None)
    with TestClient(app) as c:
        for name in ("auto-1", "auto-2"):
            assert c.get("/tables/users/rows/1", params={"as_of": name}).status_code == 200
            assert c.get("/streams/clicks/keys/u1/events",
                         params={"as_of": name}).status_code == 200
        drop_snapshot(tmp_path, "auto-1")
        app.state.api.store._sweep_at = 0.0  # the store looks at most once a second
        assert c.get("/tables/users/rows/1", params={"as_of": "auto-2"}).status_code == 200
        gc.collect()
        assert not _mapped("auto-1")
        drop_snapshot(tmp_path, "auto-2")  # the last one read, then asked for again
        app.state.api.store._sweep_at = 0.0
        assert c.get("/tables/users/rows/1", params={"as_of": "auto-2"}).status_code == 404
        gc.collect()
        assert not _mapped("auto-2") and app.state.api.snapshot_indexes == {}


def test_snapshot_tables_are_names_never_options(tmp_path: Path) -> None:
    """`tables` of `POST /snapshots` reach the snapshot process as arguments: a "table"
    that is an option of it (`--keep 0` dropped every scheduled snapshot, the new one too,
    after a 201 with its manifest), holds a NUL (cut there: another table's snapshot) or a
    lone surrogate (a 500 and a traceback) is 404 as any name no relation has."""
    build_data_dir(tmp_path, n_users=6, partitions=1)
    take_snapshot(tmp_path, "auto-1", scheduled=True)
    with TestClient(create_app(str(tmp_path), None)) as c:
        for tables in (["users", "--scheduled", "--keep", "0"], ["-h"], ["users\x00"],
                       ["\ud800"], ["users", "--default-schema", "shop"]):
            body = json.dumps({"name": "x", "tables": tables})  # "\ud800" as an escape
            r = c.post("/snapshots", content=body, headers={"content-type": "application/json"})
            assert r.status_code == 404 and "no table or stream named" in r.json()["detail"], \
                (tables, r.text)
        assert [m["name"] for m in c.get("/snapshots").json()["snapshots"]] == ["auto-1"]
        r = c.post("/snapshots", json={"name": "x", "tables": ["users", "public.clicks"]})
        assert r.status_code == 201 and r.json()["scheduled"] is False, r.text
        assert list(r.json()["relations"]) == ["public.clicks", "public.users"]


def test_a_405_names_every_method_the_path_takes(client: TestClient) -> None:
    """Starlette named the methods of the first route matching the path only: `OPTIONS
    /snapshots` said `Allow: GET`, though POST takes a snapshot there."""
    for method, path, allow in (("OPTIONS", "/snapshots", "GET, HEAD, POST"),
                                ("PUT", "/snapshots", "GET, HEAD, POST"),
                                ("PUT", "/snapshots/A", "DELETE"),
                                ("DELETE", "/tables/users/rows/1", "GET, HEAD")):
        r = client.request(method, path)
        assert (r.status_code, r.headers.get("allow")) == (405, allow), (method, path)
    assert client.get("/nope").status_code == 404

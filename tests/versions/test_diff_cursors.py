"""A diff page's cursor (`GET /tables/{t}/diff?after=`, `/streams/{s}/diff`) that is not one
the API gave: a 400, as for scans, never a page. A forged one that is valid base64 (`zzz`)
answered an empty last page: "no more differences" when there were."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest

with warnings.catch_warnings():  # starlette suggests httpx2; httpx is what is installed
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from materializer.api.app import create_app
from materializer.versions.take import take_snapshot
from tests.support.api import build_data_dir, user_row

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("diff-cursors")
    writers = build_data_dir(root, n_users=30, partitions=2)
    take_snapshot(root, "A")
    for p in range(2):
        writers["public.users"].write([(i, user_row(i, 1)) for i in range(30) if i % 2 == p],
                                      partition=p)
    writers["public.clicks"].write([("u1", {"url": "/new", "n": 9}),
                                    ("u2", {"url": "/n2", "n": 1})])
    with TestClient(create_app(str(root), None)) as c:
        yield c


def _walk(client: TestClient, path: str, limit: int) -> list[Any]:
    got: list[Any] = []
    after = None
    while True:
        params: dict[str, Any] = {"from": "A", "limit": limit}
        if after:
            params["after"] = after
        r = client.get(path, params=params)
        assert r.status_code == 200, r.text
        got += r.json()["diff"]
        after = r.json()["next"]
        if after is None:
            return got


def test_the_cursors_given_walk_the_whole_diff(client: TestClient) -> None:
    whole = client.get("/tables/users/diff", params={"from": "A", "limit": 1000}).json()
    assert len(whole["diff"]) == 30 and _walk(client, "/tables/users/diff", 4) == whole["diff"]
    events = client.get("/streams/clicks/diff", params={"from": "A", "limit": 1000}).json()
    assert len(events["diff"]) == 2 and _walk(client, "/streams/clicks/diff", 1) == \
        events["diff"]


@pytest.mark.parametrize(("path", "forged"), [
    ("/tables/users/diff", "zzz"), ("/tables/users/diff", "AAAA"),
    ("/tables/users/diff", "AQ"), ("/streams/clicks/diff", "zzz"),
    ("/streams/clicks/diff", "AXUxAAAAAAAAAAAAAAAAAAAC"),  # "u1", offset 0, side 2
])
def test_a_forged_diff_cursor_is_a_400(client: TestClient, path: str, forged: str) -> None:
    r = client.get(path, params={"from": "A", "after": forged})
    assert r.status_code == 400, r.text
    assert "the cursor is not a position in the diff of" in r.json()["detail"]


def test_a_well_formed_stream_position_is_taken(client: TestClient) -> None:
    # "u1", offset 0, partition 0, side 1: a position `changes` can give, its event or not
    r = client.get("/streams/clicks/diff",
                   params={"from": "A", "after": "AXUxAAAAAAAAAAAAAAAAAAAB"})
    assert r.status_code == 200, r.text

"""What a paged scan (`GET /tables/{t}/rows?after=`) and a batch lookup promise while the
worker writes, as the README's "HTTP API" states it (pinned after probe h87, which checked
about 29,000 pages of scans against a model of the topic under a real worker applying
~400 upserts and deletes a second and found none of these broken):

- each page is read at its own moment, so a scan is not one snapshot: a row changed between
  two pages is answered as the later page reads it, a key inserted behind the cursor is not
  returned, one inserted ahead of it is, one deleted ahead of it is not;
- no key is returned twice (the cursor only moves forward), and a key present from the
  first page to the last is returned exactly once;
- a scan of a snapshot (`?as_of=`) is one state across all its pages.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():  # starlette suggests httpx2; httpx is what is installed
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from materializer.api.app import create_app
from materializer.versions.take import take_snapshot
from tests.support.api import USERS, build_data_dir, user_row

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _pages(c: TestClient, limit: int, between: Any = None, **params: Any
           ) -> list[dict[str, Any]]:
    """Every page of users, calling `between(page_number)` after each page but the last."""
    rows: list[dict[str, Any]] = []
    after = None
    n = 0
    while True:
        r = c.get("/tables/users/rows", params={"limit": limit, **params,
                                                **({"after": after} if after else {})})
        assert r.status_code == 200, r.text
        rows += r.json()["rows"]
        after = r.json()["next"]
        if after is None:
            return rows
        if between is not None:
            between(n)
        n += 1


def test_a_scan_under_writes_sees_each_page_at_its_own_moment(tmp_path: Path) -> None:
    writers = build_data_dir(tmp_path, n_users=30, partitions=3)  # user i in partition i % 3
    users = writers[USERS.name]

    def write(page: int) -> None:
        if page == 0:  # the cursor is past users 0..9
            users.write([(15, user_row(15, 1)), (3, None)], partition=0)
            users.write([(-1, user_row(-1)), (100, user_row(100))], partition=1)
            users.write([(20, None)], partition=2)

    with TestClient(create_app(str(tmp_path), None)) as c:
        rows = _pages(c, 10, write)
        ids = [r["id"] for r in rows]
        assert ids == sorted(set(ids))  # key order, no key twice
        # present throughout: returned once; 15 in the version its page read
        assert set(range(30)) - {20} <= set(ids)
        assert next(r for r in rows if r["id"] == 15)["version"] == 1
        assert 3 in ids  # deleted behind the cursor: it was returned before its delete
        assert 20 not in ids  # deleted ahead of the cursor
        assert -1 not in ids  # inserted behind the cursor
        assert 100 in ids  # inserted ahead of it
        # the same scan now: the state after the writes
        now = [r["id"] for r in _pages(c, 10)]
        assert now == sorted((set(range(30)) - {3, 20}) | {-1, 100})


def test_a_scan_of_a_snapshot_is_one_state_across_pages(tmp_path: Path) -> None:
    writers = build_data_dir(tmp_path, n_users=30, partitions=3)
    users = writers[USERS.name]
    take_snapshot(tmp_path, "before")
    with TestClient(create_app(str(tmp_path), None)) as c:
        def write(page: int) -> None:
            users.write([(25, user_row(25, 7)), (-5, user_row(-5))], partition=1)
            users.write([(26, None)], partition=2)

        rows = _pages(c, 7, write, as_of="before")
        assert [r["id"] for r in rows] == list(range(30))
        assert all(r["version"] == 0 for r in rows)

"""Page cursors that are not ours, and lookup-body integers past 64 bits, against a real
`serve` process.

A cursor is the base64url text of the last key of a page. One that is valid base64 but
not a key of the table under the page's prefix (forged, truncated, another table's or
prefix's) answered a page all the same: an empty last page (`zzz`: "the end of the rows")
or the first page again (`AAAA`: a client following `next` would never end). It is a 400
now; the cursors the API gives keep working, also from a `serve` started again.

`POST .../lookup` read an integer past 64 bits as a float (orjson): the 400 said "expected
long, got float" of what the client sent as an integer; it says the integer is out of
range for the column now."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from materializer.api.app import create_app
from materializer.api.keys import RelationIndex
from materializer.cluster.pages import local_page
from materializer.errors import UsageError
from materializer.store import Store
from tests.support.api import api_process, build_data_dir


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cursors") / "data"
    build_data_dir(path, n_users=50)
    return path


@pytest.fixture(scope="module")
def url(data: Path) -> Iterator[str]:
    with api_process(data) as base:
        yield base


def _page(url: str, table: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{url}/tables/{table}/rows", params=params, timeout=10)


def _walk(url: str, table: str, limit: int, **params: Any) -> tuple[list[Any], list[str]]:
    rows: list[Any] = []
    cursors: list[str] = []
    after = None
    while True:
        r = _page(url, table, limit=limit, **params, **({"after": after} if after else {}))
        assert r.status_code == 200, r.text
        rows += r.json()["rows"]
        after = r.json()["next"]
        if after is None:
            return rows, cursors
        cursors.append(after)


def test_the_cursors_given_walk_every_row_once(url: str) -> None:
    for table, n in (("public.users", 50), ("shop.orders", 28), ("public.tags", 36)):
        rows, _ = _walk(url, table, 7)
        whole = _page(url, table, limit=1000).json()["rows"]
        assert len(whole) == n and rows == whole, table
    rows, _ = _walk(url, "shop.orders", 2, prefix="5")
    assert [r["order_id"] for r in rows] == [1000, 1001, 1002, 1003, 1004]


@pytest.mark.parametrize("forged", [
    "zzz",              # past every key: was an empty last page
    "AA",               # a null key (no table stores one)
    "_w",               # 0xff
    "AAAA",             # before every key: was the first page again
    "AQ",               # a tag byte alone
    "AYAAAAAAAAAAAA",   # an int key and a stray byte
    "AoAAAAAAAAAA",     # a tag users' keys never have
])
def test_a_cursor_that_names_no_key_of_the_table_is_a_400(url: str, forged: str) -> None:
    r = _page(url, "public.users", limit=5, after=forged)
    assert r.status_code == 400, (forged, r.text)
    assert "cursor" in r.json()["detail"] and "`next`" in r.json()["detail"], r.text


def test_a_cursor_of_another_table_or_prefix_is_a_400(url: str) -> None:
    users = _page(url, "public.users", limit=3).json()["next"]
    r = _page(url, "shop.orders", limit=3, after=users)
    assert r.status_code == 400 and "not a position in shop.orders" in r.json()["detail"]
    under_5 = _page(url, "shop.orders", limit=2, prefix="5").json()["next"]
    assert _page(url, "shop.orders", limit=2, prefix="5", after=under_5).status_code == 200
    r = _page(url, "shop.orders", limit=2, prefix="6", after=under_5)
    assert r.status_code == 400 and "prefix (6,)" in r.json()["detail"], r.text
    tags = _page(url, "public.tags", limit=3).json()["next"]
    # the same key with its boolean byte 2 instead of 0 or 1: no key the API gives
    import base64
    raw = bytearray(base64.urlsafe_b64decode(tags + "=" * (-len(tags) % 4)))
    flag_at = raw.index(b"\x00\x00", 1) + 2 + 9 + 1  # after the tag text, the date
    assert raw[flag_at] in (0, 1)
    raw[flag_at] = 2
    bad = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    assert _page(url, "public.tags", limit=3, after=bad).status_code == 400


def test_a_cursor_keeps_working_in_an_api_started_again(data: Path, url: str) -> None:
    first = _page(url, "shop.orders", limit=10).json()
    with warnings.catch_warnings():  # starlette suggests httpx2; httpx is what is installed
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    with TestClient(create_app(str(data), None)) as again:  # a new app: no state shared
        r = again.get("/tables/shop.orders/rows", params={"limit": 10, "after": first["next"]})
    assert r.status_code == 200
    assert r.json()["rows"] == _page(url, "shop.orders", limit=1000).json()["rows"][10:20]


def test_the_cluster_page_refuses_a_forged_cursor(data: Path, url: str) -> None:
    issued = _page(url, "public.users", limit=4).json()["next"]
    with Store.open(data) as store:
        rel = RelationIndex(store).table("public.users")
        assert len(local_page(rel, [], 4, issued)["rows"]) == 4
        with pytest.raises(UsageError, match="cursor"):
            local_page(rel, [], 4, "zzz")


@pytest.mark.parametrize(("table", "key", "column", "kind"), [
    ("public.users", [2**64], "id", "int"),
    ("public.users", [-(2**64)], "id", "int"),
    ("shop.orders", [1, 2**64], "order_id", "long"),
    ("shop.orders", [1, -(2**63) - 1], "order_id", "long"),
    ("shop.orders", [1, 10**30], "order_id", "long"),
])
def test_a_lookup_integer_past_64_bits_is_out_of_range(url: str, table: str, key: list[int],
                                                       column: str, kind: str) -> None:
    body = ('{"keys": [[' + ", ".join(str(v) for v in key) + "]]}").encode()
    r = httpx.post(f"{url}/tables/{table}/lookup", content=body, timeout=10,
                   headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert f"{key[-1]} is out of range for {kind}" in detail and "float" not in detail, detail
    assert f"({column})" in detail or column in detail, detail


def test_a_lookup_float_and_exact_integers_are_read_as_before(url: str) -> None:
    r = httpx.post(f"{url}/tables/shop.orders/lookup", timeout=10,
                   json={"keys": [[1, 1000], [1, 1000.5], [2, 9223372036854775807]]})
    assert r.status_code == 400 and "got float" in r.json()["detail"], r.text
    r = httpx.post(f"{url}/tables/shop.orders/lookup", timeout=10,
                   json={"keys": [[1, 1000], [2, 9223372036854775807]]})
    assert r.status_code == 200 and r.json()["rows"][1] is None
    assert r.json()["rows"][0]["note"] == "1/1000"

"""The HTTP lookup API in process: every endpoint answers what the store holds (SPEC §7)."""

from __future__ import annotations

import base64
import re
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

with warnings.catch_warnings():  # starlette suggests httpx2; httpx is what is installed
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from materializer.api.app import create_app
from materializer.store import Store
from tests.support.api import CLICKS, ORDERS, TAGS, USERS, SpecWriter, build_data_dir, user_row

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
N_USERS = 200


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[str, dict[str, SpecWriter]]]:
    d = tmp_path_factory.mktemp("api-data")
    writers = build_data_dir(d, n_users=N_USERS, partitions=3)
    yield str(d), writers


@pytest.fixture(scope="module")
def client(data_dir: tuple[str, dict[str, SpecWriter]]) -> Iterator[TestClient]:
    with TestClient(create_app(data_dir[0], None, max_lookup_keys=50)) as c:
        yield c


@pytest.fixture(scope="module")
def store(data_dir: tuple[str, dict[str, SpecWriter]]) -> Store:
    return Store.open(data_dir[0])


# ----------------------------------------------------------------------------- /tables


def test_tables_lists_tables_and_streams_with_columns_and_keys(client: TestClient) -> None:
    r = client.get("/tables")
    assert r.status_code == 200
    by_name = {t["name"]: t for t in r.json()["tables"]}
    assert set(by_name) == {USERS.name, ORDERS.name, TAGS.name, CLICKS.name}
    assert by_name[CLICKS.name]["kind"] == "stream"
    orders = by_name[ORDERS.name]
    assert orders["kind"] == "table"
    assert orders["key"] == ["customer_id", "order_id"]
    assert orders["columns"] == [
        {"name": c.name, "type": str(c.type), "not_null": c.not_null} for c in ORDERS.columns]


# ------------------------------------------------------------------------- point gets


def test_every_row_is_what_the_store_holds(client: TestClient, store: Store) -> None:
    users = store.table("users")
    for i in range(N_USERS + 5):
        r = client.get(f"/tables/users/rows/{i}")
        want = users.get(i, json_form=True)
        if want is None:
            assert r.status_code == 404
            assert "no row" in r.json()["detail"]
        else:
            assert r.status_code == 200, r.text
            assert r.json() == want
    assert client.get("/tables/public.users/rows/7").json() == user_row(7) | {
        "born": "1907-01-02", "seen": "2020-09-13T12:26:40.007000Z"}


def test_composite_and_typed_keys(client: TestClient, store: Store) -> None:
    r = client.get("/tables/shop.orders/rows/3/1001")
    assert r.status_code == 200
    assert r.json() == store.table("shop.orders").get((3, 1001), json_form=True)
    assert r.json()["total"] == "3.10"
    tags = store.table("tags")
    for tag in ("a", "a/b", "ü %"):
        for flag in ("true", "false"):
            path = f"/tables/tags/rows/{quote(tag, safe='')}/2024-02-29/{flag}/-1.5"
            r = client.get(path)
            assert r.status_code == 200, (path, r.text)
            assert r.json() == tags.get((tag, "2024-02-29", flag == "true", -1.5),
                                        json_form=True)
    assert client.get("/tables/tags/rows/a/2024-02-29/true/2.250e0").status_code == 200
    assert client.get("/tables/tags/rows/a/2024-03-01/true/2.25").status_code == 404


@pytest.mark.parametrize("path", [
    "/tables/users/rows/x", "/tables/users/rows/1.0", "/tables/users/rows/1/2",
    "/tables/users/rows/", "/tables/users/rows/1/", "/tables/users/rows/99999999999",
    "/tables/users/rows/%20%201", "/tables/users/rows/%FF",
    "/tables/shop.orders/rows/3", "/tables/shop.orders/rows/3/x",
    "/tables/tags/rows/a/2024-02-30/true/1", "/tables/tags/rows/a/2024-02-29/yes/1",
    "/tables/tags/rows/a/2024-02-29/true/nan", "/tables/tags/rows/a/2024-02-29/true/1_0",
])
def test_a_key_that_does_not_fit_is_400(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 400, r.text
    assert r.json()["detail"]


@pytest.mark.parametrize("path", [
    "/tables/nope/rows/1", "/tables/..%2F..%2Fetc/rows/1", "/tables/clicks/rows/u1",
    "/tables/%00/rows/1", "/tables/a%2Fb/rows/1", "/streams/users/keys/1/events",
    "/streams/nope/keys/1/events", "/tables/nope/rows", "/tables/" + "x" * 500 + "/rows/1",
])
def test_unknown_table_is_404(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404, r.text
    assert "detail" in r.json()


def test_error_messages_do_not_name_the_data_directory(
        client: TestClient, data_dir: tuple[str, Any]) -> None:
    assert data_dir[0] not in client.get("/tables/nope/rows/1").text


def test_fast_path_answers_exactly_like_the_routed_endpoint(
        data_dir: tuple[str, Any]) -> None:
    paths = ["/tables/users/rows/5", "/tables/users/rows/x", "/tables/users/rows/1000",
             "/tables/shop.orders/rows/3/1001", "/tables/nope/rows/1",
             "/tables/tags/rows/a%2Fb/2024-01-01/true/2.25", "/tables/users/rows/5?x=1"]
    with TestClient(create_app(data_dir[0], None)) as fast, \
            TestClient(create_app(data_dir[0], None, fast_path=False)) as slow:
        for p in paths:
            a, b = fast.get(p), slow.get(p)
            assert (a.status_code, a.content, a.headers["content-type"]) == \
                (b.status_code, b.content, b.headers["content-type"]), p


# ----------------------------------------------------------------------------- lookup


def test_lookup_answers_in_the_order_asked(client: TestClient, store: Store) -> None:
    keys = [[5], [N_USERS + 1], 3, [0], [5]]
    r = client.post("/tables/users/lookup", json={"keys": keys})
    assert r.status_code == 200
    users = store.table("users")
    assert r.json() == {"rows": [users.get(5, json_form=True), None,
                                 users.get(3, json_form=True), users.get(0, json_form=True),
                                 users.get(5, json_form=True)]}
    r = client.post("/tables/shop.orders/lookup",
                    json={"keys": [[7, 1006], [7, 999], [1, 1000]]})
    assert [row and row["note"] for row in r.json()["rows"]] == ["7/1006", None, "1/1000"]
    assert client.post("/tables/users/lookup", json={"keys": []}).json() == {"rows": []}


def test_lookup_past_max_lookup_keys_is_413(client: TestClient) -> None:
    assert client.post("/tables/users/lookup",
                       json={"keys": [[i] for i in range(50)]}).status_code == 200
    r = client.post("/tables/users/lookup", json={"keys": [[i] for i in range(51)]})
    assert r.status_code == 413
    assert "max_lookup_keys" in r.json()["detail"]
    huge = b'{"keys": [' + b",".join([b"[1]"] * 200_000) + b"]}"
    assert client.post("/tables/users/lookup", content=huge).status_code == 413


@pytest.mark.parametrize("body", [
    b"", b"not json", b"[1, 2]", b'{"key": [[1]]}', b'{"keys": 1}', b'{"keys": [["x"]]}',
    b'{"keys": [[1, 2]]}', b'{"keys": [[1.5]]}', b'{"keys": [[true]]}', b'{"keys": [{}]}',
    b'{"keys": [[null, 1, 2]]}', b'{"keys": [[1e400]]}', b'{"keys": [["\\ud800"]]}',
    b"[" * 100_000,
])
def test_malformed_lookup_is_400(client: TestClient, body: bytes) -> None:
    r = client.post("/tables/users/lookup", content=body)
    assert r.status_code == 400, (body[:40], r.text)


def test_lookup_of_unknown_table_is_404(client: TestClient) -> None:
    assert client.post("/tables/nope/lookup", json={"keys": [[1]]}).status_code == 404


# ------------------------------------------------------------------------------- scan


def _walk(client: TestClient, url: str, limit: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        q = f"{url}{'&' if '?' in url else '?'}limit={limit}" + (f"&after={after}" if after else "")
        r = client.get(q)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["rows"]) <= limit
        rows += page["rows"]
        after = page["next"]
        if after is None:
            return rows
        assert re.fullmatch(r"[A-Za-z0-9_-]+", after)
        assert len(page["rows"]) == limit


@pytest.mark.parametrize("limit", [1, 7, 200, 1000])
def test_paging_returns_every_row_once_in_key_order(client: TestClient, store: Store,
                                                     limit: int) -> None:
    rows = _walk(client, "/tables/users/rows", limit)
    assert [r["id"] for r in rows] == list(range(N_USERS))
    assert rows == store.table("users").scan(json_form=True)


def test_prefix_pages(client: TestClient, store: Store) -> None:
    rows = _walk(client, "/tables/shop.orders/rows?prefix=5", 2)
    assert [(r["customer_id"], r["order_id"]) for r in rows] == [(5, 1000 + i) for i in range(5)]
    assert _walk(client, "/tables/shop.orders/rows?prefix=5&prefix=1003", 10) == [
        store.table("shop.orders").get((5, 1003), json_form=True)]
    assert _walk(client, "/tables/shop.orders/rows?prefix=99", 10) == []
    tags = _walk(client, f"/tables/tags/rows?prefix={quote('a/b', safe='')}&prefix=2024-01-01", 4)
    assert [(t["tag"], t["day"], t["flag"], t["weight"]) for t in tags] == [
        ("a/b", "2024-01-01", f, w) for f in (False, True) for w in (-1.5, 0.0, 2.25)]
    default = client.get("/tables/shop.orders/rows").json()
    assert len(default["rows"]) == 28 and default["next"] is None


@pytest.mark.parametrize("query", [
    "limit=0", "limit=1001", "limit=x", "limit=-1", "after=***", "after=" + "A" * 701,
    "after=" + "A" * 690, "prefix=x", "prefix=1&prefix=2",
])
def test_bad_scan_arguments_are_400(client: TestClient, query: str) -> None:
    r = client.get(f"/tables/users/rows?{query}")
    assert r.status_code == 400, (query, r.text)


def test_a_well_formed_cursor_that_names_no_key_is_400(client: TestClient) -> None:
    for raw in (b"\x00", b"\xff" * 20, b"\x01"):  # once pages: empty, or the first again
        cursor = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        assert client.get(f"/tables/users/rows?after={cursor}").status_code == 400


# ---------------------------------------------------------------------------- streams


def test_stream_events_newest_first(client: TestClient, store: Store) -> None:
    r = client.get("/streams/clicks/keys/u1/events?limit=3")
    assert r.status_code == 200
    assert r.json() == {"events": store.stream("clicks").events("u1", 3, json_form=True)}
    assert [e["n"] for e in r.json()["events"]] == [4, 3, 2]
    assert client.get("/streams/public.clicks/keys/u1/events").json()["events"][-1]["n"] == 0
    assert client.get("/streams/clicks/keys/u2/events").json() == {"events": [None]}
    assert client.get("/streams/clicks/keys/u%2F3/events").json()["events"][0]["url"] == "/x"
    assert client.get("/streams/clicks/keys/zz/events").json() == {"events": []}
    assert client.get("/streams/clicks/keys/u1/events?limit=0").status_code == 400
    assert client.get("/streams/clicks/keys/u1/u2/events").status_code == 400


def test_token_guards_every_data_endpoint(data_dir: tuple[str, Any]) -> None:
    token = "s3cret-token"
    with TestClient(create_app(data_dir[0], token)) as c:
        guarded = [("GET", "/tables"), ("GET", "/tables/users/rows/1"),
                   ("GET", "/tables/users/rows"), ("GET", "/streams/clicks/keys/u1/events"),
                   ("POST", "/tables/users/lookup"), ("GET", "/metrics"),
                   ("GET", "/tables/nope/rows/1"), ("GET", "/whatever")]
        for method, path in guarded:
            for headers in ({}, {"Authorization": "Bearer wrong"},
                            {"Authorization": token}, {"Authorization": f"Basic {token}"}):
                r = c.request(method, path, headers=headers, json={"keys": [[1]]})
                assert r.status_code == 401, (method, path, headers)
                assert r.headers["www-authenticate"] == "Bearer"
                assert token not in r.text
        ok = {"Authorization": f"Bearer {token}"}
        assert c.get("/tables/users/rows/1", headers=ok).status_code == 200
        assert c.get("/tables/users/rows/1", headers={"authorization": f"bearer {token}"}
                     ).status_code == 200
        assert c.post("/tables/users/lookup", headers=ok, json={"keys": [[1]]}).status_code == 200
        assert c.get("/metrics", headers=ok).status_code == 200
        for open_path in ("/healthz", "/readyz", "/openapi.json"):
            assert c.get(open_path).status_code in (200, 503)
        spec = c.get("/openapi.json").json()
        assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        assert spec["paths"]["/tables"]["get"]["security"] == [{"bearer": []}]
        assert "security" not in spec["paths"]["/healthz"]["get"]


# ---------------------------------------------------------------------------- OpenAPI


def test_openapi_describes_every_endpoint_and_its_responses(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    want = {"/tables": {"get"}, "/tables/{table}/rows/{key}": {"get"},
            "/tables/{table}/lookup": {"post"}, "/tables/{table}/rows": {"get"},
            "/streams/{stream}/keys/{key}/events": {"get"}, "/healthz": {"get"},
            "/snapshots": {"get", "post"}, "/snapshots/{name}": {"delete"},
            "/tables/{table}/diff": {"get"}, "/streams/{stream}/diff": {"get"},
            "/readyz": {"get"}, "/metrics": {"get"}, "/cluster": {"get"}}
    assert {p: set(ops) for p, ops in spec["paths"].items()} == want
    for path, ops in spec["paths"].items():
        for op in ops.values():
            content = (op["responses"].get("200") or op["responses"]["201"])["content"]
            assert any("schema" in c for c in content.values()), path
    lookup = spec["paths"]["/tables/{table}/lookup"]["post"]
    assert "keys" in lookup["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert {"400", "404", "413"} <= set(lookup["responses"])
    schemas = spec["components"]["schemas"]
    assert {"RowsPage", "LookupResponse", "TablesResponse", "EventsResponse"} <= set(schemas)

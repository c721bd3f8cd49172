"""`HEAD` answered 405 on every path, `/healthz` and `/readyz` included: load balancers and
uptime checkers probe with it. Now `HEAD` of a path is its `GET` without the body (the
same status and headers, `Content-Length` included), in the edge's fast paths and the
routed endpoints alike; a 405's `Allow` lists HEAD beside GET."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import httpx
import pytest

with warnings.catch_warnings():  # starlette suggests httpx2; httpx is what is installed
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from materializer.api.app import create_app
from materializer.status import write_status
from tests.support.api import api_process, build_data_dir

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PATHS = ["/healthz", "/readyz", "/tables", "/tables/users/rows/1", "/tables/users/rows/999",
         "/tables/nope/rows/1", "/tables/shop.orders/rows/1/1000", "/tables/users/rows?limit=2",
         "/tables/users/rows/1?as_of=nope", "/streams/clicks/keys/u1/events", "/snapshots",
         "/cluster", "/openapi.json", "/no/such/path"]


def _like_get(c: TestClient | httpx.Client, path: str, **kw: str) -> int:
    g, h = c.get(path, headers=kw), c.head(path, headers=kw)
    assert h.status_code == g.status_code, path
    assert h.content == b"", path
    for name in ("content-type", "content-length", "server"):
        assert h.headers.get(name) == g.headers.get(name), (path, name)
    assert int(h.headers["content-length"]) == len(g.content), path
    return h.status_code


@pytest.mark.parametrize("fast_path", [True, False])
def test_head_answers_as_get_without_the_body(tmp_path: Path, fast_path: bool) -> None:
    build_data_dir(tmp_path, n_users=5)
    with TestClient(create_app(str(tmp_path), None, fast_path=fast_path)) as c:
        codes = {p: _like_get(c, p) for p in PATHS}
        assert codes["/healthz"] == 200 and codes["/readyz"] == 503  # no worker status yet
        assert codes["/tables/users/rows/1"] == 200 and codes["/tables/users/rows/999"] == 404
        assert codes["/tables/nope/rows/1"] == 404 and codes["/no/such/path"] == 404
        assert codes["/tables/shop.orders/rows/1/1000"] == 200
        write_status(tmp_path, {"updated_at": time.time(), "caught_up": True, "partitions": []})
        assert _like_get(c, "/readyz") == 200
        counts = c.app.state.api.latency.snapshot()[1]  # recorded per endpoint, as GETs
        assert counts[("/healthz", 200)] == 2 and counts[("/readyz", 200)] == 2
        assert counts[("/tables/{table}/rows/{key}", 200)] >= 4


def test_head_needs_the_token_where_get_does(tmp_path: Path) -> None:
    build_data_dir(tmp_path, n_users=5)
    with TestClient(create_app(str(tmp_path), "tok")) as c:
        assert _like_get(c, "/healthz") == 200  # open, as for GET
        assert _like_get(c, "/readyz") == 503
        assert _like_get(c, "/tables/users/rows/1") == 401
        assert c.head("/tables/users/rows/1").headers["www-authenticate"] == "Bearer"
        assert _like_get(c, "/tables/users/rows/1", authorization="Bearer tok") == 200


def test_head_of_a_post_only_path_is_405_and_allow_names_head(tmp_path: Path) -> None:
    build_data_dir(tmp_path, n_users=5)
    with TestClient(create_app(str(tmp_path), None)) as c:
        r = c.head("/tables/users/lookup")
        assert (r.status_code, r.headers["allow"], r.content) == (405, "POST", b"")
        r = c.post("/healthz")
        assert (r.status_code, r.headers["allow"]) == (405, "GET, HEAD")
        r = c.request("OPTIONS", "/snapshots")
        assert (r.status_code, r.headers["allow"]) == (405, "GET, HEAD, POST")


def test_the_openapi_description_is_unchanged(tmp_path: Path) -> None:
    with TestClient(create_app(str(tmp_path), None)) as c:
        paths = c.get("/openapi.json").json()["paths"]
        assert set(paths["/healthz"]) == {"get"} and set(paths["/readyz"]) == {"get"}
        assert not any("head" in ops for ops in paths.values())


def test_a_served_process_answers_head(tmp_path: Path) -> None:
    build_data_dir(tmp_path, n_users=5)
    with api_process(tmp_path) as url, httpx.Client(base_url=url, timeout=10) as c:
        # one connection throughout: a body sent after a HEAD's headers would be read as
        # the start of the next answer
        for path in ("/healthz", "/readyz", "/tables/users/rows/1", "/tables/users/rows/999",
                     "/tables", "/metrics", "/no/such/path"):
            if path == "/metrics":  # its body changes with every request: the headers only
                h = c.head(path)
                assert (h.status_code, h.content) == (200, b"")
                assert h.headers["content-type"].startswith("text/plain")
                continue
            _like_get(c, path)
        assert c.head("/healthz").status_code == 200 and c.get("/healthz").json() == {
            "status": "ok"}

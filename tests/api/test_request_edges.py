"""Requests at the edges of the HTTP API, against a real `serve` process: dot-segment keys
(`%2E`, `%2E%2E`) from plain HTTP and from `materializer.Client`, a `prefix` that is not
UTF-8, a `%2F` inside a relation name, and request bodies cut short (400, no traceback)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from materializer import Client
from materializer.specs import StreamSpec, TableSpec
from tests.support.api import SpecWriter, api_process, columns
from tests.support.workers import wait_until

WORDS = TableSpec(
    name="edge.words", topic="words", columns=columns({"w": "string", "v": "string"}, ["w"]),
    key_columns=("w",), key_format="json", value_format="json")
PAIRS = TableSpec(
    name="edge.pairs", topic="pairs",
    columns=columns({"a": "string", "b": "string", "v": "string"}, ["a", "b"]),
    key_columns=("a", "b"), key_format="json", value_format="json")
SAYS = StreamSpec(
    name="edge.says", topic="says", columns=columns({"w": "string", "v": "string"}),
    key_columns=("w",), key_format="json", value_format="json")
KEYS = [".", "..", "", "x", "a b", "\ufffd", "a/b"]


@dataclass
class Api:
    url: str
    port: int
    log: Path

    def raw(self, request: bytes, close: bool = False) -> bytes:
        """One request as bytes on a fresh connection; its answer (b"" if none came)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(request)
            if close:
                return b""
            out = b""
            while chunk := s.recv(65536):
                out += chunk
            return out

    def requests(self, endpoint: str, code: int) -> int:
        """`materializer_api_requests_total` of one endpoint and status code."""
        line = f'materializer_api_requests_total{{endpoint="{endpoint}",code="{code}"}} '
        for got in httpx.get(f"{self.url}/metrics", timeout=10).text.splitlines():
            if got.startswith(line):
                return int(float(got[len(line):]))
        return 0


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("request-edges")
    data = tmp / "data"
    SpecWriter(str(data), WORDS).write([(k, {"v": f"row of {k!r}"}) for k in KEYS])
    SpecWriter(str(data), PAIRS).write([({"a": "x", "b": b}, {"v": f"x/{b}"})
                                        for b in (".", "..", "")])
    SpecWriter(str(data), SAYS).write([(k, {"v": f"{k!r} said {i}"}) for i in range(2)
                                       for k in (".", "..")])
    log = tmp / "api.log"
    with api_process(data, log=log) as url:
        yield Api(url, int(url.rsplit(":", 1)[1]), log)


def _row(key: str) -> dict[str, str]:
    return {"w": key, "v": f"row of {key!r}"}


def _get(api: Api, path: str, **kw: Any) -> httpx.Response:
    return httpx.get(api.url + path, timeout=10, **kw)


# ------------------------------------------------------------------- dot segments


def test_dot_segment_keys_sent_percent_encoded(api: Api) -> None:
    for path, key in (("%2E", "."), ("%2e", "."), ("%2E%2E", ".."), ("", ""), ("x", "x"),
                      ("a%2Fb", "a/b")):
        r = _get(api, f"/tables/edge.words/rows/{path}")
        assert (r.status_code, r.json()) == (200, _row(key)), path
    r = _get(api, "/tables/edge.pairs/rows/x/%2E%2E")
    assert r.json() == {"a": "x", "b": "..", "v": "x/.."}
    r = _get(api, "/streams/edge.says/keys/%2E/events")
    assert r.json()["events"] == [{"w": ".", "v": "'.' said 1"}, {"w": ".", "v": "'.' said 0"}]


def test_the_client_sends_dot_segments_percent_encoded(api: Api) -> None:
    with Client(api.url, retry_for=5) as client:
        words = client.table("edge.words")
        for key in KEYS:
            assert words.get(key) == _row(key), key
        assert words.get("nope") is None
        assert words.get_many([".", ".."]) == [_row("."), _row("..")]
        pairs = client.table("edge.pairs")
        for b in (".", "..", ""):
            assert pairs.get(("x", b)) == {"a": "x", "b": b, "v": f"x/{b}"}, b
        says = client.stream("edge.says")
        assert says.events(".", limit=1) == [{"w": ".", "v": "'.' said 1"}]
        assert says.events("..", limit=1) == [{"w": "..", "v": "'..' said 1"}]


# ------------------------------------------------------------------ prefix, names


def test_a_prefix_that_is_not_utf8_is_refused(api: Api) -> None:
    assert _get(api, "/tables/edge.words/rows/%ff").status_code == 400
    for bad in ("%ff", "%C3", "%ED%A0%80"):
        r = _get(api, f"/tables/edge.words/rows?prefix={bad}")
        assert r.status_code == 400, (bad, r.text)
        assert "not UTF-8" in r.json()["detail"]
    r = _get(api, "/tables/edge.words/rows?prefix=%EF%BF%BD")  # U+FFFD itself: its row
    assert r.json()["rows"] == [_row("\ufffd")]
    r = _get(api, "/tables/edge.words/rows?prefix=a+b&limit=5")  # `+` is a space
    assert r.json()["rows"] == [_row("a b")]
    r = _get(api, "/tables/edge.pairs/rows?limit=5&prefix=x&prefix=%2E%2E")
    assert r.json()["rows"] == [{"a": "x", "b": "..", "v": "x/.."}]


def test_a_relation_name_is_read_from_the_path_as_sent(api: Api) -> None:
    for path in ("/tables/edge.words%2Frows%2Fa%2Fb/rows/x",  # not row x of edge.words
                 "/tables/edge.words%2Frows%2Fa/rows/x?as_of=s",
                 "/tables/edge.words%2Frows",
                 "/streams/edge.says%2Fkeys%2Fq/keys/%2E/events",
                 "/tables/edge.words%2Fdiff?from=s"):
        r = _get(api, path)
        assert r.status_code == 404, (path, r.text)
    r = httpx.post(f"{api.url}/tables/edge.words%2Flookup", json={"keys": [["x"]]}, timeout=10)
    assert r.status_code == 404, r.text
    assert _get(api, "/tables/edge%2Ewords/rows/x").json() == _row("x")  # a name, encoded


# --------------------------------------------------------------------------- bodies


def test_a_body_cut_short_is_a_400_without_a_traceback(api: Api) -> None:
    head = (b"Host: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
    before = api.requests("/tables/{table}/lookup", 400)
    for path in (b"/tables/edge.words/lookup", b"/snapshots"):
        answer = api.raw(b"POST " + path + b" HTTP/1.1\r\n" + head)
        status = answer.split(b"\r\n", 1)[0]
        assert status.startswith(b"HTTP/1.1 400") or not answer, (path, answer[:300])
    # a body shorter than its Content-Length, then the client gone
    api.raw(b"POST /tables/edge.words/lookup HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
            b"Content-Type: application/json\r\n\r\n{\"keys\"", close=True)
    wait_until(lambda: api.requests("/tables/{table}/lookup", 400) >= before + 2, 10,
               "the API to count both lookups cut short")
    assert api.requests("/tables/{table}/lookup", 500) == 0
    log = api.log.read_text(errors="replace")
    assert "Traceback" not in log and "ClientDisconnect" not in log, log[-3000:]
    r = httpx.post(f"{api.url}/tables/edge.words/lookup", json={"keys": [["."]]}, timeout=10)
    assert r.json() == {"rows": [_row(".")]}

"""`materializer.Client` without a broker: key and row conversions, owner choice, retries,
errors. (Against a real cluster: tests/cluster/test_routing.py.)"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from materializer import Client
from materializer.client import ClusterUnavailable, Schema
from materializer.cluster.partitioning import murmur2_partition
from materializer.columns import parse_type
from materializer.errors import AmbiguousKeyError, NotFound, UsageError, no_row_detail
from tests.support.fake_http import send_json

COLUMNS = {"day": "date", "at": "timestamp", "price": "decimal(10,2)", "blob": "bytes",
           "ok": "boolean", "n": "long"}


class Fake:
    """Two fake workers' answers, scripted per path; records what was asked where."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, str, str]] = []
        self.unavailable = 0
        self.ports: list[int] = []

    def handler(self, index: int) -> type[BaseHTTPRequestHandler]:
        fake = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, status: int, body: Any) -> None:
                send_json(self, status, body)

            def do_GET(self) -> None:  # noqa: N802
                fake.asked.append((index, "GET", self.path))
                if self.path == "/cluster":
                    self._send(200, fake.cluster())
                elif self.path == "/tables":
                    self._send(200, {"tables": [{"name": "s.t", "kind": "table", "key": ["n"],
                                                 "columns": [{"name": c, "type": t}
                                                             for c, t in COLUMNS.items()]}]})
                elif fake.unavailable:
                    fake.unavailable -= 1
                    self._send(503, {"detail": "rebalancing"})
                elif self.path.startswith("/tables/s.t/rows/"):
                    n = int(self.path.rsplit("/", 1)[1])
                    if n == 404:
                        self._send(404, {"detail": no_row_detail("s.t")})
                    elif n == 409:
                        self._send(409, {"detail": "s.t: key 409 is held by partitions 0 "
                                                   "and 2: ..."})
                    else:
                        self._send(200, row(n))
                else:
                    self._send(400, {"detail": "bad key"})

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                fake.asked.append((index, "POST", json.dumps(body["keys"])))
                self._send(200, {"rows": [row(k[0]) for k in body["keys"]]})
        return H

    def cluster(self) -> dict[str, Any]:
        urls = [f"http://127.0.0.1:{p}" for p in self.ports]
        return {"standalone": False, "self": "w0",
                "members": [{"id": f"w{i}", "url": u, "live": True} for i, u in enumerate(urls)],
                "relations": {"s.t": {"partitions": 4, "partitioner": "murmur2",
                                      "key_format": "long", "exact_keys": True,
                                      "owners": {"0": "w0", "1": "w1", "2": "w0", "3": "w1"}}}}


def row(n: int) -> dict[str, Any]:
    return {"n": n, "day": "2024-02-29", "at": "2024-02-29T12:00:00.5Z", "price": "1.50",
            "blob": "AAE=", "ok": True}


@pytest.fixture
def fake() -> Iterator[Fake]:
    f = Fake()
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), f.handler(i)) for i in range(2)]
    f.ports = [s.server_address[1] for s in servers]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    yield f
    for s in servers:
        s.shutdown()
        s.server_close()


def owner(n: int) -> int:
    return murmur2_partition(n.to_bytes(8, "big", signed=True), 4) % 2


def test_rows_come_back_as_store_gives_them_and_keys_go_to_their_owner(fake: Fake) -> None:
    with Client(f"http://127.0.0.1:{fake.ports[0]}") as c:
        t = c.table("t")  # unqualified
        got = t.get(7)
        assert got == {"n": 7, "day": dt.date(2024, 2, 29), "price": decimal.Decimal("1.50"),
                       "at": dt.datetime(2024, 2, 29, 12, 0, 0, 500000, tzinfo=dt.UTC),
                       "blob": b"\x00\x01", "ok": True}
        assert t.get(7, json_form=True) == row(7)
        assert t.get(404) is None
        with pytest.raises(AmbiguousKeyError, match="held by partitions 0 and 2"):
            t.get(409)  # the owner holds it twice: said so, never a miss or a retry
        gets = [(i, p) for i, m, p in fake.asked if m == "GET" and "/rows/" in p]
        assert gets[0] == (owner(7), "/tables/s.t/rows/7")
        keys = list(range(20))
        assert [r["n"] for r in t.get_many(keys)] == keys  # type: ignore[index]
        posts = [(i, json.loads(k)) for i, m, k in fake.asked if m == "POST"]
        assert sorted(k[0] for _, ks in posts for k in ks) == keys
        assert all(owner(k[0]) == i for i, ks in posts for k in ks)  # split by owner
        with pytest.raises(UsageError, match="does not fit"):
            t.get("x")
        with pytest.raises(NotFound, match="no table or stream named 'nope'"):
            c.table("nope")
        with pytest.raises(UsageError, match="s.t is a table"):
            c.stream("s.t")


def test_a_rebalance_is_retried_and_a_dead_cluster_is_reported(fake: Fake) -> None:
    with Client(f"http://127.0.0.1:{fake.ports[0]}", retry_for=5) as c:
        fake.unavailable = 2
        assert c.table("s.t").get(3)["n"] == 3  # type: ignore[index]
        assert c.refreshes >= 3  # the first read, then once per 503
    with Client("http://127.0.0.1:9", retry_for=0.3) as c, \
            pytest.raises(ClusterUnavailable, match="no worker answered"):
        c.table("s.t")


def test_key_texts_follow_the_key_text_rules() -> None:
    from materializer.client_relations import _Relation

    schema = Schema("s.k", "table", {c: parse_type(t)[0] for c, t in COLUMNS.items()},
                    ("day", "ok", "blob", "price"))
    rel = _Relation.__new__(_Relation)
    _Relation.__init__(rel, None, schema)  # type: ignore[arg-type]
    stored = rel.stored_key((dt.date(2024, 1, 2), False, b"a/b", decimal.Decimal("2.5")))
    assert rel.texts(stored) == ["2024-01-02", "false", "YS9i", "2.50"]
    assert rel.path_key(rel.stored_key(("2024-01-02", True, "YS9i", "2.5"))) == \
        "2024-01-02/true/YS9i/2.50"

"""`materializer.Client`'s first read of the membership and the relations (at the first
`table`/`stream`) is tried again, with backoff, for `retry_for` seconds while no worker
answers, as every request is: it raised `ClusterUnavailable` at once before (left item
of probe h100), so a client started during a worker's restart failed its first lookup."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from materializer import Client
from materializer.client import ClusterUnavailable
from materializer.devbroker import free_port
from materializer.errors import UsageError
from tests.support.fake_http import send_json, serving


class Starting(BaseHTTPRequestHandler):
    """A standalone worker serving table t that answers 503 (starting) to its first three
    reads of the membership, then serves."""

    lock = threading.Lock()
    refused = 0

    def log_message(self, *a: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/cluster":
            with self.lock:
                cls = type(self)
                if cls.refused < 3:
                    cls.refused += 1
                    send_json(self, 503, {"detail": "starting"})
                    return
            send_json(self, 200, {"standalone": True})
        elif self.path == "/tables":
            send_json(self, 200, {"tables": [{
                "name": "public.t", "kind": "table", "key": ["k"],
                "columns": [{"name": "k", "type": "long"}, {"name": "v", "type": "string"}]}]})
        elif self.path.endswith("/rows/1"):
            send_json(self, 200, {"k": 1, "v": "one"})
        else:
            send_json(self, 404, {"detail": "public.t: no row for this key"})


class WrongToken(BaseHTTPRequestHandler):
    def log_message(self, *a: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        send_json(self, 401, {"detail": "bad token"})


def test_the_first_read_waits_for_a_worker_that_is_starting() -> None:
    with serving(Starting) as url, Client(url, retry_for=10, timeout=2) as c:
        assert c.table("t").get(1) == {"k": 1, "v": "one"}
        assert Starting.refused == 3


def test_no_worker_fails_after_retry_for_not_at_once() -> None:
    away = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    with pytest.raises(ClusterUnavailable, match="no worker answered.*tried for 2"), \
            Client(away, retry_for=2, timeout=1) as c:
        c.table("t")
    took = time.monotonic() - started
    assert 1.7 <= took < 4, took


def test_a_refused_token_is_not_retried() -> None:
    with serving(WrongToken) as url, Client(url, retry_for=10, timeout=2) as c:
        started = time.monotonic()
        with pytest.raises(UsageError, match="refused the token"):
            c.table("t")
        assert time.monotonic() - started < 2

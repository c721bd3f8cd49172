"""`Client.get` answers None only for a key the worker says it holds no row for.

Found by probe h61: every 404 was None, also a worker's "no table or stream named ..."
(a worker running another declaration, during a rolling change of the file): a key the
topic may hold came back as absent. That 404 is now NotFound, saying what the worker said."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from materializer import Client
from materializer.errors import NotFound, no_row_detail
from tests.support.fake_http import send_json, serving


class OneWorker(BaseHTTPRequestHandler):
    """A standalone worker serving table s.t, whose row lookups answer `row_404`."""

    row_404 = ""

    def log_message(self, *a: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        status, body = 200, {}
        if self.path == "/cluster":
            body = {"standalone": True}
        elif self.path == "/tables":
            body = {"tables": [{"name": "s.t", "kind": "table", "key": ["n"],
                                "columns": [{"name": "n", "type": "long"}]}]}
        else:
            status, body = 404, {"detail": self.row_404}
        send_json(self, status, body)


@pytest.fixture
def worker() -> Iterator[str]:
    with serving(OneWorker) as url:
        yield url


def test_absent_is_none_and_an_unknown_table_is_said(worker: str) -> None:
    with Client(worker, retry_for=2, timeout=2) as c:
        t = c.table("s.t")
        OneWorker.row_404 = no_row_detail("s.t")
        assert t.get(1) is None
        OneWorker.row_404 = "no table or stream named 's.t'"
        with pytest.raises(NotFound, match="no table or stream named 's.t'"):
            t.get(1)

"""`Client.get` answers None only for a key the worker says it holds no row for.

Found by probe h61: every 404 was None, also a worker's "no table or stream named ..."
(a worker running another declaration, during a rolling change of the file): a key the
topic may hold came back as absent. That 404 is now NotFound, saying what the worker said."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from materializer import Client
from materializer.errors import NotFound, no_row_detail


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
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def worker() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), OneWorker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_absent_is_none_and_an_unknown_table_is_said(worker: str) -> None:
    with Client(worker, retry_for=2, timeout=2) as c:
        t = c.table("s.t")
        OneWorker.row_404 = no_row_detail("s.t")
        assert t.get(1) is None
        OneWorker.row_404 = "no table or stream named 's.t'"
        with pytest.raises(NotFound, match="no table or stream named 's.t'"):
            t.get(1)

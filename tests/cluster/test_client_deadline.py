"""`materializer.Client` against a frozen worker (SIGSTOP: its socket accepts connections, its
process never answers), and `get --url` when the cluster does not answer.

Measured (probe h61, three workers, one SIGSTOPped with its API child): a lookup routed to
the frozen worker waited the whole `timeout` at every try, and the re-read of the
membership asked the frozen worker first again (it was still listed live), another
`timeout` per re-read: `retry_for` was overrun by a `timeout` or more per try (here 6 s
for `retry_for=3`). And `get --url` exited 1 when no worker answered, the code a script
reads as "no row". Now a retry and a re-read wait at most what is left of `retry_for`,
the worker that failed is asked last, and `ClusterUnavailable` exits 3 (not known here,
as a local store's partitions not held)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from materializer import Client
from materializer.client import ClusterUnavailable
from materializer.devbroker import free_port
from tests.support.api import cli_json
from tests.support.fake_http import send_json, serving


class Alive(BaseHTTPRequestHandler):
    """A worker that answers the membership (every partition owned by the frozen one)."""

    frozen_url = ""

    def log_message(self, *a: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        me = f"http://127.0.0.1:{self.server.server_address[1]}"
        if self.path == "/cluster":
            body: Any = {"standalone": False, "self": "alive", "members": [
                {"id": "frozen", "url": self.frozen_url, "live": True},
                {"id": "alive", "url": me, "live": True}],
                "relations": {"s.t": {"partitions": 2, "partitioner": "murmur2",
                                      "key_format": "long",
                                      "owners": {"0": "frozen", "1": "frozen"}}}}
        elif self.path == "/tables":
            body = {"tables": [{"name": "s.t", "kind": "table", "key": ["n"],
                                "columns": [{"name": "n", "type": "long"}]}]}
        else:
            body = {"detail": "s.t: partitions 0, 1 have no live owner (rebalancing)"}
        send_json(self, 200 if self.path in ("/cluster", "/tables") else 503, body)


@pytest.fixture
def cluster() -> Iterator[str]:
    frozen = socket.socket()  # listening, never accepting: the kernel completes connections
    frozen.bind(("127.0.0.1", 0))
    frozen.listen(64)
    Alive.frozen_url = f"http://127.0.0.1:{frozen.getsockname()[1]}"
    try:
        with serving(Alive) as url:
            yield url
    finally:
        frozen.close()


def test_a_frozen_owner_does_not_stretch_retry_for(cluster: str) -> None:
    with Client(cluster, retry_for=3, timeout=2) as c:
        t = c.table("s.t")
        for ask in (lambda: t.get(1), lambda: t.get_many([1, 2])):
            started = time.monotonic()
            with pytest.raises(ClusterUnavailable, match="no answer within 3"):
                ask()
            took = time.monotonic() - started
            # the first try waits its 2 s; retries and re-reads only what is left of 3 s
            assert 2.0 <= took < 3.8, took


def test_get_url_without_an_answer_is_not_the_no_row_exit(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("materializer.cli_read.URL_RETRY_FOR", 1.0)  # tried for 1 s, not 30
    cfg = tmp_path / "t.yaml"
    cfg.write_text(f"store:\n  path: {tmp_path / 'data'}\ntables:\n"
                   "  - {name: t, topic: t, columns: {k: long, v: string}, primary_key: [k]}\n")
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    for argv in (("get", str(cfg), "t", "1", "--url", url),
                 ("scan", str(cfg), "t", "--url", url)):
        code, rows, err = cli_json(capsys, *argv)
        assert (code, rows) == (3, []), err
        assert "no worker answered" in err

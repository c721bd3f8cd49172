"""`materializer.Client` and `get/scan --url` take several workers to start from: a client
given one URL failed at once when that worker was away, although the cluster answered
(left item of probe h61). Any seed answering is enough; the others stay in the list the
client re-reads the membership from."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from materializer import Client
from materializer.client import ClusterUnavailable
from materializer.devbroker import free_port
from materializer.errors import UsageError
from tests.support.api import cli_json
from tests.support.fake_http import send_json, serving


class Standalone(BaseHTTPRequestHandler):
    """A standalone worker serving table t, holding the row n=1 only."""

    def log_message(self, *a: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        status, body = 200, {}
        if self.path == "/cluster":
            body = {"standalone": True}
        elif self.path == "/tables":
            body = {"tables": [{"name": "public.t", "kind": "table", "key": ["k"],
                                "columns": [{"name": "k", "type": "long"},
                                            {"name": "v", "type": "string"}]}]}
        elif self.path.endswith("/rows/1"):
            body = {"k": 1, "v": "one"}
        else:
            status, body = 404, {"detail": "public.t: no row for this key"}
        send_json(self, status, body)


@pytest.fixture
def worker() -> Iterator[str]:
    with serving(Standalone) as url:
        yield url


def test_a_client_starts_from_any_seed_that_answers(worker: str) -> None:
    away = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with Client([away, worker + "/"], retry_for=2, timeout=2) as c:
        assert c.table("t").get(1) == {"k": 1, "v": "one"}
        assert c.seeds == [away, worker]
    with pytest.raises(ClusterUnavailable, match="no worker answered"), \
            Client([away], retry_for=1, timeout=1) as c:
        c.table("t")
    for bad in ([], [""]):
        with pytest.raises(UsageError, match="a list of them"):
            Client(bad)


def test_url_may_be_given_more_than_once(worker: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "t.yaml"
    cfg.write_text(f"store:\n  path: {tmp_path / 'data'}\ntables:\n"
                   "  - {name: t, topic: t, columns: {k: long, v: string}, primary_key: [k]}\n")
    away = f"http://127.0.0.1:{free_port()}"
    code, rows, err = cli_json(capsys, "get", str(cfg), "t", "1", "--url", worker,
                               "--url", away)
    assert (code, rows) == (0, [{"k": 1, "v": "one"}]), err

"""`materializer get` of a stream key with no events exits 1 saying so on stderr, as a table
key without a row does (probe h81: it exited 1 without a word)."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import cli_json
from tests.support.fake_http import send_json, serving


class StreamWorker(BaseHTTPRequestHandler):
    """A standalone worker serving stream s, whose keys have no events."""

    def log_message(self, *a: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/cluster":
            body: Any = {"standalone": True}
        elif self.path == "/tables":
            body = {"tables": [{"name": "public.s", "kind": "stream", "key": ["k"],
                                "columns": [{"name": "k", "type": "string"},
                                            {"name": "v", "type": "string"}]}]}
        else:
            body = {"events": []}
        send_json(self, 200, body)


@pytest.fixture
def worker() -> Iterator[str]:
    with serving(StreamWorker) as url:
        yield url


def test_no_events_is_said(worker: str, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "s.yaml"
    cfg.write_text(f"store:\n  path: {tmp_path / 'data'}\nstreams:\n"
                   "  - {name: s, topic: s, columns: {k: string, v: string}, key: [k]}\n")
    code, rows, err = cli_json(capsys, "get", str(cfg), "s", "u1", "--url", worker)
    assert (code, rows) == (1, [])
    assert "public.s: no events for key ['u1']" in err

"""Request bodies are read as they arrive: a chunked body (no Content-Length) past the limit
was buffered whole before its 413 (any size, in the API's memory), and one that never
finished held its connection for ever. Now: 413 as soon as it passes the limit, 408 when it
has not arrived whole within BODY_TIMEOUT_S."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from materializer.api import body as body_module
from materializer.api.app import create_app
from tests.support.api import build_data_dir


@pytest.fixture
def app(tmp_path: Path) -> Any:
    build_data_dir(tmp_path)
    return create_app(str(tmp_path), None)


def _scope(path: str) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": b"", "root_path": "", "server": ("127.0.0.1", 80),
            "client": ("127.0.0.1", 5000),
            "headers": [(b"host", b"x"), (b"content-type", b"application/json"),
                        (b"transfer-encoding", b"chunked")]}


async def _call(app: Any, path: str, chunks: Any) -> tuple[int, dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(app(_scope(path), chunks, send), 10)  # an old one never ended
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body)


@pytest.mark.parametrize("path", ["/tables/users/lookup", "/snapshots"])
def test_a_chunked_body_past_the_limit_is_refused_as_it_arrives(app: Any, path: str) -> None:
    limit = 65536 if path == "/snapshots" else app.state.api.max_body
    read = 0

    chunks = 4 * (limit // 65536) + 8  # four times the limit, in 64 KiB chunks

    async def receive() -> dict[str, Any]:
        nonlocal read
        read += 1
        return {"type": "http.request", "body": b" " * 65536, "more_body": read < chunks}

    status, answer = asyncio.run(_call(app, path, receive))
    assert (status, answer["detail"]) == (413, f"body larger than {limit} bytes")
    assert read <= limit // 65536 + 2  # stopped right past the limit, not at the end


def test_a_body_that_never_finishes_is_408(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(body_module, "BODY_TIMEOUT_S", 0.5)
    calls = 0

    async def receive() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            return {"type": "http.request", "body": b'{"keys": [', "more_body": True}
        await asyncio.Event().wait()  # the client sends no more, and stays
        raise AssertionError("unreachable")

    status, answer = asyncio.run(_call(app, "/tables/users/lookup", receive))
    assert (status, answer["detail"]) == (408, "the body did not arrive whole within 0 s")


def test_a_whole_chunked_body_is_read(app: Any) -> None:
    parts = [b'{"keys": ', b"[[1], [2]]", b"}"]

    async def receive() -> dict[str, Any]:
        chunk = parts.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(parts)}

    status, answer = asyncio.run(_call(app, "/tables/users/lookup", receive))
    assert status == 200 and [r and r["id"] for r in answer["rows"]] == [1, 2]

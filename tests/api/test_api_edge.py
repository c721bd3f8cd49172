"""The edge answers `/healthz` and `/readyz` itself, byte for byte as the routed endpoints
do, and `/readyz` follows every new version of the worker's status file."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from materializer.api.app import create_app
from materializer.status import status_path, write_status
from tests.support.api import build_data_dir


def _same(fast: TestClient, slow: TestClient, path: str) -> tuple[int, bytes]:
    a, b = fast.get(path), slow.get(path)
    assert (a.status_code, a.content, a.headers["content-type"],
            a.headers["content-length"]) == (b.status_code, b.content, b.headers["content-type"],
                                             b.headers["content-length"]), path
    return a.status_code, a.content


def test_health_and_readiness_answer_like_the_routed_endpoints(tmp_path: Path) -> None:
    data = tmp_path / "data"
    build_data_dir(data, n_users=5)
    with TestClient(create_app(str(data), "tok")) as fast, \
            TestClient(create_app(str(data), "tok", fast_path=False)) as slow:
        assert _same(fast, slow, "/healthz") == (200, b'{"status":"ok"}')  # open: no token
        status, body = _same(fast, slow, "/readyz")
        assert status == 503 and b"no worker status file" in body
        write_status(data, {"updated_at": time.time(), "caught_up": True, "partitions": []})
        assert _same(fast, slow, "/readyz") == (200, b'{"ready":true,"reason":"caught up"}')
        write_status(data, {"updated_at": time.time(), "caught_up": False,
                            "partitions": [{"lag": 3}]})  # a new version, read at once
        status, body = _same(fast, slow, "/readyz")
        assert status == 503 and b"not caught up (1 partition(s)" in body
        write_status(data, {"updated_at": time.time() - 60, "caught_up": True})
        status, body = _same(fast, slow, "/readyz")
        assert status == 503 and b"s old" in body
        status_path(data).write_text("{not json")
        assert _same(fast, slow, "/readyz")[0] == 503
        status_path(data).unlink()
        assert b"no worker status file" in _same(fast, slow, "/readyz")[1]
        # the fast answers are counted like the routed ones
        metrics = fast.get("/metrics", headers={"Authorization": "Bearer tok"}).text
        assert 'endpoint="/healthz"' in metrics and 'endpoint="/readyz"' in metrics

"""The worker's start-up: what `materializer run` loads before its first poll."""

from __future__ import annotations

import subprocess
import sys

WORKER_MODULES = ("materializer.cli", "materializer.ingest.worker", "materializer.cluster.agent",
                  "materializer.ingest.processes", "materializer.changes.drainer",
                  "connectors.kafka")


def test_the_worker_loads_no_web_framework() -> None:
    """FastAPI and pydantic take about 0.25 s to import: the API process loads them, a
    worker (`run --no-api`, or `run`, whose API is a child process) does not."""
    code = (f"import {', '.join(WORKER_MODULES)}, sys; "
            "print(sorted(m for m in ('fastapi', 'pydantic', 'starlette', 'granian', "
            "'uvicorn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"

"""`/healthz` and `/readyz` answers, cheap enough to be probed as often as anyone likes.

- `HEALTHY`: the constant body of `/healthz` (the process answers: it is alive).
- `ready_answer(store_path)`: status and body of `/readyz`, by the kernel's rule
  (`materializer.status.readiness`) over the worker's status file. The file is parsed
  again only when it changed (the worker replaces it atomically, so a new version is a
  new inode): a probe costs one `stat`, and the answer is never staler than the file.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import orjson

from materializer.status import read_status, readiness, status_path

HEALTHY = b'{"status":"ok"}'


class StatusFile:
    """The worker's status file of one store, reread only when it changed."""

    def __init__(self, store_path: str) -> None:
        self.path = status_path(store_path)
        self._store_path = store_path
        # (inode, mtime ns, size) of the version read, and what it said; swapped whole
        self._last: tuple[tuple[int, int, int] | None, dict[str, Any] | None] = (None, None)

    def read(self) -> dict[str, Any] | None:
        """The last status (None: missing or malformed), as `materializer.status.read_status`."""
        try:
            st = os.stat(self.path)
        except OSError:
            self._last = (None, None)
            return None
        seen = (st.st_ino, st.st_mtime_ns, st.st_size)
        last = self._last
        if seen != last[0]:
            last = (seen, read_status(self._store_path))
            self._last = last
        return last[1]


_FILES: dict[str, StatusFile] = {}
_FILES_LOCK = threading.Lock()


def ready_answer(store_path: str) -> tuple[int, bytes]:
    """`GET /readyz`: 200 when the worker is caught up (fresh status), else 503."""
    sf = _FILES.get(store_path)
    if sf is None:
        with _FILES_LOCK:
            sf = _FILES.setdefault(store_path, StatusFile(store_path))
    ready, reason = readiness(sf.read())
    return (200 if ready else 503), orjson.dumps({"ready": ready, "reason": reason})

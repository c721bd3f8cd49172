"""What operators see when the machine misbehaves under a store (probe h49).

- A full disk at `run`'s start: writing `declared.json` (or the holder's line into the
  store lock) raised a bare OSError, a traceback instead of a message naming the file.
- A full disk at a commit: LMDB reports the short write as "Input/output error"; the
  message now says the file system is full.
- A wall clock set back (or a reader's clock behind the writer's): a status dated in the
  future counted as fresh, so a stalled worker read ready (`/readyz` 200, lag 0 in
  `/metrics`) until the clock caught up again, an hour after a step back of an hour.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import lmdb
import pytest

from materializer.api.metrics import Exposition, add_worker_metrics
from materializer.errors import StoreError
from materializer.status import readiness
from materializer.store import StoreLock, batch, layout

NOW = 1_800_000_000.0


def _no_space(*args: Any, **kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_declared_json_on_a_full_disk_is_a_store_error(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    layout.write_declared(tmp_path, ["shop.users"])

    def partly(path: Path, data: bytes) -> None:  # the temporary file exists, then ENOSPC
        path.write_bytes(b"")
        _no_space()

    monkeypatch.setattr(layout, "write_private", partly)
    with pytest.raises(StoreError, match=r"declared\.json: No space left on device"):
        layout.write_declared(tmp_path, ["shop.users", "shop.orders"])
    assert json.loads((tmp_path / "declared.json").read_text()) == ["shop.users"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["declared.json"]  # no litter


def test_the_store_lock_on_a_full_disk_is_a_store_error(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "pwrite", _no_space)
    with pytest.raises(StoreError, match=r"store lock .*: No space left on device"):
        StoreLock.acquire(tmp_path / "data", "run")
    monkeypatch.undo()
    StoreLock.acquire(tmp_path / "data", "run").release()  # not left held


def test_an_lmdb_failure_on_a_full_file_system_says_so(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    class Full:
        f_bavail, f_frsize = 3, 4096

    monkeypatch.setattr(batch.os, "statvfs", lambda path: Full())
    full = r"mdb_txn_commit: Input/output error \(the file system holding it is full: 12,288"
    with pytest.raises(StoreError, match=full), batch.translated(tmp_path, "committing"):
        raise lmdb.Error("mdb_txn_commit: Input/output error")

    class Roomy:
        f_bavail, f_frsize = 1 << 20, 4096

    monkeypatch.setattr(batch.os, "statvfs", lambda path: Roomy())
    with pytest.raises(StoreError) as info, batch.translated(tmp_path, "committing"):
        raise lmdb.Error("mdb_txn_commit: Input/output error")
    assert "file system" not in str(info.value)


def _status(updated_at: float) -> dict[str, Any]:
    return {"updated_at": updated_at, "started_at": updated_at - 100, "stopping": False,
            "assigned": [["t", 0]], "caught_up": True,
            "partitions": [{"relation": "public.t", "topic": "t", "partition": 0,
                            "next_offset": 10, "end_offset": 10, "lag": 0}]}


def test_a_status_dated_in_the_future_is_not_trusted() -> None:
    # written before the clock was set back an hour (or by a writer whose clock runs ahead)
    ready, reason = readiness(_status(NOW + 3600), now=NOW)
    assert not ready
    assert "in the future" in reason
    exp = Exposition()
    add_worker_metrics(exp, _status(NOW + 3600), now=NOW)
    assert "materializer_worker_ready 0" in exp.text()
    assert "materializer_partition_lag" not in exp.text()
    # the same machine's writer and reader: a status a moment "ahead" is fresh
    assert readiness(_status(NOW + 0.5), now=NOW) == (True, "caught up")


def test_a_status_or_members_file_that_cannot_be_written_leaves_no_temporary_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk: the write fails (the caller warns), and no empty `.tmp` is left behind
    (one per process and file before)."""
    from materializer.cluster.membership import write_members_file
    from materializer.status import write_status

    def full(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError):
        write_status(tmp_path, {"pid": 1})
    with pytest.raises(OSError):
        write_members_file(tmp_path, {"self": "a", "members": []})
    assert sorted(p.name for p in tmp_path.iterdir()) == []

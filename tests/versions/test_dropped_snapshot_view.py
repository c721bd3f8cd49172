"""A view of a snapshot kept across its drop (by another process) says the snapshot is
gone, naming the snapshots there are, not that the table does not exist."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from materializer.store import Store
from materializer.versions.paths import SnapshotNotFound
from materializer.versions.take import take_snapshot
from tests.support.api import build_data_dir


def test_a_view_held_across_a_drop_says_the_snapshot_is_gone(tmp_path: Path) -> None:
    build_data_dir(tmp_path, n_users=20)
    take_snapshot(tmp_path, "then")
    take_snapshot(tmp_path, "other")
    with Store.open(tmp_path) as store:
        view = store.table("public.users", as_of="then")
        assert len(view) == 20
        subprocess.run([sys.executable, "-c", "import sys; from materializer.versions.paths "
                        "import drop_snapshot; drop_snapshot(sys.argv[1], 'then')",
                        str(tmp_path)], check=True)
        with pytest.raises(SnapshotNotFound) as caught:
            view.get(1)
        assert caught.value.snapshots == ["other"]
        assert "no snapshot named 'then' (snapshots: other)" in str(caught.value)

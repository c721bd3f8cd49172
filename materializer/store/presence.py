"""Whether the files a worker writes are still the store's: a data directory, or a
relation's `data.mdb`, removed (or replaced) under a running worker leaves it writing into
files nobody can open again (readers answer 404/503, every commit is lost at the next
start). `StorePresence.check` says so, so the worker stops with that message instead."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from materializer.errors import StoreError
from materializer.store.lock import check_held


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class StorePresence:
    """The store directory and the relation files as first seen (device, inode)."""

    def __init__(self, store_path: str | os.PathLike[str]) -> None:
        self.root = Path(store_path)
        self._root_id = _identity(self.root)
        self._files: dict[Path, tuple[int, int] | None] = {}

    def check(self, relation_dirs: Iterable[Path]) -> None:
        """StoreError naming what went if the store directory, the store lock this process
        holds (`check_held`), or the `data.mdb` of one of `relation_dirs` (the generations
        being written), is no longer the one first seen there. A generation seen for the
        first time (a rebuild in place) is recorded."""
        if self._root_id is not None and _identity(self.root) != self._root_id:
            raise StoreError(f"the store directory {self.root} was removed or replaced while "
                             "the worker ran: what it applies cannot be read and is lost at "
                             "the next start; stopping (start it again: it rebuilds from the "
                             "topics)")
        check_held(self.root)
        for d in relation_dirs:
            path = d / "data.mdb"
            now = _identity(path)
            first = self._files.setdefault(path, now)
            if first is not None and now != first:
                raise StoreError(f"{path} was removed or replaced while the worker wrote it: "
                                 "what it applies cannot be read and is lost at the next "
                                 "start; stopping (start it again: the relation is "
                                 "rebuilt from its topic)")

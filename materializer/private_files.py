"""Files and directories only their owner may read (a store holds the topics' data):
directories 0700 and files 0600 whatever the umask, written with fsync."""

from __future__ import annotations

import os
from pathlib import Path

from materializer.errors import StoreError

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_dir(path: Path) -> None:
    """Create `path` (mode 0700 whatever the umask), or make an existing one 0700;
    StoreError naming it if it cannot be."""
    try:
        path.mkdir(mode=DIR_MODE, exist_ok=True)
        os.chmod(path, DIR_MODE)
    except OSError as e:
        raise StoreError(f"cannot create {path}: {e.strerror or e}") from e


def write_private(path: Path, data: bytes, *, new: bool = False) -> None:
    """Write a small file readable by the owner only (0600 whatever the umask), fsynced;
    with `new`, one that does not exist yet (FileExistsError otherwise)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_EXCL if new else os.O_TRUNC)
    fd = os.open(path, flags, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)

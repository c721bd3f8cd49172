"""Open files a worker needs for its relations (`ensure_descriptors`).

Every relation's writer keeps 3 file descriptors open while the worker runs: LMDB's data
file twice (its writes and its synchronous meta page writes) and its lock file. With the
common default soft limit of 1,024 (`ulimit -n`), a worker of about 330 relations failed
at start with an OSError traceback ("Too many open files") half-way through opening them
(probe h126). The soft limit is raised, up to the hard one, before they are opened; a hard
limit too low for them is a clear error before any is opened."""

from __future__ import annotations

import resource

from materializer.errors import StoreError

FDS_PER_WRITER = 3
FDS_SPARE = 256
"""Descriptors left for all else: the broker's and registry's connections, the change
topics' producers, the status file, the lookup API's sockets."""


def descriptors_needed(writers: int) -> int:
    return writers * FDS_PER_WRITER + FDS_SPARE


def ensure_descriptors(writers: int) -> None:
    """Make room for `writers` open relation writers: raise the soft RLIMIT_NOFILE as far
    as needed (never above the hard limit), or StoreError saying what to raise."""
    need = descriptors_needed(writers)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return
    if hard != resource.RLIM_INFINITY and hard < need:
        raise StoreError(
            f"{writers:,} relations need about {need:,} open files ({FDS_PER_WRITER} for "
            f"each relation's LMDB files, {FDS_SPARE} for connections and the rest), above "
            f"this process's limit of {soft:,} (hard limit {hard:,}): raise it (`ulimit -n "
            f"{need}` in the shell that starts the worker, LimitNOFILE= for systemd, "
            f"`--ulimit nofile={need}` for docker) or declare fewer relations per worker")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    except (ValueError, OSError) as e:
        raise StoreError(f"{writers:,} relations need about {need:,} open files, above this "
                         f"process's limit of {soft:,}, which could not be raised ({e}): "
                         f"raise it (`ulimit -n {need}`) or declare fewer relations per "
                         "worker") from e

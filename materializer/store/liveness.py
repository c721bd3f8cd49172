"""Whether a live store's rows are current although no partition is marked revoked (the
views of `store.read` ask it at most every CHECK_INTERVAL): its worker is a cluster member
that does not run (`member_stopped`), or the process recorded as applying a relation's
partitions beside others is gone (`live_writer_gone`: a faust worker killed with kill -9)."""

from __future__ import annotations

import json
from pathlib import Path
from time import monotonic as _monotonic

from materializer.store.environment import LIVE_WRITER, begin
from materializer.store.generation import Generation

MEMBER_CHECK_INTERVAL = 0.5
"""Seconds a process keeps its decision of whether a store's cluster worker runs
(`member_stopped`): the views of a store read `cluster.json` at most this often."""

_member_decisions: dict[Path, tuple[float, str | None]] = {}


def member_stopped(data_dir: Path) -> str | None:
    """Why the rows of the live store `data_dir` may be older than the cluster's (None: not
    known to be): its worker, a cluster member, does not run, so its partitions may have
    moved to a worker that applied newer rows since. The rule is
    `materializer.cluster.view.member_not_running` (`materializer get`/`scan` refuse by it
    too), decided again at most every MEMBER_CHECK_INTERVAL seconds per store and process."""
    now = _monotonic()
    known = _member_decisions.get(data_dir)
    if known is not None and now < known[0]:
        return known[1]
    from materializer.cluster.view import member_not_running  # noqa: PLC0415 - no cycle

    why = member_not_running(data_dir)
    _member_decisions[data_dir] = (now + MEMBER_CHECK_INTERVAL, why)
    return why


def live_writer_gone(g: Generation) -> str | None:
    """Why generation `g`'s rows are not current although its partitions are not marked
    revoked (None: not known): the process recorded as applying them beside others
    (`RelationWriter.set_live_writer`: a faust worker beside others of its app) is gone,
    killed without the clean stop that marks them, so another process took its partitions
    over and applies newer rows."""
    with begin(g.env, db=g.meta_db) as txn:  # adopting a map another process grew
        raw = txn.get(LIVE_WRITER)
    if raw is None:
        return None
    from materializer.status import writer_gone  # noqa: PLC0415 - no cycle

    try:
        writer = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(writer, dict) or not writer_gone(writer):
        return None
    return (f"the process (pid {writer.get('pid')}) that applied this relation's partitions "
            "beside other workers ended without a clean stop (killed): they have moved to "
            "another worker, which applies newer rows; read through a running worker's "
            "store, or again once it runs")

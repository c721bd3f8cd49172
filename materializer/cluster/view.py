"""The API process's view of the cluster: `<store>/cluster.json`, as the local worker keeps it.

Guarantees:
- `routing()` is the routing table as of the file, with members expired by the time of
  the call; it is re-read when the file changes (checked at most every 50 ms).
- No file, an unreadable one, or one the worker has not refreshed for longer than the
  member timeout or marked stopped (the worker died or stopped) gives None, the API then
  answering from the local store alone as a worker outside any cluster does, when that
  worker knew no other member. When it did, its partitions may have moved to another
  worker that applied newer rows since: the routing table then has this worker owning
  nothing (its keys answer 503 until it runs again; the other members' own partitions
  are still forwarded to them while their records are live), never the store's rows as
  current.
- A worker that has not refreshed the file for longer than its group session timeout
  (`session_timeout_ms`, shorter than the member timeout: the worker process is stopped,
  say by SIGSTOP) may have lost its assignment to another worker that applies newer rows
  meanwhile: the routing table has it owning nothing too (its keys answer 503) until it
  writes the file again (it then says itself whether it still owns anything: see
  `materializer.cluster.agent`).
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from materializer.cluster.membership import MEMBERS_FILE, now_ms, read_members_file
from materializer.cluster.record import Member
from materializer.cluster.routing import Routing
from materializer.status import AHEAD_SLACK_S

CHECK_INTERVAL = 0.05
AHEAD_SLACK_MS = int(AHEAD_SLACK_S * 1000)


class ClusterView:
    """Reads `<store>/cluster.json` (see the module doc)."""

    def __init__(self, store_path: str | os.PathLike[str]) -> None:
        self.path = Path(store_path) / MEMBERS_FILE
        self._stamp: tuple[int, int] | None = None
        self._data: dict[str, Any] | None = None
        self._members: list[Member] = []
        self._checked = -1.0
        self._routing: Routing | None = None
        self._built = -1.0

    def _load(self) -> None:
        now = time.monotonic()
        if now - self._checked < CHECK_INTERVAL:
            return
        self._checked = now
        try:
            st = self.path.stat()
        except OSError:
            self._stamp, self._data, self._members = None, None, []
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        found = read_members_file(self.path)
        if found is None:
            return  # a file being replaced, or not ours: keep the last good one
        self._stamp, (self._data, self._members) = stamp, found
        self._built = -1.0

    @property
    def settings(self) -> dict[str, Any]:
        """What the worker wrote beside the members: self, url, timeouts."""
        self._load()
        return {k: v for k, v in (self._data or {}).items() if k != "members"}

    def routing(self) -> Routing | None:
        """The routing table now, or None when there is no live local worker (module doc)."""
        self._load()
        data = self._data
        if data is None:
            return None
        timeout = member_timeout_ms(data)
        now = now_ms()
        members = self._members
        running = worker_running(data, now)
        if not running and not others_known(data, members):
            return None  # a worker outside any cluster, stopped: its store as it is
        if not running or not session_held(data, now):
            members = [m if m.id != data["self"] else _owning_nothing(m) for m in members]
        if self._routing is not None and time.monotonic() - self._built < CHECK_INTERVAL:
            return self._routing
        self._routing = Routing(members, data["self"], now, timeout)
        self._built = time.monotonic()
        return self._routing

    @property
    def forward_timeout(self) -> float:
        ms = self.settings.get("forward_timeout_ms")
        return (ms if isinstance(ms, int) and ms > 0 else 5000) / 1000


def member_timeout_ms(data: dict[str, Any]) -> int:
    """The member timeout a `cluster.json` was written with."""
    return int(data.get("timeout_ms") or 10_000)


def worker_running(data: dict[str, Any], now: int) -> bool:
    """Whether the worker that keeps a `cluster.json` (`data`) runs: not marked stopped, and
    refreshed within the member timeout. A file dated ahead past the slack (the clock was
    set back since) cannot tell that it does."""
    written = data.get("written_at")
    return isinstance(written, int) and not data.get("stopped") \
        and -AHEAD_SLACK_MS <= now - written <= member_timeout_ms(data)


def session_held(data: dict[str, Any], now: int) -> bool:
    """Whether the worker of a running `cluster.json` (`data`) refreshed it within its
    group session timeout: past it, the group may have given its partitions away."""
    written, session = data.get("written_at"), data.get("session_timeout_ms")
    return not isinstance(session, int) or not isinstance(written, int) \
        or now - written <= session


def others_known(data: dict[str, Any], members: list[Member]) -> list[str]:
    """The other members the worker of a `cluster.json` knew (empty: outside any cluster)."""
    return sorted(m.id for m in members if m.id != data["self"])


def member_not_running(store_path: str | os.PathLike[str]) -> str | None:
    """Why the store's own files may be older than the cluster (None: not known to be):
    its worker, a member of a cluster (it knew other members), does not run, so the
    partitions it held may have moved to another worker that applied newer rows since."""
    found = read_members_file(Path(store_path) / MEMBERS_FILE)
    if found is None:
        return None
    data, members = found
    others = others_known(data, members)
    now = now_ms()
    if not others or worker_running(data, now):
        return None
    written = data.get("written_at")
    how = "stopped" if data.get("stopped") or not isinstance(written, int) \
        else f"last seen {(now - written) / 1000:.0f} s ago"
    return (f"this store's worker {data['self']!r} is a member of a cluster (it knew "
            f"{', '.join(others[:5])}{' ...' if len(others) > 5 else ''}) and does not run "
            f"({how}): the partitions it held may have moved to another worker that applied "
            "newer rows since; ask the cluster (--url, materializer.Client) or again once "
            "it runs")


def _owning_nothing(member: Member) -> Member:
    """`member`'s record with no partition owned or kept warm (a worker not running)."""
    return replace(member, relations={name: replace(state, assigned=(), standby=())
                                      for name, state in member.relations.items()})

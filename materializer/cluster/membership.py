"""Membership through Kafka itself: each worker's record on a compacted topic of its group.

A thread of the worker process publishes this worker's record (`record.Member`) on every
assignment change and every `cluster.heartbeat_ms`, reads every member's record from the
topic, and keeps `<store>/cluster.json` (this worker's view of the cluster, which its API
process routes by). A clean stop publishes a tombstone, so the others drop it at once; a
worker that dies is dropped once it has been silent for `cluster.member_timeout_ms`.

Guarantees:
- Nothing beside Kafka: the group protocol assigns partitions, this topic says where the
  members are; the consumer group's member list is never asked for (some brokers do not
  give it).
- The thread never stops the worker: a broker that is away, a topic it may not create, or
  a record that is not a member record is logged (rate-limited) and retried or skipped.
- A member is judged live by when this worker last heard from it, on this worker's
  monotonic clock (a record that arrived once this worker had read the topic to its end
  is news: its sender ran since), never by the wall clock of the member's machine, which
  may run ahead (a dead member kept live past the timeout) or behind (a live one taken
  for dead, its partitions answered 503 for good). `cluster.json` holds it as `heard_at`
  on this machine's clock, which its API shares. Records read back at start (history)
  only say what the member's own clock said: aged by it, and one dated ahead of this
  clock counts as heard at most now. So do those that arrive in the first seconds after
  this process was frozen (a member may have died meanwhile), aged by the member's clock
  as far ahead of this one as its last record heard live said.
- `cluster.json` is replaced atomically (readers see a whole old or a whole new one), at
  `start` and at least once per heartbeat while the worker runs, also while the broker
  cannot be reached (the connection is tried in a thread of its own, which may block for
  seconds): the API then routes by this worker's assignment as it is and the others'
  records until they expire (503 for partitions without a live owner), never answers
  from the store alone as beside a stopped worker. The other members an earlier run's
  file named are kept (expired) until their records are read again: the file still says
  this worker knew them (`cluster.view`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from materializer.cluster.record import Member, decode, encode
from materializer.cluster.routing import Routing
from materializer.errors import InfrastructureError
from materializer.status import replace_json

log = logging.getLogger("materializer.cluster")

MEMBERS_FILE = "cluster.json"
_TOPIC_CHARS = re.compile(r"[^A-Za-z0-9._-]")


def members_topic(group: str) -> str:
    """The compacted topic a group's members publish their records to: `<group>.members`
    (characters a topic name cannot hold become `_`, plus a hash of the group id)."""
    safe = _TOPIC_CHARS.sub("_", group)
    if safe != group or len(safe) > 200:
        safe = f"{safe[:200]}-{hashlib.sha256(group.encode()).hexdigest()[:8]}"
    return f"{safe}.members"


def now_ms() -> int:
    return int(time.time() * 1000)


def write_members_file(store_path: str | os.PathLike[str], view: dict[str, Any]) -> None:
    """Replace `<store>/cluster.json` atomically."""
    replace_json(Path(store_path) / MEMBERS_FILE, view, separators=(",", ":"))


def read_members_file(path: Path) -> tuple[dict[str, Any], list[Member]] | None:
    """A `cluster.json` (`write_members_file`'s) as (the view, its members), or None if it
    cannot be read or is not one (missing, being replaced, not ours)."""
    try:
        data = json.loads(path.read_bytes())
        members = [Member.from_json(m) for m in data.get("members", [])]
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("self"), str):
        return None
    return data, members


class Membership:
    """This worker's membership: publishes `local()` and reads the others (a daemon thread).

    `local` is called from the thread and builds this worker's current record; `wake()`
    asks for a publication now (an assignment changed)."""

    def __init__(self, conf: dict[str, str], group: str, store_path: str, self_id: str,
                 local: Callable[[], Member], *, heartbeat_ms: int, timeout_ms: int,
                 extra: dict[str, Any] | None = None) -> None:
        self.conf = conf
        self.topic = members_topic(group)
        self.store_path = store_path
        self.self_id = self_id
        self.local = local
        self.heartbeat_ms = heartbeat_ms
        self.timeout_ms = timeout_ms
        self.extra = extra or {}  # more fields for cluster.json (forward timeout, ...)
        self._members: dict[str, Member] = {}
        self._heard: dict[str, float] = {}  # member id -> monotonic time last heard from
        self._ahead: dict[str, int] = {}  # member id -> this clock minus its, as last heard
        self._news_from: int | None = None  # the topic's offset from which records are news
        self._absorbed: float | None = None  # when the last poll was taken (monotonic)
        self._backlog_until = 0.0  # after a stall: records are no news until then
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._sink: Any = None
        self._source: Any = None
        self._warned: dict[str, float] = {}
        self._connector: threading.Thread | None = None
        self.published = 0
        self._thread = threading.Thread(target=self._run, name="cluster-membership",
                                        daemon=True)

    def start(self) -> None:
        """Write `cluster.json` (this worker, as it is now, and the other members an earlier
        run's file named) and start the thread, which keeps the file fresh whether or not
        the broker can be reached: from here on the API routes by this run's membership,
        never by an earlier run's file nor (as with no file) from the store alone, which
        would answer partitions another worker may have updated since as current."""
        self._members.update(self._known_before())
        self._write_file()
        self._thread.start()

    def _known_before(self) -> dict[str, Member]:
        """The other members in the file an earlier run of this worker left (none if it
        cannot be read)."""
        found = read_members_file(Path(self.store_path) / MEMBERS_FILE)
        return {} if found is None else {m.id: m for m in found[1] if m.id != self.self_id}

    @property
    def connected(self) -> bool:
        """Whether the thread has reached the broker (its membership topic) in this run."""
        return self._source is not None

    def wake(self) -> None:
        self._wake.set()

    def members(self) -> list[Member]:
        """Every member's last record (this worker's as it is now), live or not."""
        with self._lock:
            now, wall = time.monotonic(), now_ms()
            others = [m if (heard := self._heard.get(i)) is None else
                      replace(m, heard_at=wall - round((now - heard) * 1000))
                      for i, m in self._members.items() if i != self.self_id]
        return [*others, self.local()]

    def routing(self) -> Routing:
        return Routing(self.members(), self.self_id, now_ms(), self.timeout_ms)

    # ---------------------------------------------------------------- the thread

    def _run(self) -> None:
        next_beat = 0.0
        while not self._stop.is_set():
            try:
                if self._source is None:
                    self._connect_in_background()
                    self._still_here()
                    self._stop.wait(self.heartbeat_ms / 1000)
                    continue
                polled = self._source.poll(1000, 0.1)
                changed = self._absorb(polled.records, polled.ends)
                now = time.monotonic()
                if self._wake.is_set() or now >= next_beat:
                    self._wake.clear()
                    self._publish(self.local())
                    next_beat = now + self.heartbeat_ms / 1000
                    changed = True
                if changed:
                    self._write_file()
            except InfrastructureError as e:
                self._warn("broker", f"cluster membership ({self.topic}): {e}; retrying")
                self._still_here()
                self._stop.wait(1.0)
            except Exception:  # noqa: BLE001 - the membership thread must not die silently
                log.exception("cluster membership failed; retrying in 1 s")
                self._still_here()
                self._stop.wait(1.0)

    def _still_here(self) -> None:
        """The broker cannot be reached: `cluster.json` still says this worker runs, with
        its assignment as it is now (none, before the group gave it any) and the others'
        last records (they expire as their heartbeats age). Left to age, the API would
        take the worker for stopped and answer from the store alone: "absent" for every
        key of partitions held elsewhere, and, once the group session expired and the
        assignment was lost, of its own."""
        self._write_file()

    def _connect_in_background(self) -> None:
        """Try to reach the broker in a thread of its own (creating the topic and asking
        its metadata can each block for seconds with the broker away, which this thread,
        keeping `cluster.json` fresh, must not spend), unless a try is under way."""
        if self._connector is not None and self._connector.is_alive():
            return

        def attempt() -> None:
            try:
                self._connect()
            except InfrastructureError as e:
                self._warn("broker", f"cluster membership ({self.topic}): {e}; retrying")
                self._stop.wait(1.0)
            except Exception:  # noqa: BLE001 - logged, tried again by the membership thread
                log.exception("cluster membership could not start; retrying in 1 s")
                self._stop.wait(1.0)

        self._connector = threading.Thread(target=attempt, name="cluster-connect", daemon=True)
        self._connector.start()

    def _connect(self) -> None:
        from connectors.kafka import AssignedSource  # noqa: PLC0415
        from connectors.kafka_admin import create_topic  # noqa: PLC0415
        from connectors.producer import Sink  # noqa: PLC0415

        create_topic(self.conf.get("bootstrap.servers", ""), self.topic, 1,
                     {"cleanup.policy": "compact"})
        if self._sink is None:
            self._sink = Sink(self.conf)
        self._source = AssignedSource(self.conf, [self.topic], lambda t, p: None)
        log.info("cluster: member %s publishing to %s", self.self_id, self.topic)

    def _absorb(self, msgs: list[Any], ends: dict[Any, int] | None = None) -> bool:
        """Take the members' records of one poll; `ends`: where the poll reached the end of
        the topic. Records are news (heard now) from the offset where the topic's end was
        first reached, except for a while after this thread stalled (the process was
        frozen: what arrives then was published while it was, maybe by a member dead
        since; librdkafka may still hold an end it reached before the freeze)."""
        now, wall = time.monotonic(), now_ms()
        if self._absorbed is not None and now - self._absorbed > self.heartbeat_ms / 1000 + 2:
            self._backlog_until = now + max(3.0, 2 * self.heartbeat_ms / 1000)
        self._absorbed = now
        if self._news_from is None and ends:
            self._news_from = min(ends.values())
        news_from = self._news_from if now >= self._backlog_until else None
        changed = False
        for m in msgs:
            try:
                key = bytes(m.key() or b"").decode("utf-8")
            except UnicodeDecodeError:
                continue
            if not key:
                continue
            value = m.value()
            with self._lock:
                if value is None:
                    self._heard.pop(key, None)
                    self._ahead.pop(key, None)
                    changed |= self._members.pop(key, None) is not None
                    continue
            try:
                member = decode(value)
            except ValueError as e:
                self._warn(f"bad:{key}", f"cluster: skipping a record of member {key!r} on "
                           f"{self.topic} (offset {m.offset()}): {e}")
                continue
            if member.id != key:
                continue
            news = news_from is not None and (m.offset() or 0) >= news_from
            if key == self.self_id:
                if news:
                    self._check_twin(member)
                continue
            with self._lock:
                self._members[key] = member
                ahead = wall - member.heartbeat_at
                if news:
                    self._heard[key], self._ahead[key] = now, ahead
                else:  # a backlog: aged by the member's clock as this one last saw it
                    # ahead of its (none seen: the same), and heard now at the latest
                    self._heard[key] = now - max(0, ahead - self._ahead.get(key, 0)) / 1000
            changed = True
        return changed

    def _check_twin(self, member: Member) -> None:
        """A record with this worker's id that it did not write, published since this run
        read the topic to its end (not a record of an earlier run, whatever the clocks of
        the machines say): two workers share an id."""
        me = self.local()
        if (member.pid, member.started_at) != (me.pid, me.started_at):
            self._warn("twin", f"cluster: another worker (pid {member.pid}, API "
                           f"{member.url}) publishes with this worker's id {self.self_id!r}: "
                           "give every worker its own cluster.worker_id")

    def _publish(self, me: Member) -> None:
        self._sink.produce(self.topic, self.self_id.encode(), encode(me))
        self._sink.flush(max(1.0, self.heartbeat_ms / 1000))
        self.published += 1

    def _write_file(self, stopped: bool = False) -> None:
        view = {"self": self.self_id, "written_at": now_ms(), "timeout_ms": self.timeout_ms,
                "heartbeat_ms": self.heartbeat_ms, "stopped": stopped, **self.extra,
                "members": [m.to_json() for m in self.members()]}
        try:
            write_members_file(self.store_path, view)
        except OSError as e:
            self._warn("file", f"cannot write {MEMBERS_FILE} in {self.store_path}: {e}")

    def _warn(self, kind: str, message: str) -> None:
        now = time.monotonic()
        if now - self._warned.get(kind, -1e9) >= 60:
            self._warned[kind] = now
            log.warning("%s", message)

    # ---------------------------------------------------------------- stopping

    def stop(self) -> None:
        """Leave: a tombstone for this worker (the others drop it at once), then close.
        Blocks for at most a few seconds (the caller bounds it too)."""
        self._stop.set()
        self._thread.join(5)
        try:
            if self._sink is not None:
                self._sink.produce(self.topic, self.self_id.encode(), None)
                self._sink.flush(2.0)
        except InfrastructureError as e:
            log.warning("cluster: could not publish leaving the cluster: %s", e)
        if self._source is not None:
            self._source.close()
        self._write_file(stopped=True)  # the API: this worker answers nothing as owner

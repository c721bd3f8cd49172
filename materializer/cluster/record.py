"""A member's record on the membership topic: who it is, where its API is, what it holds.

Each worker publishes its record (key: the worker id, value: JSON) to the compacted topic
of its group on every assignment change and as a heartbeat; a clean stop publishes a
tombstone. Guarantees:
- `decode` accepts exactly what `encode` writes (any version-1 record); anything else is
  a ValueError naming the problem, never a half-read member.
- Partition lists are sorted, without duplicates; offsets and lags are per partition.
- Times on the topic (`assigned_at`, `heartbeat_at`) are the member's own clock; `heard_at`
  (when a reader heard from it, on the reader's clock) is only ever set by the reader
  (`cluster.json`), never taken from a record on the topic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

VERSION = 1


@dataclass(frozen=True, slots=True)
class RelationState:
    """What one member holds of one relation."""

    topic: str
    partitions: int | None  # the topic's partition count, as the member last saw it
    assigned: tuple[int, ...] = ()  # owned through the consumer group
    standby: tuple[int, ...] = ()  # kept warm by the member's group-less standby consumer
    offsets: dict[int, int] = field(default_factory=dict)  # next offset to apply
    lag: dict[int, int | None] = field(default_factory=dict)
    partitioner: str = "murmur2"
    key_format: str = "json"
    exact_keys: bool = False  # lookups can compute the partition of a key exactly
    replicated: bool = False  # every member holds every partition (not routed)

    def to_json(self) -> dict[str, Any]:
        return {"topic": self.topic, "partitions": self.partitions,
                "assigned": list(self.assigned), "standby": list(self.standby),
                "offsets": {str(p): o for p, o in sorted(self.offsets.items())},
                "lag": {str(p): n for p, n in sorted(self.lag.items())},
                "partitioner": self.partitioner, "key_format": self.key_format,
                "exact_keys": self.exact_keys, "replicated": self.replicated}

    @classmethod
    def from_json(cls, obj: Any) -> RelationState:
        if not isinstance(obj, dict) or not isinstance(obj.get("topic"), str):
            raise ValueError("a relation entry without a topic")
        n = obj.get("partitions")
        return cls(topic=obj["topic"], partitions=_opt_int(n, "partitions"),
                   assigned=_parts(obj.get("assigned", [])),
                   standby=_parts(obj.get("standby", [])),
                   offsets={int(p): _int(o, "offset") for p, o in
                            _dict(obj.get("offsets", {})).items()},
                   lag={int(p): _opt_int(o, "lag") for p, o in _dict(obj.get("lag", {})).items()},
                   partitioner=str(obj.get("partitioner", "murmur2")),
                   key_format=str(obj.get("key_format", "json")),
                   exact_keys=bool(obj.get("exact_keys", False)),
                   replicated=bool(obj.get("replicated", False)))


@dataclass(frozen=True, slots=True)
class Member:
    """One worker as its last record describes it (times are Unix milliseconds)."""

    id: str
    url: str | None  # the advertised API URL; None: the worker serves no API
    generation: int | None  # the consumer group's generation of its last assignment
    assigned_at: int  # when its assignment last changed (ties: the newest claim wins)
    heartbeat_at: int
    started_at: int = 0
    pid: int = 0
    relations: dict[str, RelationState] = field(default_factory=dict)
    heard_at: int | None = None
    """When the worker reading the record last heard from the member, by the reader's own
    clock (set in its `cluster.json`, never taken from the topic); None: not known, the
    member's own `heartbeat_at` stands for it."""

    @property
    def last_heard(self) -> int:
        """When the member was last heard from, on the reader's clock as far as known
        (`heard_at`), else by its own (`heartbeat_at`): its age and liveness are judged by
        this, never by another machine's clock when the reader heard it itself."""
        return self.heartbeat_at if self.heard_at is None else self.heard_at

    def to_json(self) -> dict[str, Any]:
        out = {"v": VERSION, "id": self.id, "url": self.url, "generation": self.generation,
               "assigned_at": self.assigned_at, "heartbeat_at": self.heartbeat_at,
               "started_at": self.started_at, "pid": self.pid,
               "relations": {n: r.to_json() for n, r in sorted(self.relations.items())}}
        if self.heard_at is not None:
            out["heard_at"] = self.heard_at
        return out

    @classmethod
    def from_json(cls, obj: Any) -> Member:
        if not isinstance(obj, dict):
            raise ValueError("a member record is not a JSON object")
        if obj.get("v") != VERSION:
            raise ValueError(f"member record version {obj.get('v')!r} (this worker reads "
                             f"version {VERSION})")
        if not isinstance(obj.get("id"), str) or not obj["id"]:
            raise ValueError("a member record without an id")
        url = obj.get("url")
        if url is not None and not isinstance(url, str):
            raise ValueError("a member record whose url is not text")
        return cls(id=obj["id"], url=url, generation=_opt_int(obj.get("generation"),
                                                               "generation"),
                   assigned_at=_int(obj.get("assigned_at"), "assigned_at"),
                   heartbeat_at=_int(obj.get("heartbeat_at"), "heartbeat_at"),
                   started_at=_int(obj.get("started_at", 0), "started_at"),
                   pid=_int(obj.get("pid", 0), "pid"),
                   relations={str(n): RelationState.from_json(r)
                              for n, r in _dict(obj.get("relations", {})).items()},
                   heard_at=_opt_int(obj.get("heard_at"), "heard_at"))


def encode(member: Member) -> bytes:
    return json.dumps(member.to_json(), separators=(",", ":")).encode()


def decode(value: bytes) -> Member:
    """A member from its record's value; ValueError if it is not one."""
    try:
        obj = json.loads(value)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"a member record that is not JSON: {e}") from None
    try:
        return replace(Member.from_json(obj), heard_at=None)  # the reader's alone to say
    except (TypeError, AttributeError) as e:
        raise ValueError(f"a malformed member record: {e}") from None


def _int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{what} is not a whole number: {v!r}")
    return v


def _opt_int(v: Any, what: str) -> int | None:
    return None if v is None else _int(v, what)


def _dict(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ValueError(f"expected a JSON object, got {type(v).__name__}")
    return v


def _parts(v: Any) -> tuple[int, ...]:
    if not isinstance(v, list):
        raise ValueError("a partition list that is not a list")
    return tuple(sorted({_int(p, "partition") for p in v}))

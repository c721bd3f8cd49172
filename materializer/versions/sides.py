"""The two sides of a diff (`materializer.versions.diff`): one version of one relation
(a snapshot's, or the live store's) held in one read transaction (`Side`, `open_side`),
and the name a relation goes by in the versions compared (`resolve_name`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from materializer.errors import AmbiguousKeyError, NotFound
from materializer.store import layout as store_layout
from materializer.store.environment import OFFSET, forget_env, offset_key
from materializer.store.generation import Generation, open_generation
from materializer.store.read import refuse_undeclared
from materializer.versions.paths import read_manifest, snapshot_dir

if TYPE_CHECKING:
    import lmdb

LIVE = "live"
"""How the live relation is named in messages (the version None)."""


class Side:
    """One version of one relation, held in one read transaction (or absent: empty)."""

    def __init__(self, label: str, gen: Generation | None, time_ms: int) -> None:
        self.label = label
        self.gen = gen
        self.time_ms = time_ms
        self.txn: lmdb.Transaction[bytes] | None = None
        self.parts: dict[int, Any] = {}
        self.offsets: dict[int, int] = {}
        self.revoked: frozenset[int] = frozenset()
        if gen is not None:
            self.txn, served = gen.begin()
            self.revoked = gen.revoked()
            self.parts = dict(served)
            for p, _ in served:
                raw = self.txn.get(offset_key(p), db=gen.meta_db)
                self.offsets[p] = OFFSET.unpack(raw)[0] if raw else 0

    def close(self) -> None:
        if self.txn is not None:
            self.txn.abort()
            self.txn = None

    def items(self, partition: int, start: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) of a partition in key order, from `start` on."""
        db = self.parts.get(partition)
        if db is None or self.txn is None:
            return iter(())
        cur = self.txn.cursor(db=db)
        ok = cur.set_range(start) if start is not None else cur.first()
        return cur.iternext() if ok else iter(())

    def ambiguous(self, key: bytes, holders: list[int]) -> AmbiguousKeyError:
        """The error for `key`, held by several partitions of this version."""
        assert self.gen is not None  # an absent version holds no key
        return self.gen.ambiguous(key, holders)

    def get(self, partition: int, key: bytes) -> bytes | None:
        db = self.parts.get(partition)
        if db is None or self.txn is None:
            return None
        return self.txn.get(key, db=db)


_OPENED: dict[Path, lmdb.Environment] = {}
"""Environments of snapshot generations this process opened for diffs (they stay cached,
so a later diff reuses them: LMDB opens a file once per process)."""
_LOCK = threading.Lock()


def forget_dropped() -> None:
    """Let go of the environments of snapshots dropped since a diff read them, so this
    process does not keep their disk space (a dropped generation is never opened again)."""
    with _LOCK:
        for path, env in list(_OPENED.items()):
            if not (path / "data.mdb").is_file():
                forget_env(env)
                del _OPENED[path]


def version_label(version: str | None) -> str:
    return LIVE if version is None else repr(version)


def open_side(root: Path, name: str, version: str | None) -> Side:
    """`name` as version `version` holds it (None: live). SnapshotNotFound for an absent
    snapshot; NotFound if a partial snapshot or the live store does not hold it."""
    if version is None:
        gen = open_generation(root, name) if store_layout.relation_exists(root, name) else None
        if gen is not None:  # as the live store answers it (Store.relation)
            refuse_undeclared(root, gen)
        return Side(LIVE, gen, time.time_ns() // 1_000_000)
    manifest = read_manifest(root, version)
    label = repr(version)
    ms = int(manifest.created_at * 1000)
    if name in manifest.relations:
        gen = open_generation(snapshot_dir(root, version), name)
        with _LOCK:
            _OPENED.setdefault(gen.path, gen.env)
        return Side(label, gen, ms)
    if name in manifest.undeclared:
        raise NotFound(f"snapshot {version!r} does not hold {name}: it was not declared when "
                       "the snapshot was taken (its rows then followed no topic), so what it "
                       "held is not known there")
    if manifest.complete:
        return Side(label, None, ms)  # it did not exist when the snapshot was taken
    held = ", ".join(sorted(manifest.relations)) or "nothing"
    raise NotFound(f"snapshot {version!r} does not hold {name}: it was taken of {held} only")


def resolve_name(root: Path, name: str, versions: Sequence[str | None],
                 default_schema: str = "public") -> str:
    """The qualified name `name` means (as is, or in `default_schema`) in any of the
    versions; NotFound if none holds it."""
    for candidate in (name, f"{default_schema}.{name}"):
        for version in versions:
            if version is None:
                if store_layout.relation_exists(root, candidate):
                    return candidate
            elif candidate in read_manifest(root, version).relations:
                return candidate
    where = " nor ".join(version_label(v) for v in versions)
    raise NotFound(f"no table or stream named {name!r} in {where}")

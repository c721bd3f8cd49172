"""Taking a snapshot: every chosen relation at one instant, copied while the worker writes.

How (`take_snapshot`):
1. Freeze: open one read transaction on every relation's environment, then check that
   none of them committed since (each environment's last transaction id is still the
   one its read transaction sees) and that no rebuild published a new generation; if
   one did, let go and try again. All read transactions then show the state at one
   instant (the moment of the check), each relation exactly as of the offsets that
   transaction reads from its `meta`. Readers never block the writer, so ingestion
   does not pause at all.
2. Copy: each environment is copied with LMDB's compacting copy inside its read
   transaction (`mdb_env_copy2` with `MDB_CP_COMPACT`, through py-lmdb's
   `Environment.copy(path, compact=True, txn=...)`): only live pages, in key order,
   so the copy is smaller than the source and walks fast.
3. Publish: into a `.tmp-` directory, fsynced, then one rename (see `paths`).

Run it in a process of its own, not inside a process that reads or writes the same
environments on other threads: py-lmdb invalidates a process's transactions when that
process adopts a grown map (`set_mapsize`), which a copy must not race with. The CLI
is such a process; the worker and the HTTP API start `materializer.versions.child`.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb

from materializer.errors import MaterializerError, NotFound, StoreError
from materializer.private_files import FILE_MODE, make_dir, write_private
from materializer.store import layout as store_layout
from materializer.store.environment import OFFSET, REVOKED, offset_key
from materializer.store.generation import Generation, open_generation
from materializer.store.lock import store_root
from materializer.store.read import refuse_undeclared, undeclared
from materializer.versions.paths import (
    Manifest,
    Pending,
    RelationEntry,
    drop_snapshot,
    list_snapshots,
)

log = logging.getLogger("materializer.versions")

FREEZE_TIMEOUT = 30.0
"""Seconds to look for an instant with no commit in any chosen relation before giving up."""


@dataclass(slots=True)
class Frozen:
    """One relation held at the snapshot's instant: its generation and read transaction."""

    name: str
    gen: Generation
    txn: lmdb.Transaction[bytes]
    parts: list[tuple[int, Any]]

    def entry(self, size: int) -> RelationEntry:
        """The manifest entry, read in the frozen transaction."""
        g, txn = self.gen, self.txn
        offsets = {}
        for p, _ in self.parts:
            raw = txn.get(offset_key(p), db=g.meta_db)
            offsets[p] = OFFSET.unpack(raw)[0] if raw else 0
        revoked = tuple(sorted(_json_list(txn.get(REVOKED, db=g.meta_db))))
        rows = sum(txn.stat(db)["entries"] for p, db in self.parts if p not in revoked)
        return RelationEntry(g.meta.kind, offsets, rows, size, revoked)


def _json_list(raw: bytes | None) -> list[int]:
    return [int(x) for x in json.loads(raw)] if raw else []


def resolve(root: Path, names: Iterable[str] | None, default_schema: str = "public"
            ) -> tuple[list[str], bool, list[str]]:
    """The qualified names to snapshot (every relation of the store when `names` is None),
    whether that is all of them, and the relations the store holds but no longer declares
    (left out: the store serves none). NotFound names a relation the store does not hold."""
    present = store_layout.names(root)
    left_out: list[str] = []
    if store_layout.read_declared(root) is not None:  # not the relations no longer declared:
        left_out = [n for n in present if _undeclared(root, n)]  # the store serves none
        present = [n for n in present if n not in left_out]
    if names is None:
        return present, True, left_out
    out: list[str] = []
    for name in names:
        for candidate in (name, f"{default_schema}.{name}"):
            if candidate in present:
                if candidate not in out:
                    out.append(candidate)
                break
            if store_layout.relation_exists(root, candidate):  # not declared any more
                refuse_undeclared(root, open_generation(root, candidate))
        else:
            held = ", ".join(present) or "none yet"
            raise NotFound(f"no table or stream named {name!r} in the store (it holds: {held})")
    return out, set(out) == set(present), left_out


def _undeclared(root: Path, name: str) -> bool:
    """Whether relation `name` is no longer declared (see `store.undeclared`): its rows do
    not follow its topic, so a snapshot would hold them as of some earlier time."""
    try:
        return undeclared(root, open_generation(root, name))
    except NotFound:
        return False  # no metadata yet: `freeze` leaves it out


def freeze(root: Path, names: Sequence[str], timeout: float = FREEZE_TIMEOUT) -> list[Frozen]:
    """Read transactions on every relation in `names`, all showing one instant (see the
    module doc). The caller aborts them (`release`)."""
    gens: dict[str, Generation] = {}
    for n in names:
        try:
            gens[n] = open_generation(root, n)
        except NotFound:
            continue  # created but not started yet: not part of the store's state
    deadline = time.monotonic() + timeout
    while True:
        held = []
        try:
            for n, g in gens.items():
                txn, parts = g.begin(every=True)
                held.append(Frozen(n, g, txn, parts))
            moved = [f.name for f in held if f.gen.env.info()["last_txnid"] != f.txn.id()]
            stale = [n for n, g in gens.items() if store_layout.token(root, n) != g.token]
        except BaseException:
            release(held)
            raise
        if not moved and not stale:
            return held
        release(held)
        if time.monotonic() > deadline:
            raise StoreError(f"found no instant without a commit in {', '.join(moved or stale)} "
                             f"within {timeout:.0f} s: try again")
        for n in stale:
            try:
                gens[n] = open_generation(root, n)
            except NotFound:
                del gens[n]  # dropped meanwhile


def release(held: Iterable[Frozen]) -> None:
    for f in held:
        f.txn.abort()


def take_snapshot(store_path: str | os.PathLike[str], name: str,
                  relations: Iterable[str] | None = None, *, scheduled: bool = False,
                  default_schema: str = "public") -> Manifest:
    """Take snapshot `name` of `relations` (names, qualified or in `default_schema`; every
    relation of the store when None) and return its manifest. SnapshotExists if the name
    is taken, NotFound for an unknown relation; nothing is listed unless it succeeds."""
    root = store_root(store_path, create=False)
    if not root.is_dir():
        raise NotFound(f"no data directory at {store_path}")
    names, complete, undeclared = resolve(root, relations, default_schema)
    pending = Pending(root, name)
    try:
        t0 = time.monotonic()
        held = freeze(root, names)
        created_at = time.time()
        try:
            entries = _copy_all(pending.path, held)
        finally:
            release(held)
        manifest = Manifest(name, created_at, scheduled, complete, entries,
                            tuple(undeclared) if complete else ())
        pending.publish(manifest)
    except BaseException:
        pending.discard()
        raise
    log.info("snapshot %s taken: %d relation(s), %d bytes, %.2f s", name, len(entries),
             manifest.bytes, time.monotonic() - t0)
    return manifest


def _copy_all(dest: Path, held: Sequence[Frozen]) -> dict[str, RelationEntry]:
    """Copy every frozen relation into `dest` in the store's layout; their manifest entries.
    Each read transaction is let go as soon as its copy is done."""
    relations = dest / store_layout.RELATIONS
    make_dir(relations)
    gen_id = secrets.token_hex(6)  # a new generation name: views of a dropped one notice
    entries = {}
    for f in held:
        key = store_layout.relation_key(f.name)
        gen = relations / f"{key}@{gen_id}"
        make_dir(gen)
        try:
            f.gen.env.copy(str(gen), compact=True, txn=f.txn)
        except lmdb.Error as e:
            raise StoreError(f"cannot copy {f.name} into the snapshot: {e}") from e
        data = gen / "data.mdb"
        os.chmod(data, FILE_MODE)
        write_private(gen / store_layout.NAME_FILE, f.name.encode(), new=True)
        write_private(gen / "lock.mdb", b"", new=True)  # readers' lock file, the owner's only
        os.symlink(gen.name, relations / key)
        entries[f.name] = f.entry(data.stat().st_size)
        f.txn.abort()
    return entries


def prune(store_path: str | os.PathLike[str], keep: int, taken: Manifest | None = None
          ) -> list[str]:
    """Drop the oldest scheduled snapshots beyond the newest `keep`; the names dropped.
    Snapshots taken by hand are never dropped here. `taken`, the snapshot just taken, is
    the newest whatever its `created_at`, and every snapshot dated after it was taken
    before it (the clock went back since): those count as the oldest, so a clock that
    was once ahead neither drops the snapshot just taken nor keeps its own forever."""
    scheduled = [m for m in list_snapshots(store_path) if m.scheduled]
    if taken is not None and taken.scheduled:
        scheduled = [m for m in scheduled if m.name != taken.name]
        scheduled.sort(key=lambda m: (m.created_at <= taken.created_at, m.created_at, m.name))
        keep -= 1
    dropped = []
    for m in scheduled[:max(0, len(scheduled) - keep)]:
        try:
            drop_snapshot(store_path, m.name)
            dropped.append(m.name)
        except MaterializerError as e:  # dropped by someone else meanwhile
            log.warning("could not drop snapshot %s: %s", m.name, e)
    return dropped

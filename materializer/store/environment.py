"""LMDB environments (one per relation and process), paths, metadata and key layout of `meta`."""

from __future__ import annotations

import json
import os
import struct
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb

from materializer.columns import ColumnType, key_unit, parse_type
from materializer.errors import ForkedError, StoreError
from materializer.private_files import FILE_MODE, make_dir
from materializer.store.layout import drop, generations

META = b"meta"
REVOKED = b"revoked"
SERVED = b"served"  # b"<partitions JSON>|<revoked JSON>", what readers read per lookup
"""Meta key: JSON list of the partitions revoked from this store's worker (not current)."""
LIVE_WRITER = b"live_writer"
"""Meta key: JSON `{pid, process}` of the process that applies this relation's partitions
while others apply the rest (a faust worker beside others of its app); absent otherwise."""
OFFSET = struct.Struct(">Q")
_LOCK = threading.Lock()
_ENVS: dict[tuple[int, int], tuple[lmdb.Environment, bool]] = {}
_OPEN: weakref.WeakValueDictionary[tuple[int, int], lmdb.Environment] = \
    weakref.WeakValueDictionary()
"""Every environment this process opened, by file, while anything holds it: the cache
(`_ENVS`) lets go of environments (`forget_env`) that views, diffs or generations still
use, and reopening such a file must give that environment back (LMDB opens a file once
per process; py-lmdb refuses a second open: "already open in this process")."""
_INHERITED: dict[tuple[int, int], tuple[lmdb.Environment, int]] = {}
"""In a process created by fork(): every environment its parent had open, by file, with the
parent's pid. Never used nor closed here (see `_after_fork_in_child`)."""
_PID = os.getpid()
READ_MAP_RESERVE = 1 << 36
"""Address space a reader of a live relation maps at open: the default ceiling of the
worker's map (`store.map_size`, 64 GiB), so the file grows within it. A reader that maps
less must map again when the worker's data outgrows its mapping (MDB_MAP_RESIZED, adopted
by `begin`), and py-lmdb's `set_mapsize` invalidates every transaction and cursor of the
environment meanwhile: a read in progress (a diff iterator held across a `get`, another
thread's scan) failed with "Attempt to operate on closed/deleted/dropped object".
py-lmdb's default (10 MiB) made that happen soon after every reader's start. Address space
only (no memory, nor disk); a snapshot's files, which never grow, map what they hold."""
MAX_DBS = 4096
RESERVED_DBS = 2
"""Named databases of a relation's environment that are not partitions: its meta and its
change-event outbox (`OUTBOX_DB`)."""
MAX_PARTITIONS = MAX_DBS - RESERVED_DBS
"""Partitions one relation's store holds: one named database each (`partition_db_name`).
A topic with more cannot be applied by one worker (README "Limits")."""
SPARE_READ_TXNS = 4
"""Read transactions py-lmdb keeps for reuse (reset, then renewed by the next begin).
Without them (py-lmdb 3's default) every begin allocates a transaction sized by
MAX_DBS, about 3 us, half the cost of a point lookup."""


def too_many_partitions(path: Any, partition: int, held: int) -> str:
    """The error for partition `partition` of a relation whose store at `path` already
    opened `held` partitions, when LMDB has no named database left for it."""
    return (f"{path}: cannot store partition {partition}: a relation's store holds at most "
            f"{MAX_PARTITIONS:,} partitions (one LMDB named database each; the limit is "
            f"{MAX_DBS:,} named databases, {RESERVED_DBS} of them kept for the relation's "
            f"own use) and {held:,} are open already. Nothing of the batch was written. "
            "Declare the relation over a topic with fewer partitions, or share the topic "
            "among several workers of one group so that each holds fewer.")


def open_partition_db(env: lmdb.Environment, path: Any, partition: int, txn: Any,
                      held: int) -> Any:
    """The named database of `partition` in `txn` (a write transaction), for a writer that
    holds `held` partitions open: StoreError (`too_many_partitions`) past MAX_PARTITIONS,
    the same limit with or without an outbox."""
    if held >= MAX_PARTITIONS:
        raise StoreError(too_many_partitions(path, partition, held))
    try:
        return env.open_db(partition_db_name(partition), txn=txn)
    except lmdb.DbsFullError as e:
        raise StoreError(too_many_partitions(path, partition, held)) from e


def partition_db_name(partition: int) -> bytes:
    return b"p:%d" % partition


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = (path / "data.mdb").stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def open_env(path: Path, writable: bool, map_size: int) -> lmdb.Environment:
    """One environment per LMDB file and process (LMDB forbids opening one twice; the
    cache knows a file by its inode, so a relation moved to another directory is still
    the same environment).

    Each generation of a relation (see `layout`) is a new file, never reused, so a
    cached environment never goes stale: a reader that sees a newer generation opens
    that one and lets go of the old one (`forget_env`). A file whose environment the
    cache let go of but something still uses gets that environment back (not cached
    again: it closes when its last user lets go). A writer in this process serves
    reads too. A reader maps `map_size` bytes of address space, at least the file (LMDB
    raises a smaller map to the file's pages; 0: the writer's map as the file records it;
    see READ_MAP_RESERVE)."""
    with _LOCK:
        fid = _file_id(path)
        found = _in_use(fid) if fid is not None else None
        if found is not None:
            env, is_writable = found
            if is_writable or not writable:
                return env
            raise StoreError(f"{path} is open read-only in this process: open its writer "
                             "before reading it here")
        if fid is not None and fid in _INHERITED:
            raise _forked_error(path, _INHERITED[fid][1])
        try:
            if writable:
                make_dir(path)
                env = lmdb.open(str(path), map_size=map_size, max_dbs=MAX_DBS,
                                max_readers=512, sync=True, metasync=True, mode=FILE_MODE,
                                max_spare_txns=SPARE_READ_TXNS)
                for f in ("data.mdb", "lock.mdb"):  # LMDB's mode is subject to the umask
                    os.chmod(path / f, FILE_MODE)
            else:
                env = lmdb.open(str(path), readonly=True, lock=True, max_dbs=MAX_DBS,
                                max_readers=512, create=False, max_spare_txns=SPARE_READ_TXNS,
                                map_size=map_size)
            env.reader_check()  # clear reader slots left by crashed processes
        except lmdb.MemoryError as e:  # mmap: ENOMEM
            raise StoreError(_no_address_space(path, writable, map_size, e)) from e
        except (lmdb.Error, OSError) as e:
            raise StoreError(f"cannot open LMDB environment {path}: {e}") from e
        fid = _file_id(path)
        if fid is not None:
            _ENVS[fid] = (env, writable)
            _OPEN[fid] = env
        return env


def _no_address_space(path: Path, writable: bool, map_size: int, e: lmdb.Error) -> str:
    """Why an environment could not be mapped (ENOMEM): address space, not memory."""
    size = f"{map_size:,} bytes of " if map_size > 1 else ""
    what, fix = (("its writer maps `store.map_size`", ", or lower `store.map_size` in the "
                  "declaration file") if writable else
                 ("a reader maps 64 GiB of each live relation it opens", ""))
    return (f"cannot open LMDB environment {path}: {e}: this process cannot reserve "
            f"{size}address space for it ({what}: address space only, neither memory nor "
            "disk), because of its limit (`ulimit -v`) or the address space the "
            f"environments it already has open hold. Raise or remove `ulimit -v`{fix}")


def _forked_error(path: Path, parent: int) -> ForkedError:
    return ForkedError(
        f"{path}: this process ({os.getpid()}) was forked from process {parent}, which had "
        "this file open; LMDB environments cannot be used across fork() (readers would share "
        "or leak the parent's slots in the lock file), and the file cannot be opened again "
        "in this process while the inherited one exists. Open the Store in the child only, "
        "after the fork (not in the parent before it), or start children with "
        "multiprocessing's 'spawn' or 'forkserver' method")


class ForkedEnv:
    """What a forked child holds in place of an environment its parent opened: any use
    raises ForkedError (the parent's environment object is kept, never used nor closed)."""

    __slots__ = ("path", "parent")

    def __init__(self, path: Path, parent: int) -> None:
        self.path = path
        self.parent = parent

    def __getattr__(self, name: str) -> Any:
        raise _forked_error(self.path, self.parent)


def forked_env(env: lmdb.Environment) -> ForkedEnv | None:
    """In a forked child, the stand-in for `env` if the parent opened it (else None)."""
    for inherited, parent in _INHERITED.values():
        if inherited is env:
            try:
                path = Path(env.path())
            except lmdb.Error:
                path = Path("?")
            return ForkedEnv(path, parent)
    return None


def _after_fork_in_child() -> None:
    """A process created by fork() must not use its parent's environments: LMDB records
    readers in the lock file by the opener's pid, so a child's read transactions would
    take slots under the parent's pid (never freed while the parent lives: the table fills
    up, MDB_READERS_FULL for every reader of the file) or renew the parent's own cached
    slot (the parent's snapshot unprotected: pages reused under it). Closing them here is
    no better (closing aborts the parent's cached transactions, freeing its slots). So the
    child keeps them aside, unused and open, and refuses them (ForkedError)."""
    global _LOCK, _PID
    parent, _PID = _PID, os.getpid()
    _LOCK = threading.Lock()  # another thread may have held it at the fork
    for fid, (env, _) in list(_ENVS.items()):
        _INHERITED.setdefault(fid, (env, parent))
    for fid, env in list(_OPEN.items()):
        _INHERITED.setdefault(fid, (env, parent))
    _ENVS.clear()
    _OPEN.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _in_use(fid: tuple[int, int]) -> tuple[lmdb.Environment, bool] | None:
    """(environment, writable) of file `fid` if this process has it open: cached, or let
    go of by the cache but still held. Call with `_LOCK` held."""
    cached = _ENVS.get(fid)
    if cached is not None:
        return cached
    env = _OPEN.get(fid)
    if env is None:
        return None
    try:
        readonly = bool(env.flags()["readonly"])
    except lmdb.Error:  # closed (its file, gone, may have lent `fid` to a new one)
        _OPEN.pop(fid, None)
        return None
    return env, not readonly


def cached_env(path: Path) -> lmdb.Environment | None:
    """This process's open environment of `path`, if any."""
    with _LOCK:
        fid = _file_id(path)
        cached = _ENVS.get(fid) if fid is not None else None
    return None if cached is None else cached[0]


def forget_env(env: lmdb.Environment) -> None:
    """Drop `env` from this process's cache without closing it (its files may be gone
    already): whatever still uses it keeps it alive, and it closes when the last user
    lets go. Until then, opening its file again gives it back (`open_env`)."""
    with _LOCK:
        for fid, (cached, _) in list(_ENVS.items()):
            if cached is env:
                del _ENVS[fid]


def read_txn(env: lmdb.Environment) -> lmdb.Transaction[bytes]:
    """A read transaction (see `begin`)."""
    return begin(env)


def begin(env: lmdb.Environment, *, write: bool = False, db: Any = None
          ) -> lmdb.Transaction[bytes]:
    """A transaction; if another process (a writer, or a worker of `run --processes N`
    sharing the store) grew the file past this process's mapping, adopt the new size
    first (LMDB reports that as MapResizedError). Call with no transaction of this process
    open on `env` (LMDB's condition for adopting the size)."""
    try:
        return env.begin(write=write, db=db)
    except lmdb.MapResizedError:
        env.set_mapsize(0)
        return env.begin(write=write, db=db)


def open_existing_db(env: lmdb.Environment, name: bytes) -> Any:
    """`env.open_db(name, create=False)` (lmdb.NotFoundError if it does not exist), adopting
    a map another process grew since this one's last transaction (LMDB reports it as
    MapResizedError there too: a snapshot opening a relation while its worker grew it
    exited with MDB_MAP_RESIZED once). Call with no transaction of this process open."""
    return open_db(env, name, create=False)


def open_db(env: lmdb.Environment, name: bytes, *, create: bool = True) -> Any:
    """`env.open_db(name, create=create)`, adopting a map another process grew since this
    one's last transaction (as `begin`). Call with no transaction of this thread open.

    On a writable environment the handle is opened in a write transaction begun here:
    py-lmdb's own (`open_db` without `txn`) waited for the writer's lock holding the GIL,
    so when another thread of this process was writing (a `Store` read beside an
    in-process worker) the writer could not go on to release it: the process hung.
    Beginning the transaction waits without the GIL."""
    try:
        return _open_db(env, name, create)
    except lmdb.MapResizedError:
        env.set_mapsize(0)
        return _open_db(env, name, create)


def _open_db(env: lmdb.Environment, name: bytes, create: bool) -> Any:
    if env.flags()["readonly"]:  # a read transaction inside: no writer's lock
        return env.open_db(name, create=create)
    with env.begin(write=True) as txn:
        return env.open_db(name, txn=txn, create=create)


def close_env(path: Path) -> None:
    """Close this process's environment of `path`, cached or only still in use (anything
    still using it fails)."""
    with _LOCK:
        fid = _file_id(path)
        found = _in_use(fid) if fid is not None else None
        if fid is not None:
            _ENVS.pop(fid, None)
            _OPEN.pop(fid, None)
    if found is not None:
        found[0].close()


def drop_relation(data_dir: str | os.PathLike[str], name: str) -> bool:
    """Delete the local state of one relation. Returns whether it existed. Readers in
    other processes keep reading the deleted files until they notice it is gone."""
    for path in generations(data_dir, name):
        with _LOCK:
            fid = _file_id(path)
            if fid is not None:
                _ENVS.pop(fid, None)
    return bool(drop(data_dir, name))


# ------------------------------------------------------------------------- metadata


@dataclass(frozen=True, slots=True)
class RelationMeta:
    """What a reader needs to interpret a relation's bytes, read from its `meta` DB."""

    identity: dict[str, Any]
    layout: tuple[str, ...]

    @property
    def kind(self) -> str:
        return str(self.identity["kind"])

    @property
    def name(self) -> str:
        return str(self.identity["name"])

    @property
    def key_columns(self) -> tuple[str, ...]:
        return tuple(self.identity["key"])

    def column_types(self) -> dict[str, ColumnType]:
        return {c[0]: parse_type(c[1])[0] for c in self.identity["columns"]}

    def key_types(self) -> tuple[ColumnType, ...]:
        """The key columns' types, a time or timestamp column's with the integer unit it
        declares (`encoding: us | ns`, kept in the identity's rules; the type text leaves
        encodings out): a key given as an integer (`Store.get(1_000_000)`, a JSON number in
        `POST /lookup`) counts that unit, as the producer's key did, not milliseconds."""
        types = self.column_types()
        units = (self.identity.get("rules") or {}).get("encodings") or {}
        return tuple(key_unit(types[c], units.get(c)) for c in self.key_columns)


def read_meta(txn: lmdb.Transaction[bytes], meta_db: Any) -> RelationMeta | None:
    ident = txn.get(b"identity", db=meta_db)
    layout = txn.get(b"layout", db=meta_db)
    if ident is None or layout is None:
        return None
    return RelationMeta(json.loads(ident), tuple(json.loads(layout)))


def offset_key(partition: int) -> bytes:
    return b"offset:%d" % partition


def counter_key(partition: int, name: str) -> bytes:
    return b"count:%d:" % partition + name.encode()

"""One generation of a relation's files, open for reading: its environment, metadata,
key encoding, and which partitions it serves (`Generation`, `open_generation`).

A `rebuild` publishes a new generation beside the old one; readers (`store.read`'s views,
snapshots, diffs, the faust store) open the current one here and switch when it changes.
"""

from __future__ import annotations

import json
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import lmdb

from materializer.columns import ColumnType
from materializer.errors import AmbiguousKeyError, NotFound, StoreError, UsageError
from materializer.store import layout as _layout
from materializer.store.environment import (
    META,
    READ_MAP_RESERVE,
    REVOKED,
    SERVED,
    RelationMeta,
    forked_env,
    open_env,
    open_existing_db,
    partition_db_name,
    read_meta,
    read_txn,
)
from materializer.store.keys import KeyCodec, key_component_encoder
from materializer.store.rows import RowLayout
from materializer.values import key_storage
from materializer.versions.paths import MANIFEST, SNAPSHOTS, SnapshotNotFound, snapshot_names


def key_storage_converters(types: Sequence[ColumnType]) -> tuple[Any, ...]:
    return tuple(key_storage(t) for t in types)


class Generation:
    """One opened generation of a relation: its environment, metadata and everything
    derived from them (key codec, row layout), plus lazily opened partition DBs."""

    def __init__(self, token: str, path: Path, env: lmdb.Environment, meta_db: Any,
                 meta: RelationMeta) -> None:
        self.token = token
        self.path = path
        self.env = env
        self.meta_db = meta_db
        self.meta = meta
        types = meta.column_types()
        self.name = meta.name
        self.key_columns = meta.key_columns
        self.key_types = meta.key_types()
        self.key_codec = KeyCodec(self.key_types)
        self.layout = RowLayout(meta.layout, [types[c] for c in meta.layout])
        self.key_convs = key_storage_converters(self.key_types)
        self.single = self.key_convs[0] if len(self.key_convs) == 1 else None
        self._plain_key = _plain_key_encoder(self.key_types)
        self._dbs: dict[int, Any] = {}
        # how many partition DBs this generation has opened, and when each was (that count
        # just after its open): a read transaction may use only DBs opened before it began
        self._opened = 0
        self._opened_at: dict[int, int] = {}
        self._open_lock = threading.Lock()
        # (snapshot id it was read in, partitions raw, revoked raw, every partition, the
        # ones not revoked, the latest `_opened_at` of those partitions), swapped whole
        # (threads share a generation)
        self._state: tuple[int, bytes, bytes, list[tuple[int, Any]], list[tuple[int, Any]],
                           int] = (-1, b"[]", b"[]", [], [], 0)
        _GENERATIONS.add(self)

    def begin(self, every: bool = False
              ) -> tuple[lmdb.Transaction[bytes], list[tuple[int, Any]]]:
        """A read transaction and the partitions (number, DB) to read in it: those that
        existed when it began, less those revoked from this store's worker (a rebalance
        gave them to another one: their rows are not current), or all with `every`.

        Named DBs are opened outside any transaction: a handle opened inside a
        read-only transaction is not usable in later ones (py-lmdb 3).

        The partition lists are reread only when the snapshot changed (its LMDB
        transaction id differs from the one they were read in): between two commits
        of the writer, a lookup costs no meta read.

        A DB handle is valid only in transactions begun after it was opened (LMDB): a
        thread whose transaction began while another opened the partitions (the first
        reads of a generation, partitions assigned since) begins again rather than read
        them with handles its transaction does not know ("mdb_get: Invalid argument")."""
        while True:
            opened = self._opened  # before the transaction begins
            txn = read_txn(self.env)
            snapshot = txn.id()
            state = self._state
            if snapshot == state[0] and state[5] <= opened:  # the same SERVED value
                return txn, state[3] if every else state[4]
            served = txn.get(SERVED, None, db=self.meta_db)
            if served is not None:
                raw, _, rev = bytes(served).partition(b"|")
            else:  # written before SERVED existed
                raw = txn.get(b"partitions", b"[]", db=self.meta_db)
                rev = txn.get(REVOKED, b"[]", db=self.meta_db)
            if raw == state[1] and rev == state[2] and state[5] <= opened:
                self._state = (snapshot, state[1], state[2], state[3], state[4], state[5])
                return txn, state[3] if every else state[4]
            numbers = json.loads(raw)
            missing = [p for p in numbers if p not in self._dbs]
            if not missing:
                latest = max((self._opened_at[p] for p in numbers), default=0)
                if latest <= opened:
                    revoked = set(json.loads(rev))
                    parts = [(p, self._dbs[p]) for p in sorted(numbers)]
                    self._state = (snapshot, raw, rev, parts,
                                   [x for x in parts if x[0] not in revoked], latest)
                    return txn, self._state[3] if every else self._state[4]
            txn.abort()
            for p in missing:
                db = open_existing_db(self.env, partition_db_name(p))
                with self._open_lock:
                    if p not in self._dbs:
                        self._opened += 1
                        self._opened_at[p] = self._opened
                        self._dbs[p] = db

    def served(self) -> list[tuple[int, Any]]:
        """The partitions not revoked, as of the last `begin`."""
        return self._state[4]

    def revoked(self) -> frozenset[int]:
        """The partitions marked revoked, as of the last `begin` (a partition may be
        marked before this store holds any of it)."""
        return frozenset(json.loads(self._state[2]))

    def key_tuple(self, key: Any) -> tuple[Any, ...]:
        """A user key (bare value or tuple, Python or stored form) to a stored key tuple."""
        if self.single is not None and not isinstance(key, tuple | list):
            try:
                return (None if key is None else self.single(key),)
            except (TypeError, ValueError) as e:
                raise UsageError(f"key {key!r} does not fit ({self.key_columns[0]}): {e}") \
                    from e
        values = key if isinstance(key, tuple | list) else (key,)
        if len(values) != len(self.key_convs):
            raise UsageError(
                f"{self.name} has key ({', '.join(self.key_columns)}): "
                f"expected {len(self.key_convs)} value(s), got {len(values)}")
        try:
            # lengths checked above; no strict=, which costs ~200 ns a lookup on 3.11
            return tuple(None if v is None else c(v)
                         for c, v in zip(self.key_convs, values))  # noqa: B905
        except (TypeError, ValueError) as e:
            raise UsageError(f"key {key!r} does not fit ({', '.join(self.key_columns)}): {e}") \
                from e

    def encode_key(self, key: Any) -> bytes:
        """A user key (as `key_tuple` takes it) encoded; UsageError naming the key if it
        does not fit, a string that is not valid Unicode included (a lone surrogate:
        `surrogateescape`d command-line bytes that are not UTF-8)."""
        try:  # free until raised (3.11): the plain path costs what it did
            plain = self._plain_key
            if plain is not None:
                # (k,), as the API's key parser gives it, is k
                kb = plain(key[0] if key.__class__ is tuple and len(key) == 1 else key)
                if kb is not None:
                    return kb
            return self.key_codec.encode(self.key_tuple(key))
        except UnicodeEncodeError:
            shown = repr(key)
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            raise UsageError(f"key {shown} does not fit ({', '.join(self.key_columns)}): "
                             "a string that is not valid Unicode (a lone surrogate, such as "
                             "bytes that are not UTF-8 read as text)") from None

    def find(self, kb: bytes, first: bool = False) -> bytes | None:
        """The stored row of encoded key `kb` in the served partitions, or None: one
        short read transaction (`find_in`)."""
        txn, parts = self.begin()
        try:
            return self.find_in(txn, parts, kb, first)
        finally:
            txn.abort()  # a read transaction: abort is its commit, and cheaper

    def find_in(self, txn: lmdb.Transaction[bytes], parts: Sequence[tuple[int, Any]],
                kb: bytes, first: bool = False) -> bytes | None:
        """The row of encoded key `kb` among `parts`, or None. Every partition is asked:
        a key that more than one holds raises AmbiguousKeyError (never one of its rows
        as if it were the latest); `first`: the first partition's row instead."""
        get = txn.get
        found: bytes | None = None
        for _, db in parts:
            raw: bytes | None = get(kb, None, db)  # positional: ~30% cheaper a probe
            if raw is not None:
                if first:
                    return raw
                if found is not None:
                    raise self.ambiguous_in(txn, parts, kb)
                found = raw
        return found

    def ambiguous_in(self, txn: lmdb.Transaction[bytes], parts: Sequence[tuple[int, Any]],
                     kb: bytes) -> AmbiguousKeyError:
        """The error for table key `kb`, held by more than one of `parts` in `txn`."""
        return self.ambiguous(kb, [p for p, db in parts if txn.get(kb, None, db) is not None])

    def ambiguous(self, kb: bytes, holders: Sequence[int]) -> AmbiguousKeyError:
        """The error for table key `kb`, held by partitions `holders` (two or more)."""
        key = self.key_codec.decode(kb)
        shown = repr(key[0] if len(key) == 1 else key)
        where = ", ".join(map(str, holders[:-1])) + f" and {holders[-1]}"
        return AmbiguousKeyError(
            f"{self.name}: key {shown} is held by partitions {where}: its records went to "
            "more than one partition of the topic (producers that partition differently, "
            "or a partition count that grew), so which row is the latest cannot be told and "
            "none is answered. Produce a tombstone for the key to each partition that should "
            "not hold it (kcat: -p N), then its current value.")


_GENERATIONS: weakref.WeakSet[Generation] = weakref.WeakSet()
"""Every generation open in this process, so that a forked child can refuse the ones its
parent opened (`_after_fork_in_child`)."""


def _after_fork_in_child() -> None:
    """In a process created by fork(): generations opened by the parent (views, snapshots
    and diffs the child inherited) raise ForkedError on their next read instead of using
    the parent's environment (see `environment._after_fork_in_child`, which runs first)."""
    for g in list(_GENERATIONS):
        stand_in = forked_env(g.env)
        if stand_in is not None:
            g.env = cast(lmdb.Environment, stand_in)


os.register_at_fork(after_in_child=_after_fork_in_child)


def _plain_key_encoder(types: Sequence[ColumnType]) -> Callable[[Any], bytes | None] | None:
    """For a one-column int, long or string key: the encoding of a plain key value of
    exactly that Python type (in range), else None, so the caller takes the general
    path (which converts other forms and raises UsageError for what does not fit)."""
    if len(types) != 1 or types[0].kind not in ("int", "long", "string"):
        return None
    enc = key_component_encoder(types[0])
    if types[0].kind == "string":
        return lambda key: enc(key) if key.__class__ is str else None
    lo, hi = (-(2**31), 2**31 - 1) if types[0].kind == "int" else (-(2**63), 2**63 - 1)
    return lambda key: enc(key) if key.__class__ is int and lo <= key <= hi else None


def open_generation(data_dir: Path, name: str) -> Generation:
    """The current generation of relation `name`, opened for reading.

    Raises NotFound if there is no such relation or it has no metadata yet."""
    for _ in range(5):
        found = _layout.current(data_dir, name)
        if found is None or not (found[1] / "data.mdb").is_file():
            break
        token, path = found
        try:
            # a live relation grows under its readers: they map the reserve (no remap); a
            # snapshot's file never grows: it maps what it holds (LMDB raises a smaller map
            # to the file's pages), not the writer's whole map that the file records
            env = open_env(path, False, 1 if (data_dir / MANIFEST).is_file()
                           else READ_MAP_RESERVE)
        except StoreError:
            if _layout.token(data_dir, name) != token:
                continue  # replaced (by a rebuild) while opening: open the new one
            raise
        try:
            meta_db = open_existing_db(env, META)
        except lmdb.NotFoundError:
            raise NotFound(f"{name} has no metadata yet (the worker has not started it)") \
                from None
        with read_txn(env) as txn:
            meta = read_meta(txn, meta_db)
        if meta is None:
            raise NotFound(f"{name} has no metadata yet (the worker has not started it)")
        return Generation(token, path, env, meta_db, meta)
    if data_dir.parent.name == SNAPSHOTS and not data_dir.is_dir():  # a snapshot, dropped
        raise SnapshotNotFound(data_dir.name, snapshot_names(data_dir.parent.parent))
    raise NotFound(f"no table or stream named {name!r} in {data_dir}")

"""Read-only views: the plumbing shared by tables and streams (`RelationReader`);
`TableView` is in `table_view`, `StreamView` in `stream_view`. Usable from any process
while a worker writes."""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from time import monotonic as _monotonic
from typing import Any

import lmdb

from materializer.columns import ColumnType
from materializer.errors import MemberNotRunning, NotFound, PartitionsNotHeld, UsageError
from materializer.lookup_args import check_limit
from materializer.store import layout as _layout
from materializer.store.environment import (
    OFFSET,
    RelationMeta,
    forget_env,
    offset_key,
)
from materializer.store.generation import Generation, open_generation
from materializer.store.keys import (
    KeyCodec,
)
from materializer.store.liveness import live_writer_gone, member_stopped
from materializer.store.rows import RowLayout
from materializer.versions.paths import MANIFEST

# --------------------------------------------------------------------------- readers


def undeclared(data_dir: str | os.PathLike[str], generation: Generation) -> bool:
    """Whether `generation` is a worker's relation that the configuration `materializer run`
    last started with does not declare (renamed or removed): its rows no longer follow
    its topic. Relations other libraries keep (faust's) are never undeclared."""
    if generation.meta.identity.get("view") is not None:
        return False
    declared = _layout.read_declared(data_dir)
    return declared is not None and generation.name not in declared


def refuse_undeclared(data_dir: str | os.PathLike[str], generation: Generation) -> None:
    """NotFound naming why, for a relation no longer declared (`undeclared`)."""
    if undeclared(data_dir, generation):
        raise _undeclared_error(generation.name)


def _undeclared_error(name: str) -> NotFound:
    return NotFound(f"{name} is in the store but not declared by the configuration "
                    "`materializer run` last started with: its rows no longer follow its "
                    "topic (declare it again to resume it, or `materializer rebuild` it)")


CHECK_INTERVAL = 0.1
"""Seconds between a view's checks of which generation of its relation is current."""

class RelationReader:
    """Shared read plumbing of table and stream views.

    A view is bound to its relation's name, not to its files: at most every
    `CHECK_INTERVAL` seconds it checks which generation is current (one `readlink`)
    and, after a `rebuild` published a new one, switches to it (reopening the
    environment and rereading the metadata). Until then it reads the replaced
    generation, whose files stay readable while mapped. So a view kept across a
    rebuild answers from the old state, then from the new one, and never fails
    because of it. Each call reads one generation in one read transaction.

    Partitions marked revoked from this store's worker (another worker holds them, or the
    group session was lost with the broker) are not read, so a read that misses while
    there are any cannot say "absent": `get`, `get_many` (a miss), `events` (any: one
    key's events may be in several partitions, the newest in a revoked one) and `scan`
    raise PartitionsNotHeld then, unless `held_only=True` asks for the partitions
    this store holds alone (what a cluster worker answers for its own). Views of a
    snapshot raise likewise when the snapshot was taken while partitions were revoked (a
    cluster worker's snapshot holds its own partitions only).

    The store of a cluster member whose worker does not run (`member_stopped`) is not read
    as current: `get`, `get_many`, `events`, `scan` and `len` raise MemberNotRunning
    (`held_only` too: the partitions it held may have moved to a worker that applied newer
    rows since), as `materializer get`/`scan` refuse; a store outside any cluster is read
    as it is (nobody else applies its partitions). Views of a snapshot are points in time
    and read as they are. (The plumbing that serves a cluster, `scan_raw`,
    `partition_copy`, `get_many_from`, and `partition_stats`, is not refused.)
    """

    def __init__(self, data_dir: Path, generation: Generation) -> None:
        self._data_dir = data_dir
        self._g = generation
        self._check_at = _monotonic() + CHECK_INTERVAL
        # where a miss is told of: the live store, or "snapshot '<name>'"
        self._version = f"snapshot {data_dir.name!r}" if (data_dir / MANIFEST).is_file() \
            else None
        self._declared_stamp: tuple[int, int] | None = (-1, -1)  # read at the first check
        self._undeclared = False
        # why this store's rows may be older than the cluster's (`member_stopped`), as of
        # the last check; read by every read, so a check costs the hot path one compare
        self._member = None if self._version is not None else (
            member_stopped(data_dir) or live_writer_gone(generation))

    def _gen(self) -> Generation:
        """The generation to read now (switching to a newly published one)."""
        g = self._g
        now = _monotonic()
        if now < self._check_at:
            return g
        self._check_at = now + CHECK_INTERVAL
        if self._version is None:
            self._member = member_stopped(self._data_dir) or live_writer_gone(g)
            self._check_declared(g)
        if _layout.token(self._data_dir, g.name) == g.token:
            return g
        try:
            new = open_generation(self._data_dir, g.name)
        except NotFound:  # gone (a dropped snapshot): every read says so until it is back,
            self._check_at = 0.0  # none answers from the replaced files meanwhile
            raise
        if new.meta.kind != g.meta.kind:
            raise NotFound(f"{g.name} was rebuilt as a {new.meta.kind}: open it again "
                           f"(store.{new.meta.kind}({g.name!r}))")
        if new.env is not g.env:
            forget_env(g.env)  # it closes when the last view using it lets go
        self._g = new
        return new

    def _check_declared(self, g: Generation) -> None:
        """NotFound while the configuration `run` last started with does not declare this
        relation (its rows no longer follow its topic), as `Store.relation` refuses to open
        it: a view kept (by user code, the HTTP API) says so too, at most CHECK_INTERVAL
        after the worker started without it, and reads again once it is declared again."""
        try:
            st = (self._data_dir / _layout.DECLARED_FILE).stat()
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp != self._declared_stamp:
            self._declared_stamp = stamp
            self._undeclared = undeclared(self._data_dir, g)
        if self._undeclared:
            self._check_at = 0.0  # every read checks again until it is declared again
            raise _undeclared_error(g.name)

    # what a view exposes of its current generation
    @property
    def name(self) -> str:
        return self._g.name

    @property
    def meta(self) -> RelationMeta:
        return self._gen().meta

    @property
    def key_columns(self) -> tuple[str, ...]:
        return self._gen().key_columns

    @property
    def key_types(self) -> tuple[ColumnType, ...]:
        return self._gen().key_types

    @property
    def key_codec(self) -> KeyCodec:
        return self._gen().key_codec

    @property
    def layout(self) -> RowLayout:
        return self._gen().layout

    @property
    def path(self) -> Path:
        return self._gen().path

    def key_tuple(self, key: Any) -> tuple[Any, ...]:
        """A user key (bare value or tuple, Python or stored form) to a stored key tuple."""
        return self._gen().key_tuple(key)

    def encode_key(self, key: Any) -> bytes:
        return self._gen().encode_key(key)

    def diff(self, from_: str, to: str | None = None, *, json_form: bool = False,
             held_only: bool = False) -> Iterator[dict[str, Any]]:
        """What changed in this relation from snapshot `from_` to snapshot `to` (None: the
        live relation), in key order: tables `added`/`removed`/`modified` rows with the
        changed columns, streams `added`/`removed` events (`materializer.versions.diff`).
        Both versions are read in one read transaction each, held while you iterate.
        Versions in which partitions were revoked raise PartitionsNotHeld (`held_only`:
        compare the partitions both hold)."""
        from materializer.versions.diff import iter_entries  # noqa: PLC0415 - built on the store

        return iter_entries(self._data_dir, self.name, from_, to, json_form=json_form,
                            held_only=held_only)

    def release(self) -> None:
        """Let go of this view's files: this process stops caching their environment, which
        closes once nothing uses it (for a dropped snapshot, so its disk space is freed)."""
        forget_env(self._g.env)

    def revoked_partitions(self) -> frozenset[int]:
        """The partitions marked revoked from this store's worker (held or not yet), as of
        now: one short read transaction. (Cluster routing asks it after a read, to say
        which partitions that read covered.)"""
        g = self._gen()
        txn, _ = g.begin(every=True)
        txn.abort()
        return g.revoked()

    def _current_gen(self) -> Generation:
        """`_gen()` (which refreshes the decision when it is due), or MemberNotRunning if
        this store's worker is a cluster member that does not run (`member_stopped`, as of
        at most CHECK_INTERVAL + MEMBER_CHECK_INTERVAL ago): its rows may be older than
        what the partitions' new owners hold."""
        g = self._gen()
        if self._member is not None:
            raise MemberNotRunning(f"{self.name}: {self._member}")
        return g

    def require_current(self) -> None:
        """Raise MemberNotRunning as `_current_gen` does."""
        self._current_gen()

    def require_held(self) -> None:
        """Raise PartitionsNotHeld if partitions of this relation are marked revoked (a
        read from this store, or this snapshot, alone may miss rows they hold)."""
        if revoked := self.revoked_partitions():
            raise PartitionsNotHeld(self.name, revoked, self._version)

    def partition_copy(self, partition: int
                       ) -> tuple[int, dict[str, int], list[tuple[bytes, bytes]], list[str]]:
        """One partition as this store holds it, revoked or not, read in one transaction:
        (next offset, counters, every stored (key, value) pair in key order, row layout),
        for another worker's `RelationWriter.replace_partition` (cluster failover)."""
        g = self._gen()
        txn, every = g.begin(every=True)
        with txn:
            nxt = self._next_offset(g, txn, partition)
            prefix = b"count:%d:" % partition
            counters: dict[str, int] = {}
            cur = txn.cursor(db=g.meta_db)
            if cur.set_range(prefix):
                for k, v in cur:
                    if not k.startswith(prefix):
                        break
                    counters[bytes(k[len(prefix):]).decode()] = OFFSET.unpack(v)[0]
            pairs: list[tuple[bytes, bytes]] = []
            for p, db in every:
                if p == partition:
                    pairs = [(bytes(k), bytes(v)) for k, v in txn.cursor(db=db)]
        return nxt, counters, pairs, list(g.meta.layout)

    def counters(self) -> dict[int, dict[str, int]]:
        g = self._gen()
        out: dict[int, dict[str, int]] = {}
        txn, _ = g.begin()
        with txn:
            cur = txn.cursor(db=g.meta_db)
            if cur.set_range(b"count:"):
                for k, v in cur:
                    if not k.startswith(b"count:"):
                        break
                    _, p, name = k.decode().split(":", 2)
                    out.setdefault(int(p), {})[name] = OFFSET.unpack(v)[0]
        return out

    unique_keys = False
    """True (tables): a key held by more than one partition raises AmbiguousKeyError on
    reads (`Generation.find_in`); False (streams, faust's view): first found, both scanned."""

    def scan_raw(self, prefix: Sequence[Any] = (), limit: int | None = None,
                 after: bytes | None = None, *, every_copy: bool = False
                 ) -> list[tuple[bytes, bytes]]:
        """(encoded key, stored row) pairs in key order, merged across partitions. For a
        table, AmbiguousKeyError if a key of the range read (up to the one past `limit`)
        is held by more than one partition, unless `every_copy`: then such a key comes
        back once per partition, one after the other (the change-event snapshot)."""
        return self._scan_raw(self._gen(), prefix, limit, after, every_copy)

    def _scan_raw(self, g: Generation, prefix: Sequence[Any], limit: int | None,
                  after: bytes | None, every_copy: bool = False) -> list[tuple[bytes, bytes]]:
        pb, start = self._scan_bounds(g, prefix, limit, after)
        out: list[tuple[bytes, bytes]] = []
        txn, parts = g.begin()
        with txn:
            iters = []
            for _, db in parts:
                cur = txn.cursor(db=db)
                if not cur.set_range(start):
                    continue
                iters.append(prefixed(cur, pb, after))
            merged = heapq.merge(*iters, key=lambda kv: kv[0])
            unique = self.unique_keys and not every_copy and len(iters) > 1
            last = None
            for k, v in merged:
                if unique and k == last:
                    raise g.ambiguous_in(txn, parts, k)
                out.append((k, v))
                last = k
                if limit is not None and len(out) >= limit:
                    # the next pair too: a key held twice must not hide behind a page's end
                    if unique and next(merged, (None,))[0] == k:
                        raise g.ambiguous_in(txn, parts, k)
                    break
        return out

    def check_position(self, after: bytes, prefix: Sequence[Any] = ()) -> None:
        """UsageError unless `after` is a position a page under `prefix` can have ended at
        (a page cursor): an encoded key of this relation's key columns (`KeyCodec.is_key`),
        beginning with the prefix's. Anything else would start a page somewhere that looks
        like the end of the rows, or like their start again."""
        g = self._gen()
        if not g.key_codec.is_key(after):
            raise UsageError(f"the cursor is not a position in {g.name}: pass back the `next` "
                             "value of the previous page")
        pb, _ = self._scan_bounds(g, prefix, None, None)
        if not after.startswith(pb):
            raise UsageError(f"the cursor is not a position under prefix {tuple(prefix)!r}: "
                             "pass the prefix of the page that gave it")

    @staticmethod
    def _scan_bounds(g: Generation, prefix: Sequence[Any], limit: int | None,
                     after: bytes | None) -> tuple[bytes, bytes]:
        """(encoded prefix, first key to read) of a scan; UsageError for what does not fit."""
        if limit is not None:
            check_limit(limit, "row", "no limit: None")
        if isinstance(prefix, str | bytes) or not isinstance(prefix, Sequence):
            prefix = (prefix,)
        if len(prefix) > len(g.key_convs):
            raise UsageError(f"prefix {tuple(prefix)!r} is longer than the key "
                             f"({', '.join(g.key_columns)})")
        try:
            pb = g.key_codec.encode_prefix(
                [None if v is None else c(v) for c, v in zip(g.key_convs, prefix, strict=False)])
        except UnicodeEncodeError:
            raise UsageError(f"prefix {tuple(prefix)!r} does not fit the key: a string that is "
                             "not valid Unicode (a lone surrogate, such as bytes that are not "
                             "UTF-8 read as text)") from None
        return pb, pb if after is None or after < pb else after

    @staticmethod
    def _next_offset(g: Generation, txn: lmdb.Transaction[bytes], partition: int) -> int:
        nxt = txn.get(offset_key(partition), db=g.meta_db)
        return OFFSET.unpack(nxt)[0] if nxt else 0

    def next_offsets(self) -> dict[int, int]:
        """Per partition, the next source offset the worker will apply (every record below
        it is applied or counted); committed state only."""
        g = self._gen()
        txn, parts = g.begin(every=True)
        with txn:
            return {p: self._next_offset(g, txn, p) for p, _ in parts}

    def partition_stats(self) -> list[dict[str, Any]]:
        """Per partition (revoked ones too): rows (entries), next offset to apply, counters,
        and whether it is revoked from this store's worker (its rows are not served)."""
        counters = self.counters()
        g = self._gen()
        out = []
        txn, parts = g.begin(every=True)
        served = {p for p, _ in g.served()}
        with txn:
            for p, db in parts:
                out.append({
                    "partition": p,
                    "rows": txn.stat(db)["entries"],
                    "next_offset": self._next_offset(g, txn, p),
                    "counters": counters.get(p, {}),
                    "revoked": p not in served,
                })
        return out


def prefixed(cur: lmdb.Cursor[bytes], prefix: bytes, after: bytes | None
              ) -> Iterator[tuple[bytes, bytes]]:
    for k, v in cur:
        if not k.startswith(prefix):
            return
        if after is not None and k <= after:
            continue
        yield bytes(k), bytes(v)

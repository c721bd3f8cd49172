"""Read-only views (tables, streams) and `Store`, usable from any process while a worker writes."""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path
from time import monotonic as _monotonic
from typing import Any

import lmdb

from materializer.columns import ColumnType
from materializer.errors import NotFound, StoreError, UsageError
from materializer.store import layout as _layout
from materializer.store.environment import (
    META,
    OFFSET,
    REVOKED,
    SERVED,
    RelationMeta,
    forget_env,
    offset_key,
    open_env,
    partition_db_name,
    read_meta,
    read_txn,
)
from materializer.store.keys import (
    STREAM_KEY_SUFFIX,
    KeyCodec,
    key_component_encoder,
    split_stream_key,
)
from materializer.store.rows import RowLayout, split_event
from materializer.values import to_storage as _to_storage

# --------------------------------------------------------------------------- readers


def key_storage_converters(types: Sequence[ColumnType]) -> tuple[Any, ...]:
    return tuple(_to_storage(t) for t in types)


CHECK_INTERVAL = 0.1
"""Seconds between a view's checks of which generation of its relation is current."""


class _Generation:
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
        self.key_types = tuple(types[c] for c in self.key_columns)
        self.key_codec = KeyCodec(self.key_types)
        self.layout = RowLayout(meta.layout, [types[c] for c in meta.layout])
        self.key_convs = key_storage_converters(self.key_types)
        self.single = self.key_convs[0] if len(self.key_convs) == 1 else None
        self._plain_key = _plain_key_encoder(self.key_types)
        self._dbs: dict[int, Any] = {}
        # (snapshot id it was read in, partitions raw, revoked raw, every partition, the
        # ones not revoked), swapped whole (threads share a generation)
        self._state: tuple[int, bytes, bytes, list[tuple[int, Any]], list[tuple[int, Any]]] = \
            (-1, b"[]", b"[]", [], [])

    def begin(self, every: bool = False
              ) -> tuple[lmdb.Transaction[bytes], list[tuple[int, Any]]]:
        """A read transaction and the partitions (number, DB) to read in it: those that
        existed when it began, less those revoked from this store's worker (a rebalance
        gave them to another one: their rows are not current), or all with `every`.

        Named DBs are opened outside any transaction: a handle opened inside a
        read-only transaction is not usable in later ones (py-lmdb 3).

        The partition lists are reread only when the snapshot changed (its LMDB
        transaction id differs from the one they were read in): between two commits
        of the writer, a lookup costs no meta read."""
        while True:
            txn = read_txn(self.env)
            snapshot = txn.id()
            state = self._state
            if snapshot == state[0]:  # same snapshot: the same SERVED value
                return txn, state[3] if every else state[4]
            served = txn.get(SERVED, None, db=self.meta_db)
            if served is not None:
                raw, _, rev = bytes(served).partition(b"|")
            else:  # written before SERVED existed
                raw = txn.get(b"partitions", b"[]", db=self.meta_db)
                rev = txn.get(REVOKED, b"[]", db=self.meta_db)
            if raw == state[1] and rev == state[2]:
                self._state = (snapshot, state[1], state[2], state[3], state[4])
                return txn, state[3] if every else state[4]
            numbers = json.loads(raw)
            missing = [p for p in numbers if p not in self._dbs]
            if not missing:
                revoked = set(json.loads(rev))
                parts = [(p, self._dbs[p]) for p in sorted(numbers)]
                self._state = (snapshot, raw, rev, parts,
                               [x for x in parts if x[0] not in revoked])
                return txn, self._state[3] if every else self._state[4]
            txn.abort()
            for p in missing:
                try:
                    db = self.env.open_db(partition_db_name(p), create=False)
                except lmdb.MapResizedError:  # the writer grew the map just now
                    self.env.set_mapsize(0)
                    db = self.env.open_db(partition_db_name(p), create=False)
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
        plain = self._plain_key
        if plain is not None:
            # (k,), as the API's key parser gives it, is k
            kb = plain(key[0] if key.__class__ is tuple and len(key) == 1 else key)
            if kb is not None:
                return kb
        return self.key_codec.encode(self.key_tuple(key))

    def find(self, kb: bytes) -> bytes | None:
        """The stored row of encoded key `kb` in the served partitions, or None: one
        short read transaction."""
        txn, parts = self.begin()
        try:
            get = txn.get
            for _, db in parts:
                raw: bytes | None = get(kb, None, db)  # positional: ~30% cheaper a probe
                if raw is not None:
                    return raw
            return None
        finally:
            txn.abort()  # a read transaction: abort is its commit, and cheaper


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


def open_generation(data_dir: Path, name: str) -> _Generation:
    """The current generation of relation `name`, opened for reading.

    Raises NotFound if there is no such relation or it has no metadata yet."""
    for _ in range(5):
        found = _layout.current(data_dir, name)
        if found is None or not (found[1] / "data.mdb").is_file():
            break
        token, path = found
        try:
            env = open_env(path, False, 0)
        except StoreError:
            if _layout.token(data_dir, name) != token:
                continue  # replaced (by a rebuild) while opening: open the new one
            raise
        try:
            read_txn(env).abort()  # adopts a map the writer grew before open_db needs it
            meta_db = env.open_db(META, create=False)
        except lmdb.NotFoundError:
            raise NotFound(f"{name} has no metadata yet (the worker has not started it)") \
                from None
        with read_txn(env) as txn:
            meta = read_meta(txn, meta_db)
        if meta is None:
            raise NotFound(f"{name} has no metadata yet (the worker has not started it)")
        return _Generation(token, path, env, meta_db, meta)
    raise NotFound(f"no table or stream named {name!r} in {data_dir}")


class RelationReader:
    """Shared read plumbing of table and stream views.

    A view is bound to its relation's name, not to its files: at most every
    `CHECK_INTERVAL` seconds it checks which generation is current (one `readlink`)
    and, after a `rebuild` published a new one, switches to it (reopening the
    environment and rereading the metadata). Until then it reads the replaced
    generation, whose files stay readable while mapped. So a view kept across a
    rebuild answers from the old state, then from the new one, and never fails
    because of it. Each call reads one generation in one read transaction.
    """

    def __init__(self, data_dir: Path, generation: _Generation) -> None:
        self._data_dir = data_dir
        self._g = generation
        self._check_at = _monotonic() + CHECK_INTERVAL

    def _gen(self) -> _Generation:
        """The generation to read now (switching to a newly published one)."""
        g = self._g
        now = _monotonic()
        if now < self._check_at:
            return g
        self._check_at = now + CHECK_INTERVAL
        if _layout.token(self._data_dir, g.name) == g.token:
            return g
        new = open_generation(self._data_dir, g.name)
        if new.meta.kind != g.meta.kind:
            raise NotFound(f"{g.name} was rebuilt as a {new.meta.kind}: open it again "
                           f"(store.{new.meta.kind}({g.name!r}))")
        if new.env is not g.env:
            forget_env(g.env)  # it closes when the last view using it lets go
        self._g = new
        return new

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

    def diff(self, from_: str, to: str | None = None, *, json_form: bool = False
             ) -> Iterator[dict[str, Any]]:
        """What changed in this relation from snapshot `from_` to snapshot `to` (None: the
        live relation), in key order: tables `added`/`removed`/`modified` rows with the
        changed columns, streams `added`/`removed` events (`materializer.versions.diff`).
        Both versions are read in one read transaction each, held while you iterate."""
        from materializer.versions.diff import iter_entries  # noqa: PLC0415 - built on the store

        return iter_entries(self._data_dir, self.name, from_, to, json_form=json_form)

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

    def scan_raw(self, prefix: Sequence[Any] = (), limit: int | None = None,
                 after: bytes | None = None) -> list[tuple[bytes, bytes]]:
        """(encoded key, stored row) pairs in key order, merged across partitions."""
        return self._scan_raw(self._gen(), prefix, limit, after)

    @staticmethod
    def _scan_raw(g: _Generation, prefix: Sequence[Any], limit: int | None,
                  after: bytes | None) -> list[tuple[bytes, bytes]]:
        if isinstance(prefix, str | bytes) or not isinstance(prefix, Sequence):
            prefix = (prefix,)
        if len(prefix) > len(g.key_convs):
            raise UsageError(f"prefix {tuple(prefix)!r} is longer than the key "
                             f"({', '.join(g.key_columns)})")
        pb = g.key_codec.encode_prefix(
            [None if v is None else c(v) for c, v in zip(g.key_convs, prefix, strict=False)])
        start = pb if after is None or after < pb else after
        out: list[tuple[bytes, bytes]] = []
        txn, parts = g.begin()
        with txn:
            iters = []
            for _, db in parts:
                cur = txn.cursor(db=db)
                if not cur.set_range(start):
                    continue
                iters.append(_prefixed(cur, pb, after))
            for k, v in heapq.merge(*iters, key=lambda kv: kv[0]):
                out.append((k, v))
                if limit is not None and len(out) >= limit:
                    break
        return out

    @staticmethod
    def _next_offset(g: _Generation, txn: lmdb.Transaction[bytes], partition: int) -> int:
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


def _get_raw(txn: lmdb.Transaction[bytes], parts: list[tuple[int, Any]], kb: bytes
             ) -> bytes | None:
    for _, db in parts:
        v: bytes | None = txn.get(kb, db=db)
        if v is not None:
            return v
    return None


class TableView(RelationReader):
    """Read-only view of a table: point, batch and prefix lookups on committed state.

    A key is the bare value for a one-column primary key, else a tuple in key order.
    """

    def get(self, key: Any, *, json_form: bool = False) -> dict[str, Any] | None:
        g = self._gen()
        raw = g.find(g.encode_key(key))
        if raw is None:
            return None
        return g.layout.to_json(raw) if json_form else g.layout.to_python(raw)

    def get_many(self, keys: Iterable[Any], *, json_form: bool = False
                 ) -> list[dict[str, Any] | None]:
        g = self._gen()
        kbs = [g.encode_key(k) for k in keys]
        conv = g.layout.to_json if json_form else g.layout.to_python
        txn, parts = g.begin()
        with txn:
            raws = [_get_raw(txn, parts, kb) for kb in kbs]
        return [None if r is None else conv(r) for r in raws]

    def get_many_from(self, keys: Iterable[Any], partitions: Collection[int], *,
                      json_form: bool = False) -> list[dict[str, Any] | None]:
        """`get_many` reading exactly `partitions`, revoked ones included: a cluster worker's
        standby copy of partitions it does not own (`?stale=ok`). Not current state."""
        g = self._gen()
        kbs = [g.encode_key(k) for k in keys]
        conv = g.layout.to_json if json_form else g.layout.to_python
        txn, every = g.begin(every=True)
        parts = [x for x in every if x[0] in partitions]
        with txn:
            raws = [_get_raw(txn, parts, kb) for kb in kbs]
        return [None if r is None else conv(r) for r in raws]

    def scan(self, prefix: Any = (), limit: int | None = None, *, json_form: bool = False
             ) -> list[dict[str, Any]]:
        """Rows whose key starts with `prefix`, in key order, at most `limit`."""
        g = self._gen()
        try:
            pairs = self._scan_raw(g, prefix, limit, None)
        except (TypeError, ValueError) as e:
            raise UsageError(f"prefix {prefix!r} does not fit the key: {e}") from e
        conv = g.layout.to_json if json_form else g.layout.to_python
        return [conv(v) for _, v in pairs]

    def __len__(self) -> int:
        txn, parts = self._gen().begin()
        with txn:
            return sum(txn.stat(db)["entries"] for _, db in parts)


def _prefixed(cur: lmdb.Cursor[bytes], prefix: bytes, after: bytes | None
              ) -> Iterator[tuple[bytes, bytes]]:
    for k, v in cur:
        if not k.startswith(prefix):
            return
        if after is not None and k <= after:
            continue
        yield bytes(k), bytes(v)


class StreamView(RelationReader):
    """Read-only view of a stream: the events of a key, newest first.

    Stored key: encoded stream key + 8-byte big-endian source offset, so one key's
    events are contiguous and ordered by offset within a partition.
    """

    def events(self, key: Any, limit: int = 10, *, json_form: bool = False
               ) -> list[dict[str, Any] | None]:
        g = self._gen()
        kb = g.encode_key(key)
        conv = g.layout.to_json if json_form else g.layout.to_python
        found: list[tuple[int, int, int, bytes]] = []  # (timestamp, partition, offset, row)
        txn, parts = g.begin()
        with txn:
            for p, db in parts:
                cur = txn.cursor(db=db)
                upper = kb + b"\xff" * (STREAM_KEY_SUFFIX + 1)
                ok = cur.prev() if cur.set_range(upper) else cur.last()
                n = 0
                while ok and n < limit:
                    k = cur.key()
                    if not k.startswith(kb) or len(k) != len(kb) + STREAM_KEY_SUFFIX:
                        break
                    ts, payload = split_event(cur.value())
                    found.append((ts, p, split_stream_key(k)[1], payload))
                    n += 1
                    ok = cur.prev()
        found.sort(key=lambda e: (e[0], e[2]), reverse=True)
        return [None if e[3] == b"" else conv(e[3]) for e in found[:limit]]

    def scan(self, prefix: Any = (), limit: int | None = None, *, json_form: bool = False
             ) -> list[dict[str, Any]]:
        """Events whose key starts with `prefix`, in key order then offset order, as
        `{"key": [...], "partition": p, "offset": o, "timestamp": ms, "value": row|None}`."""
        g = self._gen()
        conv = g.layout.to_json if json_form else g.layout.to_python
        out = []
        for k, v in self._scan_raw(g, prefix, limit, None):
            ts, payload = split_event(v)
            kb, offset = split_stream_key(k)
            out.append({"key": list(g.key_codec.decode(kb)),
                        "offset": offset, "timestamp": ts,
                        "value": None if payload == b"" else conv(payload)})
        return out

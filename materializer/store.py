"""LMDB storage: the only module that touches `lmdb`.

Layout: `<data>/relations/<qualified name>/` is one LMDB environment per table or
stream. Inside it, named database `p:<n>` holds partition n (table partition p
holds the keys of source partition p) and `meta` holds the declaration identity,
the row layout, and per partition the next offset to apply and counters.

Guarantees:
- `WriteBatch.commit()` writes rows, next offsets and counters of a batch in one
  LMDB transaction: after a crash either all of it is there or none of it.
- Readers (`Store`, any process) never block the writer and see only committed
  batches; each read call uses one short read transaction.
"""

from __future__ import annotations

import heapq
import json
import marshal
import os
import shutil
import struct
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb

from materializer.errors import NotFound, StoreError, UsageError
from materializer.types import (
    ColumnType,
    Converter,
    KeyCodec,
    from_storage,
    parse_type,
    to_json_value,
)
from materializer.types import to_storage as _to_storage

META = b"meta"
_Q = struct.Struct(">Q")
_LOCK = threading.Lock()
_ENVS: dict[tuple[str, bool], lmdb.Environment] = {}
_ENV_INODES: dict[tuple[str, bool], int] = {}
MAX_DBS = 4096


def relations_dir(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / "relations"


def relation_dir(data_dir: str | os.PathLike[str], name: str) -> Path:
    if "/" in name or name in (".", "..") or "\x00" in name:
        raise UsageError(f"invalid relation name {name!r}")
    return relations_dir(data_dir) / name


def partition_db_name(partition: int) -> bytes:
    return b"p:%d" % partition


def _inode(path: Path) -> int:
    try:
        return (path / "data.mdb").stat().st_ino
    except OSError:
        return -1


def _open_env(path: Path, writable: bool, map_size: int) -> lmdb.Environment:
    """One environment per path and process (LMDB forbids opening one twice).

    A read-only environment whose files were replaced (by `rebuild` in another
    process) is closed and opened again."""
    key = (str(path.resolve()), writable)
    with _LOCK:
        env = _ENVS.get(key)
        if env is not None and not writable and _ENV_INODES.get(key) != _inode(path):
            env.close()
            del _ENVS[key]
            env = None
        if env is None:
            other = _ENVS.get((key[0], not writable))
            if other is not None and not writable:
                return other  # a writer in this process serves reads too
            try:
                if writable:
                    path.mkdir(parents=True, exist_ok=True)
                    env = lmdb.open(str(path), map_size=map_size, max_dbs=MAX_DBS,
                                    max_readers=512, sync=True, metasync=True)
                else:
                    env = lmdb.open(str(path), readonly=True, lock=True, max_dbs=MAX_DBS,
                                    max_readers=512, create=False)
                env.reader_check()  # clear reader slots left by crashed processes
            except lmdb.Error as e:
                raise StoreError(f"cannot open LMDB environment {path}: {e}") from e
            _ENVS[key] = env
            _ENV_INODES[key] = _inode(path)
        return env


def _read_txn(env: lmdb.Environment) -> lmdb.Transaction[bytes]:
    """A read transaction; if the writer grew the file past this process's mapping,
    adopt the new size first (LMDB reports that as MapResizedError)."""
    try:
        return env.begin()
    except lmdb.MapResizedError:
        env.set_mapsize(0)
        return env.begin()


def _close_env(path: Path) -> None:
    resolved = str(path.resolve())
    with _LOCK:
        for writable in (True, False):
            env = _ENVS.pop((resolved, writable), None)
            if env is not None:
                env.close()


def drop_relation(data_dir: str | os.PathLike[str], name: str) -> bool:
    """Delete the local state of one relation (for `rebuild`). Returns whether it existed."""
    path = relation_dir(data_dir, name)
    _close_env(path)
    if path.exists():
        shutil.rmtree(path)
        return True
    return False


# ----------------------------------------------------------------------------- rows


class RowLayout:
    """Turns stored row tuples into dicts (Python form or JSON form) and back.

    `layout` is the column order of stored tuples; tuples written before a nullable
    column was added are shorter and read as null in the new column.
    """

    __slots__ = ("names", "types", "_py", "_js", "_width")

    def __init__(self, names: Sequence[str], types: Sequence[ColumnType]) -> None:
        self.names = tuple(names)
        self.types = tuple(types)
        self._width = len(self.names)
        pairs = tuple(enumerate(zip(self.names, self.types, strict=True)))
        self._py = tuple((i, n, c) for i, (n, t) in pairs if (c := from_storage(t)) is not None)
        self._js = tuple((i, n, c) for i, (n, t) in pairs if (c := to_json_value(t)) is not None)

    def _tuple(self, raw: bytes) -> tuple[Any, ...]:
        t: tuple[Any, ...] = marshal.loads(raw)
        if len(t) < self._width:
            t = t + (None,) * (self._width - len(t))
        return t

    def _dict(self, raw: bytes, convs: tuple[tuple[int, str, Converter], ...]) -> dict[str, Any]:
        t: tuple[Any, ...] = marshal.loads(raw)  # _tuple inlined: this runs once per row read
        if len(t) < self._width:
            t = t + (None,) * (self._width - len(t))
        # no strict=: on 3.11 a keyword makes zip() ~150 ns slower, per row here
        row = dict(zip(self.names, t))  # noqa: B905 - t is padded to the layout width
        for i, name, conv in convs:
            v = t[i]
            if v is not None:
                row[name] = conv(v)
        return row

    def to_python(self, raw: bytes) -> dict[str, Any]:
        return self._dict(raw, self._py)

    def to_json(self, raw: bytes) -> dict[str, Any]:
        return self._dict(raw, self._js)

    def values(self, raw: bytes) -> tuple[Any, ...]:
        """The stored-form tuple, padded to the layout width."""
        return self._tuple(raw)


def encode_row(values: tuple[Any, ...]) -> bytes:
    """Stored form of a row tuple (in layout order)."""
    return marshal.dumps(values)


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


def _read_meta(txn: lmdb.Transaction[bytes], meta_db: Any) -> RelationMeta | None:
    ident = txn.get(b"identity", db=meta_db)
    layout = txn.get(b"layout", db=meta_db)
    if ident is None or layout is None:
        return None
    return RelationMeta(json.loads(ident), tuple(json.loads(layout)))


def _offset_key(partition: int) -> bytes:
    return b"offset:%d" % partition


def _counter_key(partition: int, name: str) -> bytes:
    return b"count:%d:" % partition + name.encode()


# --------------------------------------------------------------------------- writer


class RelationWriter:
    """The single writer of one relation's environment (owned by the worker)."""

    def __init__(self, data_dir: str | os.PathLike[str], name: str, map_size: int) -> None:
        self.path = relation_dir(data_dir, name)
        self.env = _open_env(self.path, True, map_size)
        self._meta_db = self.env.open_db(META)
        self._dbs: dict[int, Any] = {}

    def meta(self) -> RelationMeta | None:
        with self.env.begin(db=self._meta_db) as txn:
            return _read_meta(txn, self._meta_db)

    def write_meta(self, identity: dict[str, Any], layout: Sequence[str]) -> None:
        with self.env.begin(write=True) as txn:
            txn.put(b"identity", json.dumps(identity).encode(), db=self._meta_db)
            txn.put(b"layout", json.dumps(list(layout)).encode(), db=self._meta_db)

    def db(self, partition: int, txn: lmdb.Transaction[bytes] | None = None) -> Any:
        """The named DB of a partition, created (and listed in meta) on first use.

        Pass the open write transaction when there is one: LMDB has one writer lock
        and it is not reentrant."""
        db = self._dbs.get(partition)
        if db is None:
            if txn is None:
                with self.env.begin(write=True) as own:
                    return self._create_db(partition, own)
            return self._create_db(partition, txn)
        return db

    def _create_db(self, partition: int, txn: lmdb.Transaction[bytes]) -> Any:
        db = self.env.open_db(partition_db_name(partition), txn=txn)
        parts = set(json.loads(txn.get(b"partitions", b"[]", db=self._meta_db)))
        if partition not in parts:
            parts.add(partition)
            txn.put(b"partitions", json.dumps(sorted(parts)).encode(), db=self._meta_db)
        self._dbs[partition] = db
        return db

    def forget_handles(self) -> None:
        """After an aborted transaction, DB handles it created are gone."""
        self._dbs.clear()

    def next_offsets(self) -> dict[int, int]:
        """Per partition, the next source offset to apply (absent: start from the beginning)."""
        out: dict[int, int] = {}
        with self.env.begin(db=self._meta_db) as txn:
            cur = txn.cursor()
            if cur.set_range(b"offset:"):
                for k, v in cur:
                    if not k.startswith(b"offset:"):
                        break
                    out[int(k[7:])] = _Q.unpack(v)[0]
        return out

    def begin(self) -> WriteBatch:
        return WriteBatch(self)

    def clear_partition(self, partition: int) -> None:
        """Forget a partition's rows, offset and counters (used by rebuild-like resets)."""
        with self.env.begin(write=True) as txn:
            txn.drop(self.db(partition, txn), delete=False)
            txn.delete(_offset_key(partition), db=self._meta_db)

    # -- side databases (the change outbox of materializer.changes) ----------------------
    # Call these outside any open WriteBatch: they run their own short transactions.

    def named_db(self, name: bytes) -> Any:
        """A named DB beside the partitions and `meta`, created if missing; write to it
        inside a WriteBatch (`put_many`) so it commits together with the rows."""
        if name == META or name.startswith(b"p:"):
            raise UsageError(f"database name {name!r} is reserved")
        try:
            return self.env.open_db(name)
        except lmdb.Error as e:
            raise StoreError(f"cannot open database {name!r} in {self.path}: {e}") from e

    def first_items(self, db: Any, limit: int) -> list[tuple[bytes, bytes]]:
        """Up to `limit` committed (key, value) pairs of `db`, smallest keys first."""
        out: list[tuple[bytes, bytes]] = []
        if limit <= 0:
            return out
        with self.env.begin(db=db) as txn:
            for k, v in txn.cursor():
                out.append((k, v))
                if len(out) >= limit:
                    break
        return out

    def last_key(self, db: Any) -> bytes | None:
        """The largest committed key of `db`, or None if it is empty."""
        with self.env.begin(db=db) as txn:
            cur = txn.cursor()
            return bytes(cur.key()) if cur.last() else None

    def entries(self, db: Any) -> int:
        """How many committed entries `db` holds (O(1))."""
        with self.env.begin() as txn:
            return int(txn.stat(db)["entries"])

    def delete_keys(self, db: Any, keys: Sequence[bytes]) -> None:
        """Delete `keys` from `db` in one write transaction, committed on return."""
        try:
            with self.env.begin(write=True, db=db) as txn:
                for k in keys:
                    txn.delete(k)
        except lmdb.Error as e:
            raise StoreError(f"cannot delete from {self.path}: {e}") from e


class WriteBatch:
    """One write transaction: rows, next offsets and counters commit together or not at all.

    Use as a context manager; leaving it by an exception aborts everything.
    """

    __slots__ = ("_writer", "txn", "_meta_db")

    def __init__(self, writer: RelationWriter) -> None:
        self._writer = writer
        self._meta_db = writer._meta_db
        try:
            self.txn = writer.env.begin(write=True)
        except lmdb.Error as e:
            raise StoreError(f"cannot begin a write transaction: {e}") from e

    def __enter__(self) -> WriteBatch:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.txn.abort()
            self._writer.forget_handles()

    def db(self, partition: int) -> Any:
        return self._writer.db(partition, self.txn)

    def get(self, db: Any, key: bytes) -> bytes | None:
        v: bytes | None = self.txn.get(key, db=db)
        return v

    def put(self, db: Any, key: bytes, value: bytes) -> None:
        self.txn.put(key, value, db=db)

    def delete(self, db: Any, key: bytes) -> bool:
        return bool(self.txn.delete(key, db=db))

    def put_many(self, db: Any, items: list[tuple[bytes, bytes]]) -> None:
        self.txn.cursor(db=db).putmulti(items)

    def cursor(self, db: Any) -> lmdb.Cursor[bytes]:
        return self.txn.cursor(db=db)

    def set_next_offset(self, partition: int, offset: int) -> None:
        self.txn.put(_offset_key(partition), _Q.pack(offset), db=self._meta_db)

    def add_counter(self, partition: int, name: str, n: int) -> None:
        key = _counter_key(partition, name)
        old = self.txn.get(key, db=self._meta_db)
        self.txn.put(key, _Q.pack((_Q.unpack(old)[0] if old else 0) + n), db=self._meta_db)

    def put_meta(self, key: bytes, value: bytes) -> None:
        self.txn.put(key, value, db=self._meta_db)

    def get_meta(self, key: bytes) -> bytes | None:
        v: bytes | None = self.txn.get(key, db=self._meta_db)
        return v

    def delete_meta(self, key: bytes) -> None:
        self.txn.delete(key, db=self._meta_db)

    def meta_cursor(self) -> lmdb.Cursor[bytes]:
        return self.txn.cursor(db=self._meta_db)

    def commit(self) -> None:
        try:
            self.txn.commit()
        except lmdb.Error as e:
            raise StoreError(f"commit failed: {e}") from e


# --------------------------------------------------------------------------- readers


def key_storage_converters(types: Sequence[ColumnType]) -> tuple[Any, ...]:
    return tuple(_to_storage(t) for t in types)


class _RelationReader:
    """Shared read plumbing of table and stream views (one env, lazily opened DBs)."""

    def __init__(self, path: Path, meta: RelationMeta, env: lmdb.Environment) -> None:
        self.path = path
        self.meta = meta
        self.env = env
        types = meta.column_types()
        self.name = meta.name
        self.key_columns = meta.key_columns
        self.key_types = tuple(types[c] for c in self.key_columns)
        self.key_codec = KeyCodec(self.key_types)
        self.layout = RowLayout(meta.layout, [types[c] for c in meta.layout])
        self._key_convs = key_storage_converters(self.key_types)
        self._dbs: dict[int, Any] = {}
        self.inode = _inode(path)  # a rebuild replaces the files: the Store then reopens
        self._meta_db = env.open_db(META, create=False)
        self._parts_raw = b"[]"
        self._parts: list[tuple[int, Any]] = []

    def _begin(self) -> lmdb.Transaction[bytes]:
        """A read transaction with every partition DB that exists now opened.

        Named DBs are opened outside any transaction: a handle opened inside a
        read-only transaction is not usable in later ones (py-lmdb 3)."""
        txn = _read_txn(self.env)
        raw = txn.get(b"partitions", b"[]", db=self._meta_db)
        if raw != self._parts_raw:
            txn.abort()
            for p in json.loads(raw):
                if p not in self._dbs:
                    self._dbs[p] = self.env.open_db(partition_db_name(p), create=False)
            self._parts = sorted(self._dbs.items())
            self._parts_raw = raw
            txn = _read_txn(self.env)
        return txn

    def _partitions(self, txn: lmdb.Transaction[bytes]) -> list[tuple[int, Any]]:
        """The partitions known when `txn` began (use with a transaction from `_begin`)."""
        return self._parts

    def key_tuple(self, key: Any) -> tuple[Any, ...]:
        """A user key (bare value or tuple, Python or stored form) to a stored key tuple."""
        values = key if isinstance(key, tuple | list) else (key,)
        if len(values) != len(self._key_convs):
            raise UsageError(
                f"{self.name} has key ({', '.join(self.key_columns)}): "
                f"expected {len(self._key_convs)} value(s), got {len(values)}")
        try:
            # lengths checked above; no strict=, which costs ~200 ns a lookup on 3.11
            return tuple(None if v is None else c(v)
                         for c, v in zip(self._key_convs, values))  # noqa: B905
        except (TypeError, ValueError) as e:
            raise UsageError(f"key {key!r} does not fit ({', '.join(self.key_columns)}): {e}") \
                from e

    def encode_key(self, key: Any) -> bytes:
        return self.key_codec.encode(self.key_tuple(key))

    def counters(self) -> dict[int, dict[str, int]]:
        out: dict[int, dict[str, int]] = {}
        with self._begin() as txn:
            cur = txn.cursor(db=self._meta_db)
            if cur.set_range(b"count:"):
                for k, v in cur:
                    if not k.startswith(b"count:"):
                        break
                    _, p, name = k.decode().split(":", 2)
                    out.setdefault(int(p), {})[name] = _Q.unpack(v)[0]
        return out

    def scan_raw(self, prefix: Sequence[Any] = (), limit: int | None = None,
                 after: bytes | None = None) -> list[tuple[bytes, bytes]]:
        """(encoded key, stored row) pairs in key order, merged across partitions."""
        if isinstance(prefix, str | bytes) or not isinstance(prefix, Sequence):
            prefix = (prefix,)
        if len(prefix) > len(self._key_convs):
            raise UsageError(f"prefix {tuple(prefix)!r} is longer than the key "
                             f"({', '.join(self.key_columns)})")
        pb = self.key_codec.encode_prefix(
            [None if v is None else c(v) for c, v in zip(self._key_convs, prefix, strict=False)])
        start = pb if after is None or after < pb else after
        out: list[tuple[bytes, bytes]] = []
        with self._begin() as txn:
            iters = []
            for _, db in self._partitions(txn):
                cur = txn.cursor(db=db)
                if not cur.set_range(start):
                    continue
                iters.append(_prefixed(cur, pb, after))
            for k, v in heapq.merge(*iters, key=lambda kv: kv[0]):
                out.append((k, v))
                if limit is not None and len(out) >= limit:
                    break
        return out

    def partition_stats(self) -> list[dict[str, Any]]:
        """Per partition: rows (entries), next offset to apply, counters."""
        counters = self.counters()
        out = []
        with self._begin() as txn:
            for p, db in self._partitions(txn):
                nxt = txn.get(_offset_key(p), db=self._meta_db)
                out.append({
                    "partition": p,
                    "rows": txn.stat(db)["entries"],
                    "next_offset": _Q.unpack(nxt)[0] if nxt else 0,
                    "counters": counters.get(p, {}),
                })
        return out


class TableView(_RelationReader):
    """Read-only view of a table: point, batch and prefix lookups on committed state.

    A key is the bare value for a one-column primary key, else a tuple in key order.
    """

    def _get_raw(self, txn: lmdb.Transaction[bytes], kb: bytes) -> bytes | None:
        for _, db in self._partitions(txn):
            v: bytes | None = txn.get(kb, db=db)
            if v is not None:
                return v
        return None

    def get(self, key: Any, *, json_form: bool = False) -> dict[str, Any] | None:
        kb = self.encode_key(key)
        with self._begin() as txn:
            raw = self._get_raw(txn, kb)
        if raw is None:
            return None
        return self.layout.to_json(raw) if json_form else self.layout.to_python(raw)

    def get_many(self, keys: Iterable[Any], *, json_form: bool = False
                 ) -> list[dict[str, Any] | None]:
        kbs = [self.encode_key(k) for k in keys]
        conv = self.layout.to_json if json_form else self.layout.to_python
        with self._begin() as txn:
            raws = [self._get_raw(txn, kb) for kb in kbs]
        return [None if r is None else conv(r) for r in raws]

    def scan(self, prefix: Any = (), limit: int | None = None, *, json_form: bool = False
             ) -> list[dict[str, Any]]:
        """Rows whose key starts with `prefix`, in key order, at most `limit`."""
        try:
            pairs = self.scan_raw(prefix, limit)
        except (TypeError, ValueError) as e:
            raise UsageError(f"prefix {prefix!r} does not fit the key: {e}") from e
        conv = self.layout.to_json if json_form else self.layout.to_python
        return [conv(v) for _, v in pairs]

    def __len__(self) -> int:
        with self._begin() as txn:
            return sum(txn.stat(db)["entries"] for _, db in self._partitions(txn))


def _prefixed(cur: lmdb.Cursor[bytes], prefix: bytes, after: bytes | None
              ) -> Iterator[tuple[bytes, bytes]]:
    for k, v in cur:
        if not k.startswith(prefix):
            return
        if after is not None and k <= after:
            continue
        yield bytes(k), bytes(v)


class StreamView(_RelationReader):
    """Read-only view of a stream: the events of a key, newest first.

    Stored key: encoded stream key + 8-byte big-endian source offset, so one key's
    events are contiguous and ordered by offset within a partition.
    """

    def events(self, key: Any, limit: int = 10, *, json_form: bool = False
               ) -> list[dict[str, Any] | None]:
        kb = self.encode_key(key)
        conv = self.layout.to_json if json_form else self.layout.to_python
        found: list[tuple[int, int, int, bytes]] = []  # (timestamp, partition, offset, row)
        with self._begin() as txn:
            for p, db in self._partitions(txn):
                cur = txn.cursor(db=db)
                upper = kb + b"\xff" * 9
                ok = cur.prev() if cur.set_range(upper) else cur.last()
                n = 0
                while ok and n < limit:
                    k = cur.key()
                    if not k.startswith(kb) or len(k) != len(kb) + 8:
                        break
                    raw = cur.value()
                    ts, payload = _split_event(raw)
                    found.append((ts, p, _Q.unpack_from(k, len(kb))[0], payload))
                    n += 1
                    ok = cur.prev()
        found.sort(key=lambda e: (e[0], e[2]), reverse=True)
        return [None if e[3] == b"" else conv(e[3]) for e in found[:limit]]

    def scan(self, prefix: Any = (), limit: int | None = None, *, json_form: bool = False
             ) -> list[dict[str, Any]]:
        """Events whose key starts with `prefix`, in key order then offset order, as
        `{"key": [...], "partition": p, "offset": o, "timestamp": ms, "value": row|None}`."""
        conv = self.layout.to_json if json_form else self.layout.to_python
        out = []
        for k, v in self.scan_raw(prefix, limit):
            ts, payload = _split_event(v)
            out.append({"key": list(self.key_codec.decode(k[:-8])), "offset": _Q.unpack(k[-8:])[0],
                        "timestamp": ts, "value": None if payload == b"" else conv(payload)})
        return out


_TS = struct.Struct(">q")


def encode_event(timestamp_ms: int, row: bytes | None) -> bytes:
    """A stream event's stored value: 8-byte timestamp + row (empty for a null value)."""
    return _TS.pack(timestamp_ms) + (row or b"")


def _split_event(raw: bytes) -> tuple[int, bytes]:
    return _TS.unpack_from(raw)[0], bytes(raw[8:])


# ---------------------------------------------------------------------------- Store


class Store:
    """Read access to a data directory, from any process, while a worker writes.

    >>> with Store.open("./data") as store:
    ...     store.table("shop.users").get(1)
    """

    def __init__(self, data_dir: str | os.PathLike[str], default_schema: str = "public") -> None:
        self.data_dir = Path(data_dir)
        self.default_schema = default_schema
        self._views: dict[str, _RelationReader] = {}

    @classmethod
    def open(cls, data_dir: str | os.PathLike[str], default_schema: str = "public") -> Store:
        if not Path(data_dir).is_dir():
            raise NotFound(f"no data directory at {data_dir}")
        return cls(data_dir, default_schema)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._views.clear()

    def names(self) -> list[str]:
        base = relations_dir(self.data_dir)
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if (p / "data.mdb").exists())

    def _resolve(self, name: str) -> str:
        names = self.names()
        if name in names:
            return name
        qualified = f"{self.default_schema}.{name}"
        if qualified in names:
            return qualified
        raise NotFound(f"no table or stream named {name!r} in {self.data_dir}")

    def relation(self, name: str) -> _RelationReader:
        view = self._views.get(name)
        if view is not None and view.inode == _inode(view.path):
            return view
        real = self._resolve(name)
        path = relation_dir(self.data_dir, real)
        env = _open_env(path, False, 0)
        try:
            _read_txn(env).abort()  # adopts a map the writer grew before open_db needs it
            meta_db = env.open_db(META, create=False)
        except lmdb.NotFoundError:
            raise NotFound(f"{real} has no metadata yet (the worker has not started it)") from None
        with _read_txn(env) as txn:
            meta = _read_meta(txn, meta_db)
        if meta is None:
            raise NotFound(f"{real} has no metadata yet (the worker has not started it)")
        cls = TableView if meta.kind == "table" else StreamView
        view = cls(path, meta, env)
        self._views[name] = view
        return view

    def table(self, name: str) -> TableView:
        view = self.relation(name)
        if not isinstance(view, TableView):
            raise UsageError(f"{name} is a stream: use store.stream({name!r})")
        return view

    def stream(self, name: str) -> StreamView:
        view = self.relation(name)
        if not isinstance(view, StreamView):
            raise UsageError(f"{name} is a table: use store.table({name!r})")
        return view

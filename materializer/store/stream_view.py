"""`StreamView`: read-only view of a stream (the events of a key, newest first)."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from itertools import islice
from typing import Any

from materializer.errors import UsageError
from materializer.lookup_args import check_limit
from materializer.store.keys import STREAM_KEY_SUFFIX, split_stream_key
from materializer.store.read import RelationReader, prefixed
from materializer.store.rows import split_event


def _tagged(pairs: Iterator[tuple[bytes, bytes]], partition: int
            ) -> Iterator[tuple[bytes, bytes, int]]:
    for k, v in pairs:
        yield k, v, partition


class StreamView(RelationReader):
    """Read-only view of a stream: the events of a key, newest first.

    Stored key: encoded stream key + 8-byte big-endian source offset, so one key's
    events are contiguous and ordered by offset within a partition.
    """

    def events(self, key: Any, limit: int = 10, *, json_form: bool = False,
               held_only: bool = False) -> list[dict[str, Any] | None]:
        """The newest `limit` events of `key` (None for a tombstone), newest first; none
        while partitions are revoked: PartitionsNotHeld (see the class, `held_only`), also
        when held partitions have events of the key: one key's events may be in several
        partitions, and a revoked one may hold the newest."""
        check_limit(limit, "event")
        g = self._current_gen()
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
        if not held_only:  # after the read: a partition revoked meanwhile counts too
            self.require_held()
        # newest first: event time, then offset, then the lower partition (one order
        # whatever order the partitions are read in; the cluster merges the same way)
        found.sort(key=lambda e: (e[0], e[2], -e[1]), reverse=True)
        return [None if e[3] == b"" else conv(e[3]) for e in found[:limit]]

    def scan(self, prefix: Any = (), limit: int | None = None, *, json_form: bool = False,
             held_only: bool = False) -> list[dict[str, Any]]:
        """Events whose key starts with `prefix`, in key order then offset order, as
        `{"key": [...], "partition": p, "offset": o, "timestamp": ms, "value": row|None}`
        (PartitionsNotHeld while partitions are revoked, MemberNotRunning: see the class)."""
        self.require_current()
        if not held_only:
            self.require_held()
        g = self._gen()
        conv = g.layout.to_json if json_form else g.layout.to_python
        try:
            pb, start = self._scan_bounds(g, prefix, limit, None)
        except (TypeError, ValueError) as e:  # as TableView.scan
            raise UsageError(f"prefix {prefix!r} does not fit the key: {e}") from e
        txn, parts = g.begin()
        with txn:
            iters = []
            for p, db in parts:
                cur = txn.cursor(db=db)
                if cur.set_range(start):
                    iters.append(_tagged(prefixed(cur, pb, None), p))
            # one key and offset may be in two partitions: the partition tells them apart
            found = list(islice(heapq.merge(*iters, key=lambda e: e[0]), limit))
        out = []
        for k, v, p in found:
            ts, payload = split_event(v)
            kb, offset = split_stream_key(k)
            out.append({"key": list(g.key_codec.decode(kb)), "partition": p,
                        "offset": offset, "timestamp": ts,
                        "value": None if payload == b"" else conv(payload)})
        return out

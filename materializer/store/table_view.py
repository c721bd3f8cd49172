"""`TableView`: read-only view of a table (rows by key, pages in key order); the plumbing
it shares with `StreamView` is `materializer.store.read.RelationReader`."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from materializer.errors import UsageError
from materializer.lookup_args import refuse_one_key
from materializer.store.read import RelationReader


class TableView(RelationReader):
    """Read-only view of a table: point, batch and prefix lookups on committed state.

    A key is the bare value for a one-column primary key, else a tuple in key order.
    A key held by more than one partition raises AmbiguousKeyError (see `unique_keys`).
    """

    unique_keys = True

    def get(self, key: Any, *, json_form: bool = False, held_only: bool = False
            ) -> dict[str, Any] | None:
        """The row of `key`, or None (PartitionsNotHeld, MemberNotRunning: see the class,
        `held_only`)."""
        g = self._current_gen()
        raw = g.find(g.encode_key(key), not self.unique_keys)
        if raw is None:
            if not held_only:
                self.require_held()
            return None
        return g.layout.to_json(raw) if json_form else g.layout.to_python(raw)

    def get_many(self, keys: Iterable[Any], *, json_form: bool = False,
                 held_only: bool = False) -> list[dict[str, Any] | None]:
        """The rows of `keys` in order, None for a miss (see `get`)."""
        refuse_one_key(keys)
        g = self._current_gen()
        kbs = [g.encode_key(k) for k in keys]
        conv = g.layout.to_json if json_form else g.layout.to_python
        first = not self.unique_keys
        txn, parts = g.begin()
        with txn:
            raws = [g.find_in(txn, parts, kb, first) for kb in kbs]
        if not held_only and any(r is None for r in raws):
            self.require_held()
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
        first = not self.unique_keys
        with txn:
            raws = [g.find_in(txn, parts, kb, first) for kb in kbs]
        return [None if r is None else conv(r) for r in raws]

    def scan(self, prefix: Any = (), limit: int | None = None, *, json_form: bool = False,
             held_only: bool = False) -> list[dict[str, Any]]:
        """Rows whose key starts with `prefix`, in key order, at most `limit` (a page
        without the rows of revoked partitions: PartitionsNotHeld, see the class)."""
        g = self._current_gen()
        try:
            pairs = self._scan_raw(g, prefix, limit, None)
        except (TypeError, ValueError) as e:
            raise UsageError(f"prefix {prefix!r} does not fit the key: {e}") from e
        if not held_only:
            self.require_held()
        conv = g.layout.to_json if json_form else g.layout.to_python
        return [conv(v) for _, v in pairs]

    def __len__(self) -> int:
        txn, parts = self._current_gen().begin()
        with txn:
            return sum(txn.stat(db)["entries"] for _, db in parts)

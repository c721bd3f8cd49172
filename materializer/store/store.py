"""`Store`: read access to a data directory, from any process, while a worker writes."""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib.metadata import entry_points
from time import monotonic
from types import MappingProxyType

from materializer.errors import NotFound, StoreError, UsageError
from materializer.store import layout as _layout
from materializer.store.environment import RelationMeta
from materializer.store.generation import open_generation
from materializer.store.lock import store_root
from materializer.store.read import RelationReader, refuse_undeclared
from materializer.store.stream_view import StreamView
from materializer.store.table_view import TableView
from materializer.versions.paths import MANIFEST
from materializer.versions.paths import require as snapshot_dir


def view_class(meta: RelationMeta) -> type[RelationReader]:
    """TableView or StreamView by kind; a relation another library keeps (its identity's
    `view`, e.g. `faust` for faust tables) is read by the class its `materializer.views`
    entry point names, subclass of TableView or StreamView."""
    plugin = meta.identity.get("view")
    if plugin is None:
        return TableView if meta.kind == "table" else StreamView
    found = entry_points(group="materializer.views", name=str(plugin))
    if not found:
        raise NotFound(f"{meta.name} is a {plugin} table: install materializer[{plugin}] "
                       "to read it")
    cls = next(iter(found)).load()
    if not (isinstance(cls, type) and issubclass(cls, TableView | StreamView)):
        raise StoreError(f"the materializer.views entry point {plugin!r} is not a view class")
    return cls


class Store:
    """Read access to a data directory, from any process, while a worker writes.

    >>> with Store.open("./data") as store:
    ...     store.table("shop.users").get(1)
    """

    def __init__(self, data_dir: str | os.PathLike[str], default_schema: str = "public") -> None:
        self.data_dir = store_root(data_dir, create=False)  # StoreError if it is a file
        self.default_schema = default_schema
        self._views: dict[str, RelationReader] = {}
        self._snapshots: dict[str, Store] = {}
        self._sweep_at = 0.0

    @classmethod
    def open(cls, data_dir: str | os.PathLike[str], default_schema: str = "public") -> Store:
        if not store_root(data_dir, create=False).is_dir():
            raise NotFound(f"no data directory at {data_dir}")
        return cls(data_dir, default_schema)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._views.clear()
        self._snapshots.clear()

    def at(self, snapshot: str) -> Store:
        """The store as snapshot `snapshot` holds it (read-only, it never changes); raises
        `SnapshotNotFound` (a NotFound that lists the snapshot names) if there is none.
        See `materializer.versions`."""
        self._forget_dropped()
        path = snapshot_dir(self.data_dir, snapshot)
        store = self._snapshots.get(snapshot)
        if store is None:
            store = self._snapshots[snapshot] = Store(path, self.default_schema)
        return store

    def open_snapshots(self) -> Mapping[str, Store]:
        """The snapshots this store reads (`at`) by name, as of the last `at`: one dropped
        since leaves it then (at most a second later), so that whatever keeps views of it
        (the HTTP API's relation indexes) can let go of them too."""
        return MappingProxyType(self._snapshots)

    def _forget_dropped(self) -> None:
        """Let go of the files of snapshots dropped since they were read here (checked at
        most once a second), so a long-lived reader does not keep their space in use."""
        now = monotonic()
        if now < self._sweep_at or not self._snapshots:
            return
        self._sweep_at = now + 1.0
        for name, store in list(self._snapshots.items()):
            if not (store.data_dir / MANIFEST).is_file():
                del self._snapshots[name]
                for view in store._views.values():
                    view.release()
                store.close()

    def names(self) -> list[str]:
        """The qualified names of every table and stream in the store, sorted."""
        return _layout.names(self.data_dir)

    def _resolve(self, name: str) -> str:
        if not isinstance(name, str) or not _is_text(name):
            raise NotFound(f"no table or stream named {name!r} in {self.data_dir} (a name "
                           "is Unicode text)")
        for candidate in (name, f"{self.default_schema}.{name}"):
            found = _layout.current(self.data_dir, candidate)
            if found is not None and (found[1] / "data.mdb").is_file():
                return candidate
        raise NotFound(f"no table or stream named {name!r} in {self.data_dir}")

    def relation(self, name: str, as_of: str | None = None) -> RelationReader:
        """The view of a table or stream (`name` qualified, or in the default schema);
        with `as_of`, as snapshot `as_of` holds it (`at`).

        Views are cached per name and follow rebuilds on their own (see `TableView`),
        so keeping one is as good as asking again."""
        if as_of is not None:
            return self.at(as_of).relation(name)
        view = self._views.get(name)
        if view is not None:
            return view
        generation = open_generation(self.data_dir, self._resolve(name))
        refuse_undeclared(self.data_dir, generation)
        cls = view_class(generation.meta)
        view = cls(self.data_dir, generation)
        self._views[name] = view
        return view

    def table(self, name: str, as_of: str | None = None) -> TableView:
        view = self.relation(name, as_of)
        if not isinstance(view, TableView):
            raise UsageError(f"{name} is a stream: use store.stream({name!r})")
        return view

    def stream(self, name: str, as_of: str | None = None) -> StreamView:
        view = self.relation(name, as_of)
        if not isinstance(view, StreamView):
            raise UsageError(f"{name} is a table: use store.table({name!r})")
        return view


def _is_text(name: str) -> bool:
    """Whether `name` can be written as UTF-8 (no lone surrogate)."""
    try:
        name.encode()
    except UnicodeEncodeError:
        return False
    return True

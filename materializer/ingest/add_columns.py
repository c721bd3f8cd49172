"""`materializer add-columns`: take the nullable columns added to a relation's declaration
over its local state as it is, without a replay; the rows (events) held read null in them.

Once records were applied, a worker refuses such a declaration (see
`materializer.ingest.relation.open_relation`): the rows held were applied without the
columns and would read null where their records carry a value. `rebuild` replays the topic
to fill them; this command is for when null is true of them (their records do not carry
the columns) or the topic no longer holds those records. Only added nullable columns are
taken: any other change is refused as before. It holds the store lock (stop the worker).
"""

from __future__ import annotations

from materializer.errors import NotFound
from materializer.ingest.opening import open_registry
from materializer.ingest.relation import open_relation
from materializer.specs import Catalog, RelationSpec
from materializer.store import RelationWriter, StoreLock, relation_exists


def add_columns(catalog: Catalog, spec: RelationSpec, *, what: str = "materializer add-columns"
                ) -> list[str]:
    """The columns taken (none: the declaration already matches). Raises NotFound (no
    local state), StoreLocked (another process writes the store) or SchemaChangedError
    (a change other than added nullable columns)."""
    with StoreLock.acquire(catalog.store_path, what):
        if not relation_exists(catalog.store_path, spec.name):
            raise NotFound(f"{spec.name} has no local state in {catalog.store_path}: there "
                           "is nothing to add columns to (`materializer run` starts it with "
                           "every declared column)")
        # the layout held before: a relation that applied no record yet takes added
        # nullable columns at any open, so its open cannot tell what this one took
        meta = RelationWriter(catalog.store_path, spec.name, catalog.map_size).meta()
        held = set(meta.layout) if meta is not None else set()
        rel = open_relation(spec, catalog.store_path, map_size=catalog.map_size,
                            registry=open_registry(catalog), add_columns=True)
        after = rel.writer.meta()
        return [n for n in (after.layout if after is not None else ()) if n not in held]

"""LMDB storage: the only package that touches `lmdb`, and the owner of every byte format.

Layout: `<data>/relations/<name>/` is one LMDB environment per table or stream.
Inside it, named database `p:<n>` holds partition n (table partition p holds the
keys of source partition p) and `meta` holds the declaration identity, the row
layout, and per partition the next offset to apply and counters.

Guarantees:
- `WriteBatch.commit()` writes rows, next offsets and counters of a batch in one
  LMDB transaction: after a crash either all of it is there or none of it.
- Readers (`Store`, any process) never block the writer and see only committed
  batches; each read call uses one short read transaction.
"""

from materializer.store.environment import RelationMeta, drop_relation, relation_dir
from materializer.store.read import Store, StreamView, TableView
from materializer.store.rows import RowLayout
from materializer.store.writer import (
    MapFull,
    PartitionWriter,
    RelationWriter,
    SideTable,
    WriteBatch,
)

__all__ = [
    "MapFull", "PartitionWriter", "RelationMeta", "RelationWriter", "RowLayout", "SideTable",
    "Store", "StreamView", "TableView", "WriteBatch", "drop_relation", "relation_dir",
]

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

One writer per store: `StoreLock` (`<store>/lock`, an flock) is held by `materializer
run` for its life (worker processes it starts share it) and by `materializer rebuild`;
a second taker fails at once naming the holder's pid and command. Readers take no lock.
The kernel releases it when the last holder exits, kill -9 included.
"""

from materializer.store.environment import RelationMeta, drop_relation, relation_dir
from materializer.store.lock import StoreLock, StoreLocked
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
    "Store", "StoreLock", "StoreLocked", "StreamView", "TableView", "WriteBatch",
    "drop_relation", "relation_dir",
]

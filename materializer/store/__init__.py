"""LMDB storage: the only package that touches `lmdb`.

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

from materializer.store.environment import (
    META,
    RelationMeta,
    drop_relation,
    encode_event,
    partition_db_name,
    relation_dir,
    relations_dir,
)
from materializer.store.read import Store, StreamView, TableView, key_storage_converters
from materializer.store.rows import RowLayout
from materializer.store.writer import RelationWriter, WriteBatch

__all__ = [
    "META", "RelationMeta", "RelationWriter", "RowLayout", "Store", "StreamView", "TableView",
    "WriteBatch", "drop_relation", "encode_event", "key_storage_converters",
    "partition_db_name", "relation_dir", "relations_dir",
]

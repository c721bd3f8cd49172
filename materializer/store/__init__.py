"""LMDB storage: the only package that touches `lmdb`, and the owner of every byte format.

Layout (see `layout`): `<data>/relations/<key>` is a symlink to the current generation
`<key>@<gen>/` of a table or stream, one LMDB environment. `<key>` is a short slug of
the qualified name plus 16 hex digits of its SHA-256, so every valid name (up to 200
characters of schema and 200 of name) is a safe file name; the real name is in the
file `name` beside the LMDB files and in `meta`. Stores of the earlier layout
(`<data>/relations/<name>/`) stay readable, and their first writer moves them.
Inside an environment, named database `p:<n>` holds partition n (table partition p
holds the keys of source partition p) and `meta` holds the declaration identity, the
row layout, per partition the next offset to apply and counters, and the partitions
revoked from this store's worker.

Key size: LMDB keys are at most 511 bytes (`keys.MAX_KEY_BYTES`), so a table's
encoded primary key may take 511 bytes and a stream's encoded key 503 (8 bytes of
source offset follow it). The encoding adds one byte per component, plus two per
string or bytes value and one per zero byte inside one; 8 bytes per int, long or
double. A record whose key is longer is rejected (reason `key_too_long`, routed by
`on_error`), never stored.

Guarantees:
- `WriteBatch.commit()` writes rows, next offsets and counters of a batch in one
  LMDB transaction: after a crash either all of it is there or none of it.
- Readers (`Store`, any process) never block the writer and see only committed
  batches; each read call uses one short read transaction.
- Readers survive a rebuild: `rebuild` writes a fresh generation and publishes it with
  one atomic rename (`RelationWriter(fresh=True)`, `publish()`). A view (kept by user
  code or the HTTP API) checks the current generation at most every 0.1 s and
  switches to a new one; until then it reads the replaced files, which stay readable
  while mapped. It never sees a half-built relation and never fails because of it.
- Revoked partitions are not served: when a rebalance takes a partition from the
  worker, `RelationWriter.set_revoked` marks it in `meta` (its own small transaction,
  never inside a batch) and readers skip it (`get`, `get_many`, `scan`, `events`,
  `len`) until it is assigned to this worker again; a read that misses meanwhile raises
  PartitionsNotHeld rather than answer "absent" (unless `held_only=True`). A clean stop
  marks nothing; after kill -9 the marks are what was committed, and the next assignment
  clears its own.
- A writer maps its whole ceiling, `store.map_size`, at open (address space, not disk),
  so its map never changes size under the reads of its own process; a full map stops
  the worker with a StoreError that names the setting. Readers in other processes
  adopt a larger map on their next transaction.

One writer per store: `StoreLock` (`<store>/lock`, an flock) is held by `materializer
run` for its life (worker processes it starts share it) and by `materializer rebuild`;
a second taker fails at once naming the holder's pid and command. Readers take no lock.
The kernel releases it when the last holder exits, kill -9 included.

Files are the owner's only, whatever the umask: directories the store creates are
0700 (the data directory when the store creates it, `relations/`, each generation),
files 0600 (data.mdb, lock.mdb, `name`, `lock`); `materializer run` adds 077 to its
umask, so the status file `worker.json` is 0600 too. Readers need the same user (an
LMDB reader writes its slot into lock.mdb).
"""

from materializer.store.batch import MapFull, PartitionWriter, WriteBatch
from materializer.store.environment import RelationMeta, drop_relation
from materializer.store.layout import relation_exists
from materializer.store.lock import StoreLock, StoreLocked
from materializer.store.rows import RowLayout
from materializer.store.store import Store
from materializer.store.stream_view import StreamView
from materializer.store.table_view import TableView
from materializer.store.writer import RelationWriter, SideTable

__all__ = [
    "MapFull", "PartitionWriter", "RelationMeta", "RelationWriter", "RowLayout", "SideTable",
    "Store", "StoreLock", "StoreLocked", "StreamView", "TableView", "WriteBatch",
    "drop_relation", "relation_exists",
]

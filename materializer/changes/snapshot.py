"""Snapshot change events (`op: r`): every current row of a table, as Debezium's snapshot.

`materializer rebuild` emits a snapshot of the table it rebuilt (its replay emits no
c/u/d events), `materializer resnapshot` one of a table as it is; both hold the store
lock, so no worker writes meanwhile (see `materializer.ingest.snapshot`).

An r event has `before: null` and the row as `after`; no tombstone follows it. Its
`source.partition` is the table partition the row is stored in (= the source partition
its last change came from), so it goes to the same change-topic partition as that
key's c/u/d events and a consumer sees them in order. `source.offset` is the last
offset applied in that partition (its next offset - 1: the position the snapshot
reflects, not the row's own), `source.ts_ms` the time of the snapshot, and
`source.snapshot` "true", except "last" on the last event of the snapshot. Before that last r
event, each key the change topic still holds a row for but the table does not gets an `op: d`
event (its `before` read back from the topic's last event of the key, `source.snapshot`
"true" and its position its partition's, as an r event's) and a tombstone: so no event marked
part of the snapshot comes after the one marked "last".
A consumer applies an r event like a c: it sets the row. Because r positions are the
partition's, a consumer that skips repeats by (partition, offset) must apply r
events regardless (after a rebuild of a recreated topic they may even be lower).

Staging (`stage_snapshot`) reads the committed rows page by page through a `Store`
view (in this process it reads the writer's own environment), finds each row's
partition, and stages `chunk` r events per write transaction through the outbox;
after each chunk it calls `after_chunk` (the outbox's `drain`), so while the broker
takes the events the outbox never holds much more than a chunk. If the broker is
away the events stay staged and `materializer run` delivers them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from materializer.changes.envelope_base import Message
from materializer.changes.event import Change
from materializer.errors import StoreError
from materializer.specs import TableSpec
from materializer.store import MapFull, RelationWriter, Store, WriteBatch
from materializer.store.rows import decode_row

if TYPE_CHECKING:
    from materializer.changes.outbox import ChangeOutbox

T = TypeVar("T")

__all__ = ["CHUNK", "deliver", "snapshot_changes", "stage_snapshot"]

CHUNK = 10_000
"""Rows read, encoded and staged per write transaction."""


def snapshot_changes(rows: Iterable[tuple[int, tuple[Any, ...]]], key_index: Sequence[int],
                     next_offsets: Mapping[int, int], now_ms: int) -> list[Change]:
    """One r event per (partition, stored row): the key taken from the row at
    `key_index`, the position the partition's last applied offset."""
    out = []
    for p, row in rows:
        key = tuple(row[i] for i in key_index)
        out.append(Change("r", p, max(next_offsets.get(p, 0) - 1, 0), now_ms, key, None, row))
    return out


def stage_snapshot(spec: TableSpec, writer: RelationWriter, layout: Sequence[str],
                   outbox: ChangeOutbox, *, chunk: int = CHUNK,
                   after_chunk: Callable[[], object] | None = None) -> int:
    """Stage an r event for every committed row of `spec` in `outbox`, `chunk` rows per
    transaction, then the deletes of keys the change topic holds and the table does not,
    then the very last r event, marked `last`; returns how many r events. Call with the
    store lock held and no WriteBatch of `writer` open."""
    if chunk < 1:
        raise ValueError("chunk must be at least 1")
    width = len(layout)
    key_index = tuple(layout.index(c) for c in spec.key_columns)
    now_ms = time.time_ns() // 1_000_000
    staged = 0
    announced = outbox.announced_keys()  # None: not known (no Kafka settings)
    held: set[tuple[int, bytes]] = set()
    final: list[Message] = []  # the last r event, staged after the deletes
    with Store.open(writer.data_dir) as store:
        view = store.table(spec.name)
        offsets = view.next_offsets()
        partitions = sorted(offsets)
        chunk = max(chunk, len(partitions))  # a page then never holds only copies of a key
        scan = partial(view.scan_raw, every_copy=True)  # one r per stored row
        page, after = _page(scan, None, chunk)
        while page:
            nxt, after = ([], None) if after is None else _page(scan, after, chunk)
            last = not nxt
            def stage(wb: WriteBatch, page: list[tuple[bytes, bytes]] = page,
                      last: bool = last) -> list[Message]:
                located = _locate(wb, partitions, page, width)
                changes = snapshot_changes(located, key_index, offsets, now_ms)
                msgs = outbox.encode(changes, snapshot_last=last)
                if last and announced:  # deletes may follow: the "last" r waits for them
                    final[:] = msgs[-1:]  # an r event is one message (no tombstone)
                    outbox.put(wb, msgs[:-1])
                else:
                    outbox.put(wb, msgs)
                return msgs

            msgs = _growing(writer, spec.name, "snapshot events", stage)
            if announced is not None:
                held.update((outbox.placement(p, key), key) for p, key, _ in msgs)
            staged += len(page)
            page = nxt
            if after_chunk is not None:
                after_chunk()
    gone = sorted(announced - held) if announced else []
    if gone:
        _stage_deletes(spec, writer, layout, outbox, gone, offsets, now_ms, chunk)
    if final:
        _growing(writer, spec.name, "snapshot events", lambda wb: outbox.put(wb, final))
    if (gone or final) and after_chunk is not None:
        after_chunk()
    return staged


def _stage_deletes(spec: TableSpec, writer: RelationWriter, layout: Sequence[str],
                   outbox: ChangeOutbox, gone: Sequence[tuple[int, bytes]],
                   offsets: Mapping[int, int], now_ms: int, chunk: int) -> None:
    """For each (change-topic partition, key) the change topic holds a row for but the
    table does not (deleted while no events were emitted: `changes:` turned off, a rebuild
    whose replay lost the key): an `op: d` event whose `before` is the row the topic last
    announced (read back from that event, see materializer.changes.readback) at the
    position of its source partition's last applied offset, then a tombstone. So a
    consumer that folds the events and skips tombstones (Flink's `debezium-json`, the
    README's) deletes the row too, and a compacted read of the topic ends as a copy of the
    table. A key whose last event cannot be read back (or whose key another encoding
    wrote, after a rebuild that changed the key's types) gets the tombstone alone."""
    from materializer.changes.readback import event_reader  # noqa: PLC0415

    values = outbox.announced_values(set(gone))
    read = event_reader(spec, layout, outbox.registry)
    for i in range(0, len(gone), chunk):
        msgs: list[Message] = []
        for at, key in gone[i:i + chunk]:
            value = values.get((at, key))
            got = read(key, value) if value is not None else None
            if got is not None:
                sp, kt, row = got
                ch = Change("d", sp, max(offsets.get(sp, 0) - 1, 0), now_ms, kt, row, None)
                enc = outbox.encode([ch], snapshot=True)
                if enc and enc[0][1] == key:
                    msgs.extend(outbox.pinned(enc, at))  # the d event and its tombstone
                    continue
            msgs.extend(outbox.pinned([(at, key, None)], at))

        def put(wb: WriteBatch, msgs: list[Message] = msgs) -> None:
            outbox.put(wb, msgs)

        _growing(writer, outbox.spec.name, "deletes", put)


def _growing(writer: RelationWriter, name: str, what: str, write: Callable[[WriteBatch], T]
             ) -> T:
    """`write` in one batch of `writer`, committed; the map grown and the batch written
    again while it is full, up to `store.map_size` (then StoreError naming it)."""
    while True:
        try:
            with writer.begin() as wb:
                return write(wb)
        except MapFull as e:
            if not writer.grow():
                raise StoreError(
                    f"{name}: the LMDB map is full at its ceiling of {writer.ceiling:,} bytes "
                    f"while staging {what} ({e}); raise `store.map_size` in the declaration "
                    "file") from e


ScanRaw = Callable[..., list[tuple[bytes, bytes]]]


def _page(scan_raw: ScanRaw, after: bytes | None, chunk: int
          ) -> tuple[list[tuple[bytes, bytes]], bytes | None]:
    """The next rows in key order after key `after`, and where the page after it starts
    (None: it is the last page).

    A key stored in several partitions (a source partitioned anew can leave that) comes
    back once per partition, in a row: a page never ends between them, so paging by key
    loses none (`chunk` is at least the number of partitions)."""
    page = scan_raw((), chunk + 1, after)
    if len(page) <= chunk:
        return page, None
    last = page[chunk][0]  # the first key of the next page: none of its copies here
    cut = chunk
    while page[cut - 1][0] == last:
        cut -= 1
    return page[:cut], page[cut - 1][0]


def _locate(wb: Any, partitions: Sequence[int], page: Sequence[tuple[bytes, bytes]],
            width: int) -> list[tuple[int, tuple[Any, ...]]]:
    """(partition, row) of each (encoded key, stored row) of a page: the partition that
    holds the key. The copies of a key in several partitions come in partition order
    (the scan merges partitions stably), so each copy gets the next partition holding
    the key."""
    dbs = [(p, wb.partition(p)) for p in partitions]
    out = []
    prev_key: bytes | None = None
    start = 0
    for kb, raw in page:
        if kb != prev_key:
            start = 0
        for i in range(start, len(dbs)):
            p, db = dbs[i]
            if db.get(kb) is not None:
                out.append((p, decode_row(raw, width)))
                start = i + 1
                break
        else:
            raise StoreError(f"row of key {kb!r} found by the scan but in no partition")
        prev_key = kb
    return out


def deliver(outbox: ChangeOutbox, timeout: float) -> int:
    """Drain `outbox` until it is empty or `timeout` seconds passed; how many events still
    wait (kept in the outbox: the worker delivers them)."""
    deadline = time.monotonic() + timeout
    while True:
        outbox.drain()
        left = outbox.backlog()
        if left == 0 or time.monotonic() >= deadline:
            return left
        time.sleep(0.2)  # drain backs off on its own; this only paces the checks

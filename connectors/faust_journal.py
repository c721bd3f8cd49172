"""Writes of a faust table that are not on disk yet, kept in changelog order.

A faust table writes a key in two steps: it sends the change to its changelog topic,
then sets it in its store. The LMDB store must not put a row on disk before the broker
has its changelog record, or a crash leaves rows that no replay of the changelog gives.
So every write waits here, visible to reads (`lookup`), until
- `acked(partition, offset, key, value)`: the broker stored its changelog record, and
- `durable(partition, offset)`: faust declared the changelog persisted up to `offset`
  (at once under at-least-once; the store refuses exactly-once, where faust never says it),
and `take()` hands it over, in write order and with the partition's highest offset,
for one LMDB transaction. Writes faust makes without a changelog record (local writes:
expired windows, `table.data[k] = v`) are handed over as soon as every earlier write of
their partition is. Nothing here touches faust or LMDB.

Guarantees:
- `take()` returns, per partition, a prefix of that partition's writes in write order:
  what it returns applied to the disk state keeps the disk equal to the changelog folded
  up to the returned offset (plus local writes).
- A write's value stays visible to `lookup` until `settle()` is called for the `take()`
  that handed it over (after the transaction committed), so a read never falls between
  the journal and the disk.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

PENDING = -1
"""Offset of a logged write whose changelog record the broker has not acknowledged."""
LOCAL = -2
"""Offset of a local write: no changelog record will come for it."""
FAILED = -3
"""Offset of a logged write whose changelog record could not be produced."""


@dataclass(slots=True)
class Op:
    """One write: key bytes, value bytes (None: delete), and where it stands."""

    key: bytes
    value: bytes | None
    offset: int = PENDING
    stored: bool = True
    """False: a changelog record the store cannot hold (a key too long for LMDB): its
    acknowledgement moves the partition's offset, and no row is written."""


class _Entry:
    """The latest value of a key in the journal and how many of its writes wait there."""

    __slots__ = ("value", "count")

    def __init__(self, value: bytes | None) -> None:
        self.value = value
        self.count = 1


@dataclass(slots=True)
class Taken:
    """What `take()` hands over for one partition: the rows (None deletes) and the highest
    changelog offset among them (None: only local writes)."""

    rows: dict[bytes, bytes | None] = field(default_factory=dict)
    offset: int | None = None
    ops: list[Op] = field(default_factory=list)


class Journal:
    """Per partition, the writes of one table not yet on disk, and a read overlay of them."""

    __slots__ = ("_overlay", "_ops", "_unacked", "_durable")

    def __init__(self) -> None:
        self._overlay: dict[tuple[int, bytes], _Entry] = {}
        self._ops: dict[int, deque[Op]] = {}
        self._unacked: dict[int, deque[Op]] = {}
        self._durable: dict[int, int] = {}

    def write(self, partition: int, key: bytes, value: bytes | None, logged: bool) -> None:
        """Record a write; `logged`: a changelog record was sent for it just before."""
        op = Op(key, value, PENDING if logged else LOCAL)
        ops = self._ops.get(partition)
        if ops is None:
            ops = self._ops[partition] = deque()
        ops.append(op)
        if logged:
            self._wait_for_ack(partition, op)
        entry = self._overlay.get((partition, key))
        if entry is None:
            self._overlay[(partition, key)] = _Entry(value)
        else:
            entry.value = value
            entry.count += 1

    def _wait_for_ack(self, partition: int, op: Op) -> None:
        un = self._unacked.get(partition)
        if un is None:
            un = self._unacked[partition] = deque()
        un.append(op)

    def unstorable(self, partition: int, key: bytes) -> None:
        """faust sent a changelog record of `key` that the store refuses (the write raised):
        its acknowledgement is matched here and moves the partition's offset past it, but
        no row is written and reads never see it (as recovery skips such a record)."""
        op = Op(key, None, PENDING, stored=False)
        ops = self._ops.get(partition)
        if ops is None:
            ops = self._ops[partition] = deque()
        ops.append(op)
        self._wait_for_ack(partition, op)

    def lookup(self, partition: int, key: bytes) -> tuple[bool, bytes | None]:
        """(True, latest value or None if deleted) if the journal holds a write of `key`
        in `partition`, else (False, None): the disk has the answer."""
        entry = self._overlay.get((partition, key))
        if entry is None:
            return False, None
        return True, entry.value

    def partitions(self) -> list[int]:
        """Partitions that hold writes (or overlay entries) now."""
        return list(self._ops)

    def overlay_items(self) -> Iterator[tuple[int, bytes, bytes | None]]:
        """(partition, key, latest value or None) of every key the journal holds."""
        for (p, k), entry in self._overlay.items():
            yield p, k, entry.value

    def acked(self, partition: int, offset: int, key: bytes, value: bytes | None
              ) -> str | None:
        """The broker stored the changelog record (key, value) at `offset`. It matches the
        oldest unacknowledged write of the partition (records of one partition are
        acknowledged in the order they were sent). Returns a description of a mismatch
        (then the record is journaled as it is, so the disk still follows the changelog)."""
        un = self._unacked.get(partition)
        if un:
            op = un.popleft()
            op.offset = offset
            if op.key == key:
                op.value = value  # the bytes the changelog holds
                return None
            problem = (f"the changelog record at offset {offset} has key {key!r}, the "
                       f"store expected {op.key!r}")
            op.offset = FAILED
        else:
            problem = (f"the changelog record at offset {offset} (key {key!r}) has no "
                       "write in the store")
        self.write(partition, key, value, logged=True)
        self._unacked[partition].pop().offset = offset
        return problem

    def failed(self, partition: int, key: bytes) -> None:
        """The changelog record of the oldest unacknowledged write of `key` could not be
        produced: that write never reaches the disk (the changelog does not have it)."""
        for op in self._unacked.get(partition, ()):
            if op.key == key:
                op.offset = FAILED
                self._unacked[partition].remove(op)
                return

    def durable(self, partition: int, offset: int) -> None:
        """Faust declared the changelog of `partition` persisted up to `offset`."""
        if offset > self._durable.get(partition, -1):
            self._durable[partition] = offset

    def take(self, floor: dict[int, int] | None = None) -> dict[int, Taken]:
        """The writes that may go to disk now, per partition, in write order, removed from
        the journal (their overlay entries stay until `settle`). Logged writes below
        `floor[p]` (the next offset the disk already has, e.g. after a recovery replayed
        them) are skipped; local writes always go."""
        out: dict[int, Taken] = {}
        floor = floor or {}
        for p, ops in self._ops.items():
            if not ops:
                continue
            durable = self._durable.get(p, -1)
            low = floor.get(p, 0)
            taken: Taken | None = None
            while ops:
                op = ops[0]
                off = op.offset
                if off == PENDING or off > durable:
                    break
                ops.popleft()
                if taken is None:
                    taken = out[p] = Taken()
                taken.ops.append(op)
                if off == FAILED or (off >= 0 and off < low):
                    continue
                if not op.stored:
                    taken.offset = off
                    continue
                taken.rows[op.key] = op.value
                if off >= 0:
                    taken.offset = off
        return out

    def settle(self, taken: dict[int, Taken]) -> None:
        """After the transaction that wrote `taken` committed: drop overlay entries whose
        every write is now on disk."""
        overlay = self._overlay
        for p, t in taken.items():
            for op in t.ops:
                entry = overlay.get((p, op.key)) if op.stored else None
                if entry is None:
                    continue
                entry.count -= 1
                if entry.count <= 0:
                    del overlay[(p, op.key)]

    def drop_partition(self, partition: int) -> None:
        """Forget everything of `partition` (revoked from this worker)."""
        self._ops.pop(partition, None)
        self._unacked.pop(partition, None)
        self._durable.pop(partition, None)
        for pk in [pk for pk in self._overlay if pk[0] == partition]:
            del self._overlay[pk]

    def clear(self) -> None:
        self._overlay.clear()
        self._ops.clear()
        self._unacked.clear()
        self._durable.clear()

    def waiting(self) -> int:
        """Writes not handed over yet."""
        return sum(len(ops) for ops in self._ops.values())

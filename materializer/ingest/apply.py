"""Applying a partition's records to a table or stream (SPEC §2 and §4).

Guarantees:
- Records of one partition are applied in offset order; within a batch, a later
  record sees the effect of an earlier one on the same key.
- Everything a batch does to a partition (rows, next offset, counters) goes into
  the caller's `WriteBatch`, so it commits atomically with the offset.
- A partial update (`partial_update`) changes only the listed columns its record
  carries: a listed column the record lacks keeps the stored value (null for a new key),
  one the record holds as null is set null; the columns not listed keep theirs.
- Debezium's placeholder of an unavailable value (`materializer.ingest.unavailable`):
  the column keeps the stored row's value; with no stored row (or in a stream, or a
  soft_primary_key table) the record is a bad record (unavailable_value).
- A bad record never raises out of here: it becomes a `Rejected` routed by the
  table's policy. Under `fail`, nothing after it in its partition is applied and
  the next offset stays at the bad record, so a restart meets it again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from materializer.changes.event import Change
from materializer.errors import RecordError
from materializer.formats.base import DELETE, KeyDecoder, ValueDecoder
from materializer.formats.placeholders import UnavailableFields
from materializer.ingest.event_time import event_times
from materializer.ingest.jsonrow import row_decoder
from materializer.ingest.keypath import key_path
from materializer.ingest.shaper import RowShaper, compile_shaper
from materializer.ingest.unavailable import (
    Unavailable,
    UnavailableShaper,
    check_stream,
    restore,
    unavailable_error,
)
from materializer.protocols import SourceRecord
from materializer.specs import DEBEZIUM_VALUE_FORMATS, StreamSpec, TableSpec
from materializer.store.batch import PartitionWriter
from materializer.store.keys import MAX_KEY_BYTES, STREAM_KEY_SUFFIX, KeyCodec
from materializer.stored import same_stored

__all__ = ["PartitionOutcome", "Rejected", "RowShaper", "StreamApplier", "TableApplier",
           "encode_key", "rejected"]


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that was not applied, and why; the worker routes it by `policy`."""

    partition: int
    offset: int
    reason: str
    message: str
    policy: str  # drop | skip | dead_letter | fail
    key: bytes | None
    value: bytes | None


@dataclass(slots=True)
class PartitionOutcome:
    """What applying one partition's slice of a batch did."""

    next_offset: int
    applied: int = 0
    unchanged: int = 0  # taken by the rules without changing the table (counted, not applied)
    rejected: list[Rejected] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    fatal: Rejected | None = None


def _next_offset(out: PartitionOutcome, records: Sequence[SourceRecord], start_offset: int
                 ) -> int:
    """Where the partition resumes: at a record that stopped it under `fail` (so a restart
    meets it again), else after the last record of the batch."""
    if out.fatal is not None:
        return out.fatal.offset
    if records:
        return max(start_offset, records[-1].offset() + 1)
    return start_offset


class _Absent:
    """The type of ABSENT."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()
"""In a row decoded for a partial update: a listed column the record does not carry (see
`TableApplier.merge`); never stored."""


_KEY_REASONS = frozenset({"null_key", "key_too_long", "bad_unicode"})
"""Reasons of the applier's own errors (decoders name their part) that concern the key."""


def rejected(rec: SourceRecord, partition: int, err: RecordError, policy: str) -> Rejected:
    """The rejection of `rec`; its message starts with `key: ` or `value: ` (decoders say
    which part failed; the applier's own errors are the key's by `_KEY_REASONS`, else the
    value's: a column that does not fit, a null version)."""
    message = str(err)
    if not message.startswith(("key: ", "value: ")):
        message = ("key: " if err.reason in _KEY_REASONS else "value: ") + message
    return Rejected(partition, rec.offset(), err.reason, message, policy, rec.key(),
                    rec.value())


class TableApplier:
    """Applies records to one table by its merge rules (`on_existing`, partial, soft key)."""

    def __init__(self, spec: TableSpec, layout: Sequence[str], key_decoder: KeyDecoder,
                 value_decoder: ValueDecoder) -> None:
        self.spec = spec
        self.layout = tuple(layout)
        self.shape = compile_shaper(spec, layout)
        self.key_codec = KeyCodec(spec.key_types)
        self.key_decoder = key_decoder
        self.key_path = key_path(spec, key_decoder, self.key_codec)
        self.value_decoder = value_decoder
        self.decode_row = row_decoder(spec, layout, value_decoder, self.shape)
        self.emit = spec.changes is not None
        # Debezium's unavailable values (`ingest.unavailable`): rows kept from the stored one
        self.held = spec.unavailable_placeholder is not None
        self.blind = spec.soft_primary_key or (
            spec.on_existing == "overwrite" and spec.partial_update is None and not self.emit)
        self.version_slot = (self.layout.index(spec.version_column)
                             if spec.on_existing == "versioned" and spec.version_column else -1)
        key_set = set(spec.key_columns)
        partial = set(spec.partial_update or ())
        # slots a partial update keeps from the stored row
        self.kept_slots = tuple(i for i, n in enumerate(self.layout)
                                if spec.partial_update is not None
                                and n not in partial and n not in key_set)
        # NOT NULL listed columns of a partial update: checked on the merged row
        self.not_null_slots: tuple[int, ...] = ()
        if spec.partial_update is not None and not spec.soft_primary_key:
            self.decode_row = self._partial_decoder(partial)
            self.not_null_slots = tuple(i for i, n in enumerate(self.layout)
                                        if n in partial and spec.column(n).not_null)

    def null_key_error(self, raw: bytes | None) -> RecordError:
        """The rejection of a record without a key: `null_key` (routed by `null_key`),
        except a Debezium truncate, which Debezium writes without a key: `unsupported_op`
        (routed by `on_error`), so rows the source emptied are not served on unsaid."""
        if self.spec.value_format in DEBEZIUM_VALUE_FORMATS and raw is not None:
            try:
                self.value_decoder(raw)
            except RecordError as e:
                if e.reason == "unsupported_op":
                    return e
        return RecordError("null key", "null_key")

    def _partial_decoder(self, listed: set[str]) -> Callable[[bytes, tuple[Any, ...]], Any]:
        """The row decoder of a partial update: the row, with ABSENT in each listed column
        the record does not carry (a JSON field that is absent, a field the Avro writer
        schema lacks), which `merge` fills from the stored row. A field that holds null is
        carried: it sets null. NOT NULL is checked by `merge`, on the merged row, so a
        record may leave out a NOT NULL column that the stored row holds."""
        spec = self.spec
        relaxed = replace(spec, columns=tuple(
            replace(c, not_null=False) if c.name in listed else c for c in spec.columns))
        shape = compile_shaper(relaxed, self.layout)
        fields_of = self.value_decoder
        slots = tuple((i, n) for i, n in enumerate(self.layout) if n in listed)
        held = UnavailableShaper(relaxed, self.layout) if self.held else None

        def decode(raw: bytes, key: tuple[Any, ...]) -> Any:
            fields = fields_of(raw)
            if fields is DELETE:
                return DELETE
            u = None
            if held is not None and type(fields) is UnavailableFields:
                u = held(fields, key)
                row = u.row
            else:
                row = shape(fields, key)
            absent = [i for i, n in slots if n not in fields]
            if absent:
                out = list(row)
                for i in absent:
                    out[i] = ABSENT
                row = tuple(out)
            return row if u is None else u._replace(row=row)
        return decode

    def merge(self, new: tuple[Any, ...], old: tuple[Any, ...] | None
              ) -> tuple[Any, ...] | None:
        """The row to store, or None to leave the stored row as it is.

        - `ignore`: a stored row stays.
        - `versioned`: a null (or, in a partial update, absent) version is a bad record
          (RecordError null_version); a version below the stored one leaves the row.
        - `partial_update`: the columns not listed, and the listed ones the record does not
          carry (ABSENT), keep the stored values; a new key has null there. A NOT NULL
          column null in the merged row is a bad record (RecordError missing_column).
        """
        vs = self.version_slot
        if vs >= 0:
            nv = new[vs]
            if nv is None or nv is ABSENT:
                raise RecordError(f"version column {self.spec.version_column!r} is null",
                                  "null_version")
        if old is not None:
            if self.spec.on_existing == "ignore":
                return None
            if vs >= 0:
                ov = old[vs]
                if ov is not None and nv < ov:
                    return None
        if self.spec.partial_update is None:
            return new
        row = list(new)
        for i in self.kept_slots:  # a partial update of a new key sets only its columns
            row[i] = None if old is None else old[i]
        for i, v in enumerate(row):
            if v is ABSENT:
                row[i] = None if old is None else old[i]
        for i in self.not_null_slots:
            if row[i] is None:
                raise RecordError(f"column {self.layout[i]!r} is NOT NULL but missing or "
                                  "null", "missing_column")
        return tuple(row)

    def apply(self, pw: PartitionWriter, partition: int, records: Sequence[SourceRecord],
              start_offset: int = 0) -> PartitionOutcome:
        """Apply records (offset order) of one partition; records below `start_offset` are
        already applied (replays after a seek) and are passed over."""
        # a replay after a seek starts below start_offset; otherwise no test per record
        skip_below = start_offset if records and records[0].offset() < start_offset else -1
        spec = self.spec
        keyf = self.key_path
        decode_row = self.decode_row
        stored = pw.get
        merge = self.merge
        blind = self.blind
        emit = self.emit
        held = self.held
        soft = spec.soft_primary_key
        null_policy = spec.null_key
        err_policy = spec.on_error
        pending: dict[bytes, tuple[Any, ...] | None] = {}
        out = PartitionOutcome(next_offset=start_offset)
        changes = out.changes
        rejects = out.rejected
        applied = 0
        unchanged = 0
        for rec in records:
            if skip_below >= 0 and rec.offset() < skip_below:
                continue
            kb_raw = rec.key()
            try:
                if kb_raw is None:
                    raise self.null_key_error(rec.value())
                kt, kb = keyf(kb_raw)
                raw = rec.value()
                row = DELETE if raw is None else decode_row(raw, kt)
                if row is DELETE:
                    if blind:
                        pending[kb] = None
                        applied += 1
                        continue
                    old = pending[kb] if kb in pending else stored(kb)
                    if old is None:  # delete of an absent key: nothing to do or emit
                        unchanged += 1
                        continue
                    pending[kb] = None
                    applied += 1
                    if emit:
                        changes.append(Change("d", partition, rec.offset(), rec.timestamp()[1],
                                              kt, old, None))
                    continue
                if held and type(row) is Unavailable:  # values Debezium did not have
                    if soft:
                        raise unavailable_error(row.columns, "a soft_primary_key table "
                                                "keeps no stored row to keep them from",
                                                row.placeholder)
                    row = restore(row, pending[kb] if kb in pending else stored(kb))
                if blind:
                    pending[kb] = row
                    applied += 1
                    continue
                old = pending[kb] if kb in pending else stored(kb)
                merged = merge(row, old)
                if merged is None or same_stored(merged, old):
                    unchanged += 1  # replays and rejected versions are silent, not uncounted
                    continue
                pending[kb] = merged
                applied += 1
                if emit:
                    changes.append(Change("c" if old is None else "u", partition, rec.offset(),
                                          rec.timestamp()[1], kt, old, merged))
            except RecordError as e:
                policy = null_policy if e.reason == "null_key" else err_policy
                r = rejected(rec, partition, e, policy)
                if policy == "fail":
                    out.fatal = r
                    break
                rejects.append(r)
        out.next_offset = _next_offset(out, records, start_offset)
        pw.put_rows(pending)
        out.applied = applied
        out.unchanged = unchanged
        return out


class StreamApplier:
    """Appends every record of a stream as an event under its key (null keys included),
    keeping at most `max_events_per_key` newest events per key and partition."""

    def __init__(self, spec: StreamSpec, layout: Sequence[str], key_decoder: KeyDecoder,
                 value_decoder: ValueDecoder) -> None:
        self.spec = spec
        self.shape = compile_shaper(spec, layout)
        self.key_codec = KeyCodec(spec.key_types)
        self.key_decoder = key_decoder
        self.value_decoder = value_decoder
        self.null_key = (None,) * len(spec.key_columns)
        self.retime = event_times(spec, layout)  # None: the record timestamps stand
        # key columns declared NOT NULL: a null key (or key column) there is a bad record,
        # never an event holding NULL where the declaration says it cannot be
        self.not_null_keys = tuple((i, c) for i, c in enumerate(spec.key_columns)
                                   if spec.column(c).not_null)

    def apply(self, pw: PartitionWriter, partition: int, records: Sequence[SourceRecord],
              start_offset: int = 0) -> PartitionOutcome:
        kdec = self.key_decoder
        vdec = self.value_decoder
        kenc = self.key_codec.encode
        shape = self.shape
        held = self.spec.unavailable_placeholder is not None
        err_policy = self.spec.on_error
        out = PartitionOutcome(next_offset=start_offset)
        events: list[tuple[bytes, int, int, tuple[Any, ...] | None]] = []
        for rec in records:
            offset = rec.offset()
            if offset < start_offset:
                continue
            try:
                kraw = rec.key()
                kt = self.null_key if kraw is None else kdec(kraw)
                for i, name in self.not_null_keys:
                    if kt[i] is None:
                        raise RecordError(f"key column {name!r} is NOT NULL but the key "
                                          "has it null", "null_key")
                kb = encode_key(kenc, kt, STREAM_KEY_SUFFIX)
                raw = rec.value()
                if raw is None:
                    row = None
                else:
                    fields = vdec(raw)
                    if held:
                        check_stream(fields)  # no stored row to keep a value from
                    row = None if fields is DELETE else shape(fields, kt)
            except RecordError as e:
                r = rejected(rec, partition, e, err_policy)
                if err_policy == "fail":
                    out.fatal = r
                    break
                out.rejected.append(r)
                continue
            events.append((kb, offset, rec.timestamp()[1], row))
        out.next_offset = _next_offset(out, records, start_offset)
        if self.retime is not None:
            events = self.retime(events)
        pw.append_events(events, self.spec.max_events_per_key)
        out.applied = len(events)
        return out


def encode_key(encode: Callable[[tuple[Any, ...]], bytes], key: tuple[Any, ...],
               suffix: int = 0) -> bytes:
    """The stored key of a key tuple; RecordError when it cannot be stored (a string that
    is not valid Unicode, or longer than LMDB's key limit with `suffix` bytes added)."""
    try:
        kb = encode(key)
    except UnicodeEncodeError as e:
        raise RecordError(f"key is not valid Unicode: {e}", "bad_unicode") from e
    if len(kb) + suffix > MAX_KEY_BYTES:
        raise RecordError(f"key is {len(kb) + suffix} bytes stored, over LMDB's limit of "
                          f"{MAX_KEY_BYTES} (use shorter keys)", "key_too_long")
    return kb

"""What every change-event encoder shares: the message shape, the encoder interface, the
Debezium `source` fields and the snapshot flag (one `encode` for both envelopes)."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import json.encoder
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import msgspec

from materializer.changes.event import Change
from materializer.specs import RelationSpec, TableSpec
from materializer.stored import same_stored

Message = tuple[int, bytes, bytes | None]
"""(source partition, key bytes, value bytes or None for a tombstone). A negative partition
-1 - n pins the message to change-topic partition n (`ChangeOutbox.pinned`)."""

def _json_default(o: Any) -> Any:
    """Values a `json` column may hold that JSON has no type for (from Avro sources)."""
    if isinstance(o, decimal.Decimal):
        return str(o)
    if isinstance(o, bytes | bytearray):
        return base64.b64encode(o).decode("ascii")
    if isinstance(o, dt.date | dt.time):
        return o.isoformat()
    if isinstance(o, set | frozenset | tuple):
        return list(o)
    return str(o)


def _make_compact() -> Callable[[Any], str]:
    """Compact ASCII JSON; the C encoder built once (JSONEncoder rebuilds it per call)."""
    c_make = getattr(json.encoder, "c_make_encoder", None)
    if c_make is None:  # no C accelerator in this Python
        return json.JSONEncoder(separators=(",", ":"), default=_json_default).encode
    enc = c_make(None, _json_default, json.encoder.encode_basestring_ascii, None, ":", ",",
                 False, False, True)
    join = "".join
    return lambda obj: join(enc(obj, 0))


_compact = _make_compact()
_quote = json.encoder.encode_basestring_ascii
_msgspec_encode = msgspec.json.Encoder().encode


def row_json(names: Sequence[str]) -> Callable[[Sequence[Any]], bytes]:
    """values (in `names` order) -> the compact JSON object of them, as UTF-8 bytes: a
    msgspec Struct of the names (built once) encoded in C, or, for a value msgspec does
    not take (a dict key that is null or a boolean), `json_bytes` of the dict."""
    struct = msgspec.defstruct("Row", [(f"f{i}", Any) for i in range(len(names))],
                               rename={f"f{i}": n for i, n in enumerate(names)})
    keys = tuple(names)

    def encode(values: Sequence[Any]) -> bytes:
        try:
            return _msgspec_encode(struct(*values))
        except (TypeError, ValueError, OverflowError):
            return json_bytes(dict(zip(keys, values, strict=True)))
    return encode


def json_bytes(obj: Any) -> bytes:
    """Compact JSON of `obj` as UTF-8 bytes: msgspec's encoder (C, no intermediate str),
    or, for what it does not take (a dict key that is null or a boolean), `_compact`."""
    try:
        return _msgspec_encode(obj)
    except (TypeError, ValueError, OverflowError):
        return _compact(obj).encode()


CONNECTOR = "materializer"
"""`source.connector` and `source.name` of every event."""


def source_db(spec: TableSpec) -> str:
    """`source.db`: the schema part of the table's qualified name `schema.name`."""
    return spec.name.partition(".")[0]


def event_time(spec: TableSpec, layout: Sequence[str]) -> Callable[[Change], int] | None:
    """`source.ts_ms` of a change when the table declares a timestamp column (ksqlDB
    TIMESTAMP, YAML `timestamp_column`), else None (then it is `Change.timestamp_ms`, the
    Kafka record's timestamp). The column's value in the row after the change, in
    milliseconds (a timestamp column's microseconds / 1000, a long column as it is: epoch
    milliseconds); a change without one (a delete, or the column null) keeps the record's
    timestamp."""
    found = spec.event_time_slot(layout)
    if found is None:
        return None
    slot, per_ms = found

    def time_of(ch: Change) -> int:
        after = ch.after
        if after is not None and slot < len(after):
            v = after[slot]
            if v is not None:
                return int(v) // per_ms
        return ch.timestamp_ms
    return time_of


def snapshot_flag(op: str) -> str:
    """`source.snapshot` of an event that is not the last of a snapshot."""
    return "true" if op == "r" else "false"


class EventEncoder(Protocol):
    """Turns applied changes into Kafka messages (events and tombstones), in order.
    With `snapshot_last`, the last change is the last r event of a snapshot
    (`source.snapshot: "last"`); with `snapshot`, every change is marked "true"."""

    def encode(self, changes: Sequence[Change], now_ms: int, *,
               snapshot_last: bool = False, snapshot: bool = False) -> list[Message]: ...


# ------------------------------------------------------------------------- JSON


class SnapshotAware:
    """`encode` for both envelopes: snapshot events carry `source.snapshot` "true", the last
    of a snapshot "last"; subclasses implement `_encode(changes, now_ms, flag)`."""

    def encode(self, changes: Sequence[Change], now_ms: int, *,
               snapshot_last: bool = False, snapshot: bool = False) -> list[Message]:
        """`snapshot`: every change is part of a snapshot (`source.snapshot` "true", also
        on a `d`: a snapshot's delete of a key the table no longer holds)."""
        flag = "true" if snapshot else ""
        if snapshot_last and changes:
            return (self._encode(changes[:-1], now_ms, flag)
                    + self._encode(changes[-1:], now_ms, "last"))
        return self._encode(changes, now_ms, flag)

    def _encode(self, changes: Sequence[Change], now_ms: int, flag: str) -> list[Message]:
        raise NotImplementedError


class BatchRows:
    """The encoded rows of one batch of changes, each row encoded once: a change's `before`
    is the very tuple the previous change of its key had as `after` (the applier's pending
    row), so the bytes made for that `after` serve again. Matched by identity, and the
    tuple is held with its bytes, so an id is never taken for another row's."""

    __slots__ = ("_encode", "_none", "_afters")

    def __init__(self, encode: Callable[[tuple[Any, ...]], bytes], none: bytes) -> None:
        self._encode = encode
        self._none = none  # the encoding of "no row"
        self._afters: dict[int, tuple[tuple[Any, ...], bytes]] = {}

    def before(self, t: tuple[Any, ...] | None) -> bytes:
        if t is None:
            return self._none
        hit = self._afters.pop(id(t), None)
        if hit is not None and hit[0] is t:
            return hit[1]
        return self._encode(t)

    def after(self, t: tuple[Any, ...] | None) -> bytes:
        if t is None:
            return self._none
        b = self._encode(t)
        self._afters[id(t)] = (t, b)
        return b


def batch_keys(encode: Callable[[tuple[Any, ...]], bytes], spec: RelationSpec,
               remember: bool = True) -> Callable[[], Callable[[tuple[Any, ...]], bytes]]:
    """A maker of one batch's key encoder: `encode`, remembering each key's bytes for the
    batch (its changes repeat keys), unless not `remember` (`encode` costs less than the
    look-up). A key with a float column is not remembered: 0.0 and -0.0 are equal as dict
    keys and are different keys."""
    if not remember or any(t.kind in ("float", "double") for t in spec.key_types):
        return lambda: encode

    def make() -> Callable[[tuple[Any, ...]], bytes]:
        seen: dict[tuple[Any, ...], bytes] = {}

        def key_of(kt: tuple[Any, ...]) -> bytes:
            kb = seen.get(kt)
            if kb is None:
                kb = seen[kt] = encode(kt)
            return kb
        return key_of
    return make


def _changed(names: Sequence[str], before: tuple[Any, ...] | None,
             after: tuple[Any, ...] | None) -> list[str]:
    """Names of the columns whose stored values differ (Dolt's cell-wise diff)."""
    b = before or ()
    a = after or ()
    return [n for i, n in enumerate(names)
            if not same_stored(b[i] if i < len(b) else None, a[i] if i < len(a) else None)]

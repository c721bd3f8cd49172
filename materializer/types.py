"""Column types, conversion of decoded values to the stored form, and key encoding.

Stored form (what LMDB holds, inside a marshalled tuple) is plain Python data:
int, float, str, bytes, bool, None, list, dict. Rich types are mapped:
  date      -> int days since 1970-01-01
  time      -> int microseconds since midnight
  timestamp -> int microseconds since the Unix epoch, UTC
  decimal   -> str, quantized to the declared scale
  uuid      -> str, canonical lower-case form
The Python API turns them back into `datetime.date`, `datetime.time`,
`datetime.datetime` (UTC-aware), `decimal.Decimal` and `str`; JSON output (CLI,
HTTP) uses ISO 8601 strings, decimal strings and base64 for bytes.

Key encoding is order-preserving and self-delimiting per component, so byte order
of encoded keys equals the order of the key tuples and a prefix of a composite key
is a byte prefix of every key it selects.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import re
import struct
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

PRIMITIVE_KINDS = frozenset(
    {"boolean", "int", "long", "float", "double", "string", "bytes", "date", "time",
     "timestamp", "uuid", "json"}
)
NOT_KEYABLE = frozenset({"json", "array", "map"})
INT_STORED_KINDS = frozenset({"int", "long", "date", "time", "timestamp"})

_EPOCH_DATE = dt.date(1970, 1, 1)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_INT32 = (-(2**31), 2**31 - 1)
# what datetime can represent: 0001-01-01 .. 9999-12-31 (so stored values read back)
_MIN_DAYS, _MAX_DAYS = -719_162, 2_932_896
_MIN_MICROS, _MAX_MICROS = -62_135_596_800_000_000, 253_402_300_799_999_999
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True, slots=True)
class ColumnType:
    """A declared column type; `item` is the element (array) or value (map) type."""

    kind: str
    precision: int = 0
    scale: int = 0
    item: ColumnType | None = None

    def __str__(self) -> str:
        if self.kind == "decimal":
            return f"decimal({self.precision},{self.scale})"
        if self.kind == "array":
            return f"array<{self.item}>"
        if self.kind == "map":
            return f"map<string,{self.item}>"
        return self.kind


class TypeSyntaxError(ValueError):
    """A type string that is not one of the declared types; `offset` is where it broke."""

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.offset = offset


_TOKEN = re.compile(r"\s*([A-Za-z_]+|\d+|[<>(),])")


def parse_type(text: str) -> tuple[ColumnType, bool]:
    """Parse `type [not null]`; returns (type, not_null). Case-insensitive."""
    tokens: list[tuple[str, int]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            if text[pos:].strip() == "":
                break
            raise TypeSyntaxError(f"unexpected {text[pos:].strip()[:10]!r} in type {text!r}", pos)
        tokens.append((m.group(1).lower(), m.start(1)))
        pos = m.end()
    idx = 0

    def peek() -> str:
        return tokens[idx][0] if idx < len(tokens) else ""

    def take(expected: str | None = None) -> str:
        nonlocal idx
        if idx >= len(tokens):
            raise TypeSyntaxError(f"type {text!r} ends too early", len(text))
        tok, off = tokens[idx]
        if expected is not None and tok != expected:
            raise TypeSyntaxError(f"expected {expected!r} but found {tok!r} in type {text!r}", off)
        idx += 1
        return tok

    def one() -> ColumnType:
        off = tokens[idx][1] if idx < len(tokens) else len(text)
        name = take()
        if name in PRIMITIVE_KINDS:
            return ColumnType(name)
        if name == "decimal":
            take("(")
            p = take()
            take(",")
            s = take()
            take(")")
            if not (p.isdigit() and s.isdigit()) or not (1 <= int(p) <= 38) or int(s) > int(p):
                raise TypeSyntaxError(
                    f"decimal({p},{s}) needs 1 <= precision <= 38 and 0 <= scale <= precision",
                    off)
            return ColumnType("decimal", int(p), int(s))
        if name == "array":
            take("<")
            inner = one()
            take(">")
            return ColumnType("array", item=inner)
        if name == "map":
            take("<")
            k = take()
            if k != "string":
                raise TypeSyntaxError("map keys must be string: write map<string,T>", off)
            take(",")
            inner = one()
            take(">")
            return ColumnType("map", item=inner)
        raise TypeSyntaxError(
            f"unknown type {name!r}; use one of boolean, int, long, float, double, "
            "decimal(p,s), string, bytes, date, time, timestamp, uuid, json, array<T>, "
            "map<string,T>", off)

    if not tokens:
        raise TypeSyntaxError("empty type", 0)
    ctype = one()
    not_null = False
    if peek() == "not":
        take()
        take("null")
        not_null = True
    if idx != len(tokens):
        raise TypeSyntaxError(f"unexpected {tokens[idx][0]!r} after type {ctype}", tokens[idx][1])
    return ctype, not_null


# --------------------------------------------------------------------------- values

Converter = Callable[[Any], Any]


def _is_int(v: Any) -> bool:
    return type(v) is int


def _range_int(lo: int, hi: int, kind: str) -> Converter:
    def conv(v: Any) -> Any:
        if type(v) is not int:
            raise TypeError(f"expected {kind}, got {type(v).__name__}")
        if v < lo or v > hi:
            raise ValueError(f"{v} is out of range for {kind}")
        return v
    return conv


def _to_float(v: Any) -> Any:
    t = type(v)
    if t is float:
        return v
    if t is int:
        try:
            return float(v)
        except OverflowError as e:
            raise ValueError(f"{v} is too large for a floating-point column") from e
    raise TypeError(f"expected a number, got {t.__name__}")


def _to_bool(v: Any) -> Any:
    if type(v) is bool:
        return v
    raise TypeError(f"expected boolean, got {type(v).__name__}")


def _to_str(v: Any) -> Any:
    if type(v) is str:
        return v
    raise TypeError(f"expected string, got {type(v).__name__}")


def _to_bytes(v: Any) -> Any:
    if isinstance(v, bytes | bytearray):
        return bytes(v)
    if isinstance(v, str):
        try:
            return base64.b64decode(v, validate=True)
        except ValueError as e:
            raise ValueError("expected base64 text for a bytes column") from e
    raise TypeError(f"expected bytes, got {type(v).__name__}")


def _to_date(v: Any) -> Any:
    if type(v) is int:
        if not _MIN_DAYS <= v <= _MAX_DAYS:
            raise ValueError(f"{v} days is outside the dates years 1-9999 can hold")
        return v
    if isinstance(v, dt.datetime):
        raise TypeError("expected a date, got a timestamp")
    if isinstance(v, dt.date):
        return (v - _EPOCH_DATE).days
    if isinstance(v, str):
        return (dt.date.fromisoformat(v) - _EPOCH_DATE).days
    raise TypeError(f"expected a date, got {type(v).__name__}")


def _to_time(v: Any) -> Any:
    if type(v) is int:  # milliseconds since midnight (ksqlDB, Avro time-millis)
        if not 0 <= v < 86_400_000:
            raise ValueError(f"{v} ms is not a time of day")
        return v * 1000
    if isinstance(v, dt.time):
        return ((v.hour * 60 + v.minute) * 60 + v.second) * 1_000_000 + v.microsecond
    if isinstance(v, str):
        t = dt.time.fromisoformat(v)
        return ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond
    raise TypeError(f"expected a time, got {type(v).__name__}")


def _to_timestamp(v: Any) -> Any:
    if type(v) is int:  # milliseconds since the epoch (Kafka, ksqlDB, Debezium)
        if not _MIN_MICROS <= v * 1000 <= _MAX_MICROS:
            raise ValueError(f"{v} ms is outside the timestamps years 1-9999 can hold")
        return v * 1000
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=dt.UTC)
        delta = v - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(v, str):
        return _to_timestamp(dt.datetime.fromisoformat(v.replace("Z", "+00:00")))
    raise TypeError(f"expected a timestamp, got {type(v).__name__}")


def _to_uuid(v: Any) -> Any:
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, str):
        return str(uuid.UUID(v))
    raise TypeError(f"expected a uuid, got {type(v).__name__}")


def _decimal_converter(precision: int, scale: int) -> Converter:
    quantum = decimal.Decimal(1).scaleb(-scale)
    limit = decimal.Decimal(10) ** (precision - scale)

    def conv(v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, decimal.Decimal | int | float | str):
            raise TypeError(f"expected a decimal, got {type(v).__name__}")
        try:
            d = decimal.Decimal(str(v) if isinstance(v, float) else v)
            q = d.quantize(quantum, rounding=decimal.ROUND_HALF_EVEN)
        except decimal.InvalidOperation as e:
            raise ValueError(f"{v!r} is not a decimal") from e
        if not q.is_finite() or abs(q) >= limit:
            raise ValueError(f"{v} does not fit decimal({precision},{scale})")
        return str(q)

    return conv


def _to_json(v: Any) -> Any:
    return v


def to_storage(t: ColumnType) -> Converter:
    """A converter from a decoded value (JSON or Avro) to the stored form of `t`.

    Raises TypeError or ValueError for a value that does not fit; None is the
    caller's business (nullability is checked before conversion).
    """
    k = t.kind
    if k == "int":
        return _range_int(*_INT32, "int")
    if k == "long":
        return _range_int(*_INT64, "long")
    if k in ("float", "double"):
        return _to_float
    if k == "boolean":
        return _to_bool
    if k == "string":
        return _to_str
    if k == "bytes":
        return _to_bytes
    if k == "date":
        return _to_date
    if k == "time":
        return _to_time
    if k == "timestamp":
        return _to_timestamp
    if k == "uuid":
        return _to_uuid
    if k == "decimal":
        return _decimal_converter(t.precision, t.scale)
    if k == "json":
        return _to_json
    assert t.item is not None
    inner = to_storage(t.item)
    if k == "array":
        def conv_array(v: Any) -> Any:
            if not isinstance(v, list | tuple):
                raise TypeError(f"expected an array, got {type(v).__name__}")
            return [None if x is None else inner(x) for x in v]
        return conv_array

    def conv_map(v: Any) -> Any:
        if isinstance(v, list):  # Avro maps may come as [(k, v)] pairs
            v = dict(v)
        if not isinstance(v, dict) or not all(type(key) is str for key in v):
            raise TypeError("expected a map with string keys")
        return {key: None if x is None else inner(x) for key, x in v.items()}
    return conv_map


def items_converter(t: ColumnType, convert: Callable[[ColumnType], Converter | None]
                    ) -> Converter | None:
    """For an array or map type: `convert(t.item)` applied to each non-null element of an
    array or value of a map (keys are kept), or None if the items need no conversion."""
    assert t.item is not None
    inner = convert(t.item)
    if inner is None:
        return None
    if t.kind == "array":
        return lambda v: [None if x is None else inner(x) for x in v]
    return lambda v: {key: None if x is None else inner(x) for key, x in v.items()}


def from_storage(t: ColumnType) -> Converter | None:
    """A converter from the stored form to the Python API form, or None if identical."""
    k = t.kind
    if k == "date":
        return lambda v: _EPOCH_DATE + dt.timedelta(days=v)
    if k == "time":
        return lambda v: (dt.datetime.min + dt.timedelta(microseconds=v)).time()
    if k == "timestamp":
        return lambda v: _EPOCH + dt.timedelta(microseconds=v)
    if k == "decimal":
        return decimal.Decimal
    if k in ("array", "map"):
        return items_converter(t, from_storage)
    return None


def to_json_value(t: ColumnType) -> Converter | None:
    """A converter from the stored form to a JSON-ready value, or None if identical."""
    k = t.kind
    if k == "date":
        return lambda v: (_EPOCH_DATE + dt.timedelta(days=v)).isoformat()
    if k == "time":
        return lambda v: (dt.datetime.min + dt.timedelta(microseconds=v)).time().isoformat()
    if k == "timestamp":
        return lambda v: (_EPOCH + dt.timedelta(microseconds=v)).isoformat().replace(
            "+00:00", "Z")
    if k == "bytes":
        return lambda v: base64.b64encode(v).decode("ascii")
    if k in ("array", "map"):
        return items_converter(t, to_json_value)
    return None  # decimal and uuid are already strings


# --------------------------------------------------------------------------- keys

_NULL = b"\x00"
_PRESENT = b"\x01"
_BIAS = 2**63
_pack_q = struct.Struct(">Q").pack
_unpack_q = struct.Struct(">Q").unpack_from
_pack_d = struct.Struct(">d").pack


def _enc_int(v: int) -> bytes:
    return _PRESENT + _pack_q(v + _BIAS)


def _enc_float(v: float) -> bytes:
    (bits,) = struct.unpack(">Q", _pack_d(v))
    bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits >> 63 else bits | (1 << 63)
    return _PRESENT + _pack_q(bits)


def _enc_bool(v: bool) -> bytes:
    return b"\x01\x01" if v else b"\x01\x00"


def _enc_bytes(v: bytes) -> bytes:
    return _PRESENT + v.replace(b"\x00", b"\x00\xff") + b"\x00\x00"


def _enc_str(v: str) -> bytes:
    return _enc_bytes(v.encode("utf-8"))


def _decimal_encoder(scale: int) -> Callable[[Any], bytes]:
    def enc(v: Any) -> bytes:
        n = int(decimal.Decimal(v).scaleb(scale))
        mag = abs(n).to_bytes((abs(n).bit_length() + 7) // 8, "big")
        if n >= 0:
            return _PRESENT + b"\x02" + bytes([len(mag)]) + mag
        return _PRESENT + b"\x00" + bytes([255 - len(mag)]) + bytes(255 - b for b in mag)
    return enc


def key_component_encoder(t: ColumnType) -> Callable[[Any], bytes]:
    """Encoder of one key component (stored form, not None) to order-preserving bytes."""
    k = t.kind
    if k in INT_STORED_KINDS:
        return _enc_int
    if k in ("float", "double"):
        return _enc_float
    if k == "boolean":
        return _enc_bool
    if k in ("string", "uuid"):
        return _enc_str
    if k == "bytes":
        return _enc_bytes
    if k == "decimal":
        return _decimal_encoder(t.scale)
    raise ValueError(f"type {t} cannot be part of a key")


class KeyCodec:
    """Encodes key tuples (stored form) to bytes whose order is the tuple order."""

    __slots__ = ("types", "_encoders", "_single")

    def __init__(self, types: Sequence[ColumnType]) -> None:
        self.types = tuple(types)
        self._encoders = tuple(key_component_encoder(t) for t in self.types)
        self._single = self._encoders[0] if len(self._encoders) == 1 else None

    def encode(self, values: Sequence[Any]) -> bytes:
        """Encode a full key tuple. None components (stream keys) sort first."""
        if self._single is not None:
            v = values[0]
            return _NULL if v is None else self._single(v)
        if len(values) != len(self._encoders):
            raise ValueError(f"key has {len(values)} values, expected {len(self._encoders)}")
        return b"".join(_NULL if v is None else enc(v)
                        for enc, v in zip(self._encoders, values))  # noqa: B905 - checked above; strict= costs ~150 ns on 3.11

    def encode_prefix(self, values: Sequence[Any]) -> bytes:
        """Encode the first len(values) components: a byte prefix of every matching key."""
        if len(values) > len(self._encoders):
            raise ValueError(f"prefix has {len(values)} values, the key has {len(self._encoders)}")
        return b"".join(_NULL if v is None else enc(v)
                        for enc, v in zip(self._encoders, values, strict=False))

    def decode(self, data: bytes) -> tuple[Any, ...]:
        """Inverse of `encode` (used for cursors and tests)."""
        out: list[Any] = []
        pos = 0
        for t in self.types:
            tag = data[pos]
            pos += 1
            if tag == 0:
                out.append(None)
                continue
            k = t.kind
            if k in INT_STORED_KINDS:
                out.append(_unpack_q(data, pos)[0] - _BIAS)
                pos += 8
            elif k in ("float", "double"):
                bits = _unpack_q(data, pos)[0]
                bits = bits ^ (1 << 63) if bits >> 63 else bits ^ 0xFFFFFFFFFFFFFFFF
                out.append(struct.unpack(">d", struct.pack(">Q", bits))[0])
                pos += 8
            elif k == "boolean":
                out.append(data[pos] == 1)
                pos += 1
            elif k == "decimal":
                sign, ln = data[pos], data[pos + 1]
                pos += 2
                if sign == 2:
                    n = int.from_bytes(data[pos:pos + ln], "big")
                else:
                    ln = 255 - ln
                    n = -int.from_bytes(bytes(255 - b for b in data[pos:pos + ln]), "big")
                pos += ln
                out.append(str(decimal.Decimal(n).scaleb(-t.scale)))
            else:
                buf = bytearray()
                while True:
                    b = data[pos]
                    if b == 0:
                        nxt = data[pos + 1]
                        pos += 2
                        if nxt == 0:
                            break
                        buf.append(0)
                    else:
                        buf.append(b)
                        pos += 1
                raw = bytes(buf)
                out.append(raw if k == "bytes" else raw.decode("utf-8"))
        if pos != len(data):
            raise ValueError("trailing bytes after key")
        return tuple(out)

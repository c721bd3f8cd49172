"""Values: decoded input to the stored form (`to_storage`, `key_storage`); the stored form
back to Python and JSON, and comparing stored values, are `materializer.stored`.

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
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import math
import re
import uuid
from typing import Any

from materializer.cautions import Caution
from materializer.columns import ColumnType
from materializer.decimals import decimal_converter
from materializer.errors import RecordError
from materializer.stored import Converter, timestamp_json

_EPOCH_DATE = dt.date(1970, 1, 1)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ONE_MICROSECOND = dt.timedelta(microseconds=1)
_fromisoformat = dt.datetime.fromisoformat
_b64encode = base64.b64encode
_INT32 = (-(2**31), 2**31 - 1)
# what datetime can represent: 0001-01-01 .. 9999-12-31 (so stored values read back)
_MIN_DAYS, _MAX_DAYS = -719_162, 2_932_896
_MIN_MICROS, _MAX_MICROS = -62_135_596_800_000_000, 253_402_300_799_999_999
_INT64 = (-(2**63), 2**63 - 1)
_DAY_MICROS = 86_400_000_000

MAX_DEPTH = 128
"""How deeply arrays and objects may nest in a json column's value: deeper is refused
(RecordError too_deep), so a stored value is never too deep to serve."""


_isfinite = math.isfinite


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
        if _isfinite(v):
            return v
        raise ValueError(f"{v} is not a finite number: no column holds NaN or infinity")
    if t is int:
        try:
            return float(v)
        except OverflowError as e:
            raise ValueError(f"{v} is too large for a floating-point column") from e
    raise TypeError(f"expected a number, got {t.__name__}")


FLOAT32_MAX = 3.4028234663852886e38
"""The largest finite 32-bit float: a `float` column's values are within +-this."""


def _to_float32(v: Any) -> Any:
    """`_to_float` for a 32-bit `float` column: a number beyond its range does not fit
    (a change event's Avro float would carry infinity)."""
    f = _to_float(v)
    if -FLOAT32_MAX <= f <= FLOAT32_MAX:
        return f
    raise ValueError(f"{v} is beyond the range of a 32-bit float column (declare it double)")


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
            raw = base64.b64decode(v, validate=True)
        except ValueError as e:
            raise ValueError("expected base64 text for a bytes column") from e
        if _b64encode(raw) != v.encode("ascii"):  # ascii: validate=True let nothing else by
            # unused bits set in the last character: other texts decode to the same bytes
            raise ValueError("expected canonical base64 text for a bytes column (the last "
                             "character has bits set that encode nothing)")
        return raw
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
    if isinstance(v, str):
        v = dt.time.fromisoformat(v)
    elif not isinstance(v, dt.time):
        raise TypeError(f"expected a time, got {type(v).__name__}")
    us = ((v.hour * 60 + v.minute) * 60 + v.second) * 1_000_000 + v.microsecond
    offset = v.utcoffset()
    if offset:  # a time with an offset: the time of day in UTC, as timestamps are kept
        us = (us - offset // _ONE_MICROSECOND) % _DAY_MICROS
    return us


def _to_timestamp(v: Any) -> Any:
    t = type(v)
    if t is int:  # milliseconds since the epoch (Kafka, ksqlDB, Debezium)
        if not _MIN_MICROS <= v * 1000 <= _MAX_MICROS:
            raise ValueError(f"{v} ms is outside the timestamps years 1-9999 can hold")
        return v * 1000
    if t is str or isinstance(v, str):  # ISO 8601 text, the commonest form in JSON
        v = _from_iso_text(v)
    elif not isinstance(v, dt.datetime):
        raise TypeError(f"expected a timestamp, got {t.__name__}")
    if v.tzinfo is None:
        v = v.replace(tzinfo=dt.UTC)
    us = (v - _EPOCH) // _ONE_MICROSECOND  # exact: timedelta // timedelta is an int
    if not _MIN_MICROS <= us <= _MAX_MICROS:  # an offset can push it out in UTC
        raise ValueError(f"{v.isoformat()} is outside the timestamps years 1-9999 can "
                         "hold (in UTC)")
    return us


def _from_iso_text(v: str) -> dt.datetime:
    """`fromisoformat` of the text with every Z read as +00:00. Python 3.11 reads a
    trailing Z itself, which skips making the replaced text (a third of the conversion):
    where it reads one, it gives what +00:00 gives, and where it does not (a Z after a bare
    date), the replaced text is read as before (tests/store/test_types.py compares the
    two on generated text)."""
    z = v.find("Z")
    if z == -1:
        return _fromisoformat(v)
    if z == len(v) - 1:
        try:
            return _fromisoformat(v)
        except ValueError:
            pass
    return _fromisoformat(v.replace("Z", "+00:00"))


_IN_MICROSECONDS = {"s": (1_000_000, 1), "us": (1, 1), "ns": (1, 1000)}
"""An integer's unit -> (multiply, then floor-divide) to microseconds (ns: floor, as
Debezium's NanoTimestamp)."""

_LOOKS_LIKE_SECONDS = range(10**9, 10**10)
"""Integers that, as milliseconds since the epoch, fall in 1970-01-12..1970-04-27 and, as
seconds, in 2001..2286: a producer counting seconds, most likely (a caution)."""


def _to_timestamp_in(unit: str | None, caution: Caution | None = None) -> Converter:
    """`_to_timestamp`, with integers counted in `unit` (s, ms, us, ns) since the epoch.
    In ms (the default), `caution` is told of an integer that looks like seconds."""
    if unit in _IN_MICROSECONDS:
        mul, div = _IN_MICROSECONDS[unit]

        def conv(v: Any) -> Any:
            if type(v) is int:
                us = v * mul // div
                if not _MIN_MICROS <= us <= _MAX_MICROS:
                    raise ValueError(f"{v} {unit} is outside the timestamps years 1-9999 "
                                     "can hold")
                return us
            return _to_timestamp(v)
        return conv
    if caution is None:
        return _to_timestamp

    def conv_ms(v: Any) -> Any:
        if type(v) is int and v in _LOOKS_LIKE_SECONDS:
            caution(lambda: f"{v} read as milliseconds since the epoch is "
                    f"{timestamp_json(v * 1000)}; if the producer counts seconds (that would "
                    f"be {timestamp_json(v * 1_000_000)}), declare the column's "
                    "`encoding: s` and rebuild")
        return _to_timestamp(v)
    return conv_ms


def _to_time_in(unit: str | None) -> Converter:
    """`_to_time`, with integers counted in `unit` (s, ms, us, ns) since midnight."""
    if unit not in _IN_MICROSECONDS:
        return _to_time
    mul, div = _IN_MICROSECONDS[unit]

    def conv(v: Any) -> Any:
        if type(v) is int:
            us = v * mul // div
            if not 0 <= us < _DAY_MICROS:
                raise ValueError(f"{v} {unit} is not a time of day")
            return us
        return _to_time(v)
    return conv


def _to_uuid(v: Any) -> Any:
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, str):
        return str(uuid.UUID(v))
    raise TypeError(f"expected a uuid, got {type(v).__name__}")


def _plain_json(v: Any) -> bool:
    """Whether a dict or list is JSON data as JSON input gives it (str keys; str, int,
    bool, None, finite float, dict and list values) nested at most MAX_DEPTH levels.
    A walk by levels, without recursion."""
    level = [v]
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            return False
        below: list[Any] = []
        push = below.append
        for o in level:
            if type(o) is dict:
                for key in o:
                    if type(key) is not str:
                        return False
                o = o.values()
            for x in o:
                t = type(x)
                if t is str or t is int or t is bool or x is None:
                    continue
                if t is float:
                    if x - x:  # nan or inf
                        return False
                elif t is dict or t is list:
                    push(x)
                else:
                    return False
        level = below
    return True


_JSON_KEY = (str, int, bool, type(None))


def _json_form(v: Any, depth: int = 0) -> Any:
    """`v` as JSON data: bytes as base64, Decimal as its text, dates, times and
    timestamps as ISO 8601 text (timestamps in UTC with a Z, naive ones read as UTC),
    uuid as text, tuples as arrays. TypeError or ValueError for anything else or a
    non-finite number; RecordError(too_deep) for more than MAX_DEPTH levels."""
    t = type(v)
    if t is str or t is bool or t is int or v is None:
        return v
    if t is float:
        return _to_float(v)
    if isinstance(v, dict | list | tuple):
        if depth >= MAX_DEPTH:
            raise RecordError(f"a json value nested more than {MAX_DEPTH} levels deep",
                              "too_deep")
        if isinstance(v, dict):
            out = {}
            for key, x in v.items():
                if type(key) not in _JSON_KEY and not (type(key) is float and _isfinite(key)):
                    raise TypeError(f"a json object key must be a string, not "
                                    f"{type(key).__name__}")
                out[key] = _json_form(x, depth + 1)
            return out
        return [_json_form(x, depth + 1) for x in v]
    if isinstance(v, bytes | bytearray | memoryview):
        return base64.b64encode(v).decode("ascii")
    if isinstance(v, decimal.Decimal):
        if not v.is_finite():
            raise ValueError(f"{v} is not a finite number: no column holds NaN or infinity")
        return str(v)
    if isinstance(v, dt.datetime):
        return timestamp_json(_to_timestamp(v))
    if isinstance(v, dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, uuid.UUID):
        return str(v)
    raise TypeError(f"{type(v).__name__} has no JSON form")


def _to_json(v: Any) -> Any:
    """A value for a json column: JSON data every reader can serve as strict JSON.

    JSON input passes as it is, once checked (`_plain_json`: no NaN or infinity,
    nested at most MAX_DEPTH levels); values JSON has no type for (from Avro) take
    their JSON form (`_json_form`)."""
    t = type(v)
    if t is str or t is bool:
        return v
    if (t is dict or t is list) and _plain_json(v):
        return v
    return _json_form(v)


def to_storage(t: ColumnType, caution: Caution | None = None) -> Converter:
    """A converter from a decoded value (JSON or Avro) to the stored form of `t`.

    The type's `encoding` says how integers (timestamp, time: ms, us or ns) and text
    (decimal: base64) are read. Raises TypeError or ValueError for a value that does not
    fit (a non-finite number fits no column); a json value nested more than MAX_DEPTH levels raises
    RecordError(too_deep). None is the caller's business (nullability is checked
    before conversion). `caution` is told of a value kept not quite as given (in arrays and
    maps too): a decimal rounded to its scale, an integer timestamp in ms that looks like
    seconds (`materializer.cautions`).
    """
    k = t.kind
    if k == "int":
        return _range_int(*_INT32, "int")
    if k == "long":
        return _range_int(*_INT64, "long")
    if k == "double":
        return _to_float
    if k == "float":
        return _to_float32
    if k == "boolean":
        return _to_bool
    if k == "string":
        return _to_str
    if k == "bytes":
        return _to_bytes
    if k == "date":
        return _to_date
    if k == "time":
        return _to_time_in(t.encoding)
    if k == "timestamp":
        return _to_timestamp_in(t.encoding, caution)
    if k == "uuid":
        return _to_uuid
    if k == "decimal":
        return decimal_converter(t.precision, t.scale, t.encoding == "base64",
                                 rounded=caution)
    if k == "json":
        return _to_json
    assert t.item is not None
    inner = to_storage(t.item, caution)
    if k == "array":
        def conv_array(v: Any) -> Any:
            if not isinstance(v, list | tuple):
                raise TypeError(f"expected an array, got {type(v).__name__}")
            return [None if x is None else inner(x) for x in v]
        return conv_array

    def conv_map(v: Any) -> Any:
        if not isinstance(v, dict) or not all(type(key) is str for key in v):
            raise TypeError("expected a map with string keys")
        return {key: None if x is None else inner(x) for key, x in v.items()}
    return conv_map


_BELOW_MICROSECOND = re.compile(r"[.,][0-9]{6}0*[1-9]")
"""ISO 8601 text with a nonzero fraction of a second past the sixth digit."""


def key_storage(t: ColumnType) -> Converter:
    """`to_storage` for a key column: a value the column would hold only rounded does not
    fit either (ValueError): digits past a decimal's scale, an integer a double does not
    hold exactly, a time or timestamp below the microsecond. Two keys of the topic that
    round alike would share one row; a lookup by such a key would answer another's row."""
    k = t.kind
    if k == "decimal":
        return decimal_converter(t.precision, t.scale, t.encoding == "base64", unrounded=True)
    conv = to_storage(t)
    if k in ("float", "double"):
        def conv_number(v: Any) -> Any:
            f = conv(v)
            if type(v) is int and int(f) != v:
                raise ValueError(f"{v} is not exactly a {k}: as a key it would share a row "
                                 f"with the integers that round alike (declare it long)")
            return f
        return conv_number
    if k in ("time", "timestamp"):
        nanos = t.encoding == "ns"

        def conv_instant(v: Any) -> Any:
            if (type(v) is int and nanos and v % 1000) or (
                    type(v) is str and _BELOW_MICROSECOND.search(v) is not None):
                raise ValueError(f"{v!r} is finer than the microseconds a {k} keeps: as a "
                                 "key it would share a row with the keys that round alike")
            return conv(v)
        return conv_instant
    return conv

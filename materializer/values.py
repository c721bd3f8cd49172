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

from materializer.binary_text import bytes_in, canonical_base64
from materializer.cautions import Caution
from materializer.columns import ColumnType
from materializer.decimals import decimal_converter
from materializer.errors import RecordError
from materializer.stored import Converter, timestamp_json
from materializer.temporal_values import to_date, to_time_in, to_timestamp, to_timestamp_in

_b64encode = base64.b64encode
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)

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
        if _inexact_in_double(v, as_printed=True):
            raise ValueError(f"{v} is an integer a double does not hold exactly (it would be "
                             f"stored as {float(v)!r}): declare the column long, or "
                             "decimal(p,0) past 64 bits")
        try:
            return float(v)
        except OverflowError as e:
            raise ValueError(f"{v} is too large for a floating-point column") from e
    raise TypeError(f"expected a number, got {t.__name__}")


_EXACT_IN_DOUBLE = 2**53
"""Every integer up to this magnitude is a double exactly; past it, only some are."""


def _inexact_in_double(v: int, as_printed: bool = False) -> bool:
    """Whether integer `v` is a double only rounded (False when it is too large for one).
    `as_printed`: not when `v` is how a double's shortest text reads as an integer (Go's
    and JavaScript's JSON write 1.2345678901234567e19 as 12345678901234567000, whose
    double is ...7168): that producer wrote a double, which is kept."""
    if -_EXACT_IN_DOUBLE <= v <= _EXACT_IN_DOUBLE:
        return False
    try:
        f = float(v)
    except OverflowError:
        return False
    return int(f) != v and not (as_printed and int(decimal.Decimal(repr(f))) == v)


FLOAT32_MAX = 3.4028234663852886e38
"""The largest finite 32-bit float: a `float` column's values are within +-this."""


def _to_float32(v: Any) -> Any:
    """`_to_float` for a 32-bit `float` column: a number beyond its range does not fit
    (a change event's Avro float would carry infinity)."""
    if type(v) is int and not -FLOAT32_MAX <= v <= FLOAT32_MAX:
        raise ValueError(f"{v} is beyond the range of a 32-bit float column (declare it "
                         "double)")
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
        return canonical_base64(v)
    raise TypeError(f"expected bytes, got {type(v).__name__}")


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
        return timestamp_json(to_timestamp(v))
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
    (decimal: base64; bytes: base64, base64-url-safe or hex, `materializer.binary_text`)
    are read. Raises TypeError or ValueError for a value that does not
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
    if k == "bytes":  # text: base64, unless the column declares another encoding
        return _to_bytes if t.encoding is None else bytes_in(t.encoding)
    if k == "date":
        return to_date
    if k == "time":
        return to_time_in(t.encoding)
    if k == "timestamp":
        return to_timestamp_in(t.encoding, caution)
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
            if type(v) is int and _inexact_in_double(v):
                raise ValueError(f"{v} is not exactly a {k}: as a key it would share a row "
                                 f"with the integers that round alike (declare it long)")
            return conv(v)
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

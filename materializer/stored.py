"""The stored form read back: to the Python API's values (`from_storage`), to JSON-ready
values (`to_json_value`), and compared as every reader sees it (`same_stored`). What the
stored form is: `materializer.values`.

Every converter is made once per column type; None means the stored value is served as
it is.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import math
from collections.abc import Callable
from typing import Any

import msgspec

from materializer.columns import ColumnType

Converter = Callable[[Any], Any]
_EPOCH_DATE = dt.date(1970, 1, 1)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_timedelta = dt.timedelta  # positional (days, seconds, microseconds): faster than keywords
_encode_json = msgspec.json.encode
_copysign = math.copysign


def same_stored(a: Any, b: Any) -> bool:
    """Whether two stored-form values (or rows of them) are the same to every reader:
    equal, and of the same types throughout with the same sign of zero. Python's `==`
    alone takes 1, True and 1.0 for one value (a json column may hold any of them), and
    0.0 for -0.0: a row changed only so would be left as it was, without an event."""
    return a is b or (a == b and _same_kinds(a, b))


def _same_kinds(a: Any, b: Any) -> bool:
    """For values that are `==`: the same types throughout, zeros of the same sign."""
    t = type(a)
    if t is not type(b):
        return False
    if t is float:
        return _copysign(1.0, a) == _copysign(1.0, b)
    if t is tuple or t is list:
        return all(x is y or _same_kinds(x, y) for x, y in zip(a, b, strict=True))
    if t is dict:
        return all(_same_kinds(x, b[k]) for k, x in a.items())
    return True


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
        return lambda v: _EPOCH + _timedelta(0, 0, v)
    if k == "decimal":
        return decimal.Decimal
    if k in ("array", "map"):
        return items_converter(t, from_storage)
    return None


def timestamp_json(v: int) -> str:
    """The JSON form of a stored timestamp: ISO 8601 in UTC with a Z (microseconds when
    not 0). msgspec writes the datetime's text in C: what `isoformat()` writes with a Z for
    +00:00, at 2.5x its speed (tests/store/test_types.py compares them)."""
    return _encode_json(_EPOCH + _timedelta(0, 0, v))[1:-1].decode()


def to_json_value(t: ColumnType) -> Converter | None:
    """A converter from the stored form to a JSON-ready value, or None if identical."""
    k = t.kind
    if k == "date":
        return lambda v: (_EPOCH_DATE + dt.timedelta(days=v)).isoformat()
    if k == "time":
        return lambda v: (dt.datetime.min + dt.timedelta(microseconds=v)).time().isoformat()
    if k == "timestamp":
        return timestamp_json
    if k == "bytes":
        return lambda v: base64.b64encode(v).decode("ascii")
    if k == "decimal":
        return plain_decimal
    if k in ("array", "map"):
        return items_converter(t, to_json_value)
    return None  # uuid is already a string


def plain_decimal(v: str) -> str:
    """A stored decimal's JSON text without an exponent: `Decimal` stores a small value
    at a large scale as `1E-20` and zero as `0E-20`; JSON gives every decimal of a column
    in plain digits at its scale (`0.00000000000000000001`), as most are already."""
    return v if "E" not in v else format(decimal.Decimal(v), "f")

"""Values of date, time and timestamp columns: decoded input to the stored form (days since
1970-01-01; microseconds since midnight; microseconds since the Unix epoch, UTC), for
`materializer.values.to_storage`. Integers count the column's `encoding` unit (ms by
default; s, us, ns). ISO 8601 text of the forms `_ISO_TIMESTAMP`, `_ISO_DATE` and `_ISO_TIME`
describe is read as Python reads it (a Z as +00:00, and RFC 3339's lower-case z as Z); other
text does not fit (ValueError), though Python 3.11's parser reads much of it as some value
(it skips one stray character, or a NUL, before an offset: `10:11:125-05:00` is
10:11:12-05:00; it reads a fraction after the hour or minute as one of the second: `10.5` is
10:00:00.5, which ISO 8601 reads as 10:30; it reads any character, a digit too, as the date's
separator, and a date's trailing digits past the day: `2024012345` is 2024-01-23).
What years 1-9999 cannot hold does not fit (ValueError)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any, TypeVar

from materializer.cautions import Caution
from materializer.stored import Converter, timestamp_json

_EPOCH_DATE = dt.date(1970, 1, 1)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ONE_MICROSECOND = dt.timedelta(microseconds=1)
_fromisoformat = dt.datetime.fromisoformat
# what datetime can represent: 0001-01-01 .. 9999-12-31 (so stored values read back)
_MIN_DAYS, _MAX_DAYS = -719_162, 2_932_896
_MIN_MICROS, _MAX_MICROS = -62_135_596_800_000_000, 253_402_300_799_999_999
_DAY_MICROS = 86_400_000_000
T = TypeVar("T")

_CLOCK = (r"[0-9]{2}(?::[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?"
          r"|[0-9]{2}(?:[0-9]{2}(?:[.,][0-9]+)?)?)?")
"""hh, hh:mm, hh:mm:ss, hh:mm:ss.f (digits after . or ,: any number, read to the
microsecond and the rest dropped), or the same without colons: a fraction only of the
second."""
_OFFSET = rf"[Zz]|[+-]{_CLOCK}"
_DATE = r"[0-9]{4}(?:-[0-9]{2}-[0-9]{2}|[0-9]{4}|-W[0-9]{2}(?:-[0-9])?|W[0-9]{2}[0-9]?)"
"""yyyy-mm-dd, yyyymmdd, and the ISO week dates yyyy-Www-d, yyyy-Www, yyyyWwwd, yyyyWww."""
_ISO_TIMESTAMP = re.compile(rf"{_DATE}(?:[Tt ]{_CLOCK}(?:{_OFFSET})?|[Zz])?").fullmatch
"""The timestamp text read: a date (a bare one, or one followed by Z, is midnight UTC), then
T, t or a space, a time and an offset (none: UTC). Python's parser reads more, as some value
(the module doc): refused."""
_ISO_DATE = re.compile(_DATE).fullmatch
"""The date text read (Python's parser also reads `2024012345` as 2024-01-23)."""
_ISO_TIME = re.compile(rf"[Tt]?{_CLOCK}(?:{_OFFSET})?").fullmatch
"""The time-of-day text read: a time, maybe after a T, and an offset."""


def _not_iso(v: str, what: str) -> ValueError:
    shown = repr(v) if len(v) <= 60 else repr(v[:57]) + "..."
    return ValueError(f"{shown} is not an ISO 8601 {what} (read: {_FORMS[what]})")


_FORMS = {"timestamp": "2024-05-03T12:30:00.123456+02:00, with T, t or a space before the "
                       "time, Z or an offset or none (UTC) after it; a date alone is midnight UTC",
          "date": "2024-05-03, 20240503, or a week date: 2024-W18-5",
          "time": "12:30:00.123456, or 12:30, with Z or an offset or none after it"}


def to_date(v: Any) -> Any:
    if type(v) is int:
        if not _MIN_DAYS <= v <= _MAX_DAYS:
            raise ValueError(f"{v} days is outside the dates years 1-9999 can hold")
        return v
    if isinstance(v, dt.datetime):
        raise TypeError("expected a date, got a timestamp")
    if isinstance(v, dt.date):
        return (v - _EPOCH_DATE).days
    if isinstance(v, str):
        if _ISO_DATE(v) is None:
            raise _not_iso(v, "date")
        return (dt.date.fromisoformat(v) - _EPOCH_DATE).days
    raise TypeError(f"expected a date, got {type(v).__name__}")


def to_time(v: Any) -> Any:
    if type(v) is int:  # milliseconds since midnight (ksqlDB, Avro time-millis)
        if not 0 <= v < 86_400_000:
            raise ValueError(f"{v} ms is not a time of day")
        return v * 1000
    if isinstance(v, str):
        if _ISO_TIME(v) is None:
            raise _not_iso(v, "time")
        try:
            v = dt.time.fromisoformat(v)
        except ValueError as e:
            v = _lower_z(v, e, dt.time.fromisoformat)
    elif not isinstance(v, dt.time):
        raise TypeError(f"expected a time, got {type(v).__name__}")
    us = ((v.hour * 60 + v.minute) * 60 + v.second) * 1_000_000 + v.microsecond
    offset = v.utcoffset()
    if offset:  # a time with an offset: the time of day in UTC, as timestamps are kept
        us = (us - offset // _ONE_MICROSECOND) % _DAY_MICROS
    return us


_UTC_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?Z"
                       ).fullmatch
"""The commonest timestamp text (RFC 3339 in UTC, as JavaScript's toISOString writes it),
`to_timestamp`'s shortcut: text `_ISO_TIMESTAMP` reads, which `fromisoformat` reads as
`_from_iso_text` does (a trailing Z) or refuses (then the full path answers), and whose
instant, in UTC already, is within the years 1-9999 (no range test)."""


def to_timestamp(v: Any) -> Any:
    t = type(v)
    if t is str and _UTC_TEXT(v) is not None:  # the shortcut: no other test needed
        try:
            return (_fromisoformat(v) - _EPOCH) // _ONE_MICROSECOND
        except ValueError:
            pass  # not a date (2024-02-30): the full path says so as it always did
    if t is int:  # milliseconds since the epoch (Kafka, ksqlDB, Debezium)
        if not _MIN_MICROS <= v * 1000 <= _MAX_MICROS:
            raise ValueError(f"{v} ms is outside the timestamps years 1-9999 can hold")
        return v * 1000
    if t is str or isinstance(v, str):  # ISO 8601 text, the commonest form in JSON
        if _ISO_TIMESTAMP(v) is None:
            raise _not_iso(v, "timestamp")
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
        try:
            return _fromisoformat(v)
        except ValueError as e:
            return _lower_z(v, e, _from_iso_text)
    if z == len(v) - 1:
        try:
            return _fromisoformat(v)
        except ValueError:
            pass
    return _fromisoformat(v.replace("Z", "+00:00"))


def _lower_z(v: str, error: ValueError, parse: Callable[[str], T]) -> T:
    """`parse` of ISO text Python refused (`error`) that has RFC 3339's lower-case `z`
    (UTC; its section 5.6: "may alternatively be lower case"; JSON Schema's `date-time`
    and `time` formats are RFC 3339's) written `Z`, which Python reads; `error` if the
    text has none or is still refused. Only on that error path: text Python reads pays
    nothing."""
    if "z" in v:
        try:
            return parse(v.replace("z", "Z"))
        except ValueError:
            pass
    raise error


_IN_MICROSECONDS = {"s": (1_000_000, 1), "us": (1, 1), "ns": (1, 1000)}
"""An integer's unit -> (multiply, then floor-divide) to microseconds (ns: floor, as
Debezium's NanoTimestamp)."""

_LOOKS_LIKE_SECONDS = range(10**9, 10**10)
"""Integers that, as milliseconds since the epoch, fall in 1970-01-12..1970-04-27 and, as
seconds, in 2001..2286: a producer counting seconds, most likely (a caution)."""


PLAIN_MS = range(_LOOKS_LIKE_SECONDS.stop, _MAX_MICROS // 1000 + 1)
"""Integers that `to_timestamp_in(None | "ms", caution)` turns into `v * 1000` and nothing
else (no caution, in range): 1970-04-27 to 9999 in milliseconds (the row shaper converts
them inline: `ingest.shaper.inline_conversion`)."""


def to_timestamp_in(unit: str | None, caution: Caution | None = None) -> Converter:
    """`to_timestamp`, with integers counted in `unit` (s, ms, us, ns) since the epoch.
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
            return to_timestamp(v)
        return conv
    if caution is None:
        return to_timestamp

    def conv_ms(v: Any) -> Any:
        if type(v) is int and v in _LOOKS_LIKE_SECONDS:
            caution(lambda: f"{v} read as milliseconds since the epoch is "
                    f"{timestamp_json(v * 1000)}; if the producer counts seconds (that would "
                    f"be {timestamp_json(v * 1_000_000)}), declare the column's "
                    "`encoding: s` and rebuild")
        return to_timestamp(v)
    return conv_ms


def to_time_in(unit: str | None) -> Converter:
    """`to_time`, with integers counted in `unit` (s, ms, us, ns) since midnight."""
    if unit not in _IN_MICROSECONDS:
        return to_time
    mul, div = _IN_MICROSECONDS[unit]

    def conv(v: Any) -> Any:
        if type(v) is int:
            us = v * mul // div
            if not 0 <= us < _DAY_MICROS:
                raise ValueError(f"{v} {unit} is not a time of day")
            return us
        return to_time(v)
    return conv

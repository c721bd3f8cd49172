"""Connect's and Debezium's temporal integers as dates, times of day and instants (the
conversions `connect_types.connect_fixup` picks by schema name), and the integers Debezium
writes that are none of them (a MySQL YEAR, an interval), which a date, time or timestamp
column refuses."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_DATE = dt.date(1970, 1, 1)
_MIDNIGHT = dt.datetime(1970, 1, 1)


def _instant(micros: int, v: int, unit: str) -> dt.datetime:
    try:
        return _EPOCH + dt.timedelta(microseconds=micros)
    except OverflowError as e:
        raise ValueError(f"{v} {unit} is outside the timestamps years 1-9999 can hold"
                         ) from e


def from_micros(v: Any) -> Any:
    return _instant(v, v, "µs") if type(v) is int else v


def from_millis(v: Any) -> Any:
    return _instant(v * 1000, v, "ms") if type(v) is int else v


def from_nanos(v: Any) -> Any:
    return _instant(v // 1000, v, "ns") if type(v) is int else v


def _finer(v: int, what: str) -> ValueError:
    return ValueError(f"{v} ns is finer than the microseconds a {what} keeps: as a key it "
                      "would share a row with the keys that round alike")


def from_nanos_exact(v: Any) -> Any:
    """`from_nanos` for a key: a value it would floor is refused (keys are never rounded)."""
    if type(v) is int and v % 1000:
        raise _finer(v, "timestamp")
    return from_nanos(v)


def from_days(v: Any) -> Any:
    if type(v) is not int:
        return v
    try:
        return _EPOCH_DATE + dt.timedelta(days=v)
    except OverflowError as e:
        raise ValueError(f"{v} days is outside the dates years 1-9999 can hold") from e


def _time_of(micros: int) -> dt.time:
    if not 0 <= micros < 86_400_000_000:
        raise ValueError(f"{micros} µs is not a time of day")
    return (_MIDNIGHT + dt.timedelta(microseconds=micros)).time()


def time_millis(v: Any) -> Any:
    return _time_of(v * 1000) if type(v) is int else v


def time_micros(v: Any) -> Any:
    return _time_of(v) if type(v) is int else v


def time_nanos(v: Any) -> Any:
    return _time_of(v // 1000) if type(v) is int else v


def time_nanos_exact(v: Any) -> Any:
    """`time_nanos` for a key: a value it would floor is refused."""
    if type(v) is int and v % 1000:
        raise _finer(v, "time")
    return time_nanos(v)


TEMPORAL_KINDS = frozenset(("date", "time", "timestamp"))
NOT_INSTANTS = {
    "io.debezium.time.Year": "a year number (MySQL YEAR)",
    "io.debezium.time.MicroDuration": "a duration in microseconds (an interval)",
    "io.debezium.time.NanoDuration": "a duration in nanoseconds (an interval)",
}
"""Debezium's integers that are no date, time of day or instant: a date, time or timestamp
column would read them as epoch days or milliseconds (YEAR 2024 as 1975-07-17) and store
another value than the source's, so they do not fit one (declare int / long)."""


def not_an_instant(what: str, kind: str) -> Callable[[Any], Any]:
    def refuse(v: Any) -> Any:
        raise ValueError(f"{v!r} is {what}, not a {kind}: declare the column int or long")
    return refuse

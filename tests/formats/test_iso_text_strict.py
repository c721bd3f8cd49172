"""ISO 8601 text in a timestamp, date or time column is read only in the forms ISO 8601 (and
RFC 3339) write; text Python 3.11's `fromisoformat` reads as some other value is refused
(`type_mismatch`), never stored: its C parser skips one stray character (or a NUL) before an
offset (`10:11:125-05:00` was 10:11:12-05:00), reads a fraction after the hour or minute as a
fraction of the second (`10.5` was 10:00:00.5; ISO 8601 reads 10:30), takes any character
after the date as its separator, and drops a date's digits past the day (`2024012345` was
2024-01-23). Through the real applier and store, values and keys."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from materializer.catalog.load import load_catalog_text
from materializer.ingest.relation import open_relation
from materializer.store import Store
from materializer.testing import FakeRecord

UTC = dt.UTC


class Table:
    """A table with timestamp, date and time columns, fed record by record."""

    def __init__(self, tmp: Path, key: str = "id: int") -> None:
        self.data = tmp / "data"
        text = (f"store:\n  path: {self.data}\ntables:\n  - name: t\n    topic: t\n"
                f"    columns: {{{key}, ts: timestamp, d: date, tm: time}}\n"
                "    primary_key: [id]\n    on_error: skip\n")
        self.rel = open_relation(load_catalog_text(text, str(tmp / "t.yaml")).tables[0],
                                 self.data, map_size=1 << 24)
        self.offset = 0

    def feed(self, key: Any, value: bytes) -> list[tuple[str, str]]:
        rec = FakeRecord(json.dumps(key).encode(), value, self.offset)
        self.offset += 1
        return [(r.reason, r.message) for r in self.rel.apply({0: [rec]})[0].rejected]

    def rows(self) -> list[dict[str, Any]]:
        with Store(self.data) as s:
            return list(s.table("t").scan())


MISREAD_TIMESTAMPS = [
    "2024-01-01T00:00:005-05:00",  # a digit skipped: was 00:00:00-05:00
    "2024-01-01T00:00:00a+05:00",  # a stray letter before the offset
    "2024-01-01T00:00:00 -05:00",  # a blank before the offset
    "2024-01-01T00:00:00.+05:00",  # an empty fraction
    "2024-01-01T00:00:00\u0000+05:00",  # a NUL before the offset
    "2024-01-01T00:00:00Z\u0000",  # a NUL after it
    "2024-01-01T10.5Z",  # 10.5 hours is 10:30 in ISO 8601: was 10:00:00.5
    "2024-01-01T10:11.5Z",  # 11.5 minutes: was 10:11:00.5
    "20240101520241011",  # a digit as the separator
    "2024-01-01x10:00:00Z",  # a letter as the separator
    "2024-03-05 10Z:11",  # Z then more: was an offset of +00:00:11
    "2024-03-05+01:00",  # a date with an offset: was 01:00 UTC
]


@pytest.mark.parametrize("text", MISREAD_TIMESTAMPS)
def test_timestamp_text_python_misreads_is_refused(tmp_path: Path, text: str) -> None:
    t = Table(tmp_path)
    ((reason, message),) = t.feed(1, json.dumps({"ts": text}).encode())
    assert reason == "type_mismatch"
    assert "is not an ISO 8601 timestamp" in message and "column 'ts'" in message
    assert t.rows() == []


@pytest.mark.parametrize("text", ["2024012345", "202402024-", "0303032024", "2024-01-01\u0000"])
def test_date_text_python_misreads_is_refused(tmp_path: Path, text: str) -> None:
    t = Table(tmp_path)
    ((reason, message),) = t.feed(1, json.dumps({"d": text}).encode())
    assert reason == "type_mismatch" and "is not an ISO 8601 date" in message
    assert t.rows() == []


@pytest.mark.parametrize("text", ["12.5", "10:11.5", "10aZ", "12:00:00 +01:00", "12:00\u0000",
                                  "12:00:00\u0000+05:00", "10:Z"])
def test_time_text_python_misreads_is_refused(tmp_path: Path, text: str) -> None:
    t = Table(tmp_path)
    ((reason, message),) = t.feed(1, json.dumps({"tm": text}).encode())
    assert reason == "type_mismatch" and "is not an ISO 8601 time" in message
    assert t.rows() == []


def test_a_timestamp_key_python_misreads_is_refused(tmp_path: Path) -> None:
    """As a key, the misread text would have shared a row with the key it was read as."""
    t = Table(tmp_path, key="id: timestamp")
    ((reason, message),) = t.feed("2024-01-01T00:00:001Z", b'{"d": "2024-01-01"}')
    assert reason == "key_mismatch" and "is not an ISO 8601 timestamp" in message
    assert t.feed("2024-01-01T00:00:00Z", b'{"d": "2024-01-01"}') == []
    assert [r["id"] for r in t.rows()] == [dt.datetime(2024, 1, 1, tzinfo=UTC)]


WRITTEN = [  # (timestamp text, the instant) as producers write them
    ("2024-01-01T00:00:00Z", dt.datetime(2024, 1, 1, tzinfo=UTC)),
    ("2024-01-01t00:00:00z", dt.datetime(2024, 1, 1, tzinfo=UTC)),
    ("2024-01-01 00:00:00", dt.datetime(2024, 1, 1, tzinfo=UTC)),
    ("2024-01-01T05:30:00+05:30", dt.datetime(2024, 1, 1, tzinfo=UTC)),
    ("2024-01-01T00:00:00.123456789-01:00", dt.datetime(2024, 1, 1, 1, 0, 0, 123456, UTC)),
    ("2024-01-01T00:00:00,5Z", dt.datetime(2024, 1, 1, 0, 0, 0, 500000, UTC)),
    ("20240101T000000Z", dt.datetime(2024, 1, 1, tzinfo=UTC)),
    ("2024-01-01T00:00", dt.datetime(2024, 1, 1, tzinfo=UTC)),
    ("2024-01-01T01+01", dt.datetime(2024, 1, 1, tzinfo=UTC)),
    ("2024-01-01T0100+0100", dt.datetime(2024, 1, 1, tzinfo=UTC)),
    ("2024-01-01", dt.datetime(2024, 1, 1, tzinfo=UTC)),
    ("2024-01-01Z", dt.datetime(2024, 1, 1, tzinfo=UTC)),
    ("2024-W01-1T00:00:00Z", dt.datetime(2024, 1, 1, tzinfo=UTC)),
    ("1969-12-31T23:59:59.5Z", dt.datetime(1969, 12, 31, 23, 59, 59, 500000, UTC)),
    ("0001-01-01T00:00:00Z", dt.datetime(1, 1, 1, tzinfo=UTC)),
]


def test_the_forms_producers_write_are_still_read(tmp_path: Path) -> None:
    t = Table(tmp_path)
    for i, (text, _) in enumerate(WRITTEN):
        assert t.feed(i, json.dumps({"ts": text}).encode()) == [], text
    assert [r["ts"] for r in t.rows()] == [at for _, at in WRITTEN]
    for i, (text, day) in enumerate([("2024-01-01", 1), ("20240101", 1), ("2024-W01-2", 2)]):
        assert t.feed(100 + i, json.dumps({"d": text}).encode()) == []
        assert t.rows()[-1]["d"] == dt.date(2024, 1, day)
    for i, (text, at) in enumerate([("12:30:00.5", dt.time(12, 30, 0, 500000)),
                                    ("12:30", dt.time(12, 30)), ("T1230Z", dt.time(12, 30)),
                                    ("13:30+01:00", dt.time(12, 30)), ("12", dt.time(12))]):
        assert t.feed(200 + i, json.dumps({"tm": text}).encode()) == [], text
        assert t.rows()[-1]["tm"] == at

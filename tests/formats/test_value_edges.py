"""Values a column holds only by a guess are refused (type_mismatch, key_mismatch), never
stored as something the record did not say: a JSON array for a map, a number beyond a
32-bit float, base64 text that is not the canonical form of its bytes, and keys the key
column would keep only rounded (two keys of the topic would share one row). A time with
an offset is kept in UTC, as timestamps are. Through the real applier and store."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from pathlib import Path
from typing import Any

import pytest

from materializer.catalog.load import load_catalog_text
from materializer.columns import parse_type
from materializer.errors import UsageError
from materializer.ingest.relation import open_relation
from materializer.store import Store
from materializer.testing import FakeRecord
from materializer.values import FLOAT32_MAX, key_storage, to_storage


class Table:
    """One table declared in YAML, applied to record by record, read back by `Store`."""

    def __init__(self, tmp: Path, columns: str, key: str = "[id]", extra: str = "") -> None:
        self.data = tmp / "data"
        text = (f"store:\n  path: {self.data}\ntables:\n  - name: t\n    topic: t\n"
                f"    columns: {columns}\n    primary_key: {key}\n    on_error: skip\n{extra}")
        self.spec = load_catalog_text(text, str(tmp / "t.yaml")).tables[0]
        self.rel = open_relation(self.spec, self.data, map_size=1 << 24)
        self.offset = 0

    def feed(self, key: Any, value: Any) -> list[tuple[str, str]]:
        """Apply one record; its rejections as (reason, message)."""
        rec = FakeRecord(json.dumps(key).encode(), json.dumps(value).encode(), self.offset)
        self.offset += 1
        out = self.rel.apply({0: [rec]})[0]
        return [(r.reason, r.message) for r in out.rejected]

    def rows(self) -> list[dict[str, Any]]:
        with Store(self.data) as s:
            return list(s.table("t").scan())


def test_a_json_array_is_no_map(tmp_path: Path) -> None:
    t = Table(tmp_path, "{id: int, m: 'map<string,int>'}")
    assert t.feed(1, {"m": ["ab", "cd"]})[0][0] == "type_mismatch"
    assert t.feed(2, {"m": [["k", 1], ["k", 2]]})[0][0] == "type_mismatch"
    assert t.feed(3, {"m": {"k": 1}}) == []
    assert [r["m"] for r in t.rows()] == [{"k": 1}]


@pytest.mark.parametrize("value", [1e39, -1e39, 3.5e38, 10**39])
def test_a_float_column_refuses_numbers_beyond_32_bits(tmp_path: Path, value: Any) -> None:
    t = Table(tmp_path, "{id: int, f: float, d: double}")
    ((reason, message),) = t.feed(1, {"f": value, "d": 1.0})
    assert reason == "type_mismatch" and "32-bit float" in message
    assert t.feed(2, {"f": FLOAT32_MAX, "d": value}) == []  # a double holds it
    assert [(r["f"], r["d"]) for r in t.rows()] == [(FLOAT32_MAX, float(value))]


def test_the_converters_agree_on_the_float_range() -> None:
    conv = to_storage(parse_type("float")[0])
    assert conv(-FLOAT32_MAX) == -FLOAT32_MAX
    with pytest.raises(ValueError, match="32-bit"):
        conv(FLOAT32_MAX * 1.0000001)


def test_base64_must_be_canonical(tmp_path: Path) -> None:
    t = Table(tmp_path, "{id: int, b: bytes}")
    assert t.feed(1, {"b": "aGVsbG8="}) == []
    ((reason, message),) = t.feed(2, {"b": "aGVsbG9="})  # same bytes, unused bits set
    assert reason == "type_mismatch" and "canonical base64" in message
    assert [r["b"] for r in t.rows()] == [b"hello"]


def test_base64_keys_that_decode_alike_are_not_one_row(tmp_path: Path) -> None:
    t = Table(tmp_path, "{k: bytes, v: string}", key="[k]")
    assert t.feed("aGVsbG8=", {"v": "first"}) == []
    ((reason, message),) = t.feed("aGVsbG9=", {"v": "second"})
    assert reason == "key_mismatch" and "canonical base64" in message
    assert t.rows() == [{"k": b"hello", "v": "first"}]


@pytest.mark.parametrize(("text", "utc"), [
    ("12:30:00+02:00", dt.time(10, 30)),
    ("12:30:00-05:00", dt.time(17, 30)),
    ("01:00:00+02:00", dt.time(23, 0)),  # the time of day in UTC, past midnight
    ("12:30:00Z", dt.time(12, 30)),
    ("12:30:00", dt.time(12, 30)),
])
def test_a_time_with_an_offset_is_kept_in_utc(tmp_path: Path, text: str, utc: dt.time) -> None:
    t = Table(tmp_path, "{id: int, at: time}")
    assert t.feed(1, {"at": text}) == []
    assert [r["at"] for r in t.rows()] == [utc]


@pytest.mark.parametrize(("column", "keys"), [
    ("decimal(10,2)", ["1.00", "1.005", "0.995"]),
    ("timestamp", ["2024-05-03T10:00:00Z", "2024-05-03T10:00:00.0000001Z",
                   "2024-05-03T10:00:00.0000009Z"]),
    ("double", [9007199254740992, 9007199254740993]),
])
def test_keys_the_column_would_round_are_refused(tmp_path: Path, column: str,
                                                 keys: list[Any]) -> None:
    t = Table(tmp_path, f"{{k: '{column}', v: string}}", key="[k]")
    first, *others = keys
    assert t.feed(first, {"v": "first"}) == []
    for k in others:
        ((reason, message),) = t.feed(k, {"v": f"from {k}"})
        assert reason == "key_mismatch", message
        assert "share a row" in message
    assert [r["v"] for r in t.rows()] == ["first"]


def test_key_values_the_column_holds_exactly_still_fit() -> None:
    dec = key_storage(parse_type("decimal(10,2)")[0])
    assert dec("1.50") == dec("1.5") == dec("1.500") == dec(decimal.Decimal("1.5")) == "1.50"
    assert key_storage(parse_type("double")[0])(2**53) == float(2**53)
    ts = key_storage(parse_type("timestamp")[0])
    assert ts("2024-05-03T10:00:00.1234560Z") == ts("2024-05-03T10:00:00.123456Z")


def test_a_lookup_by_a_key_the_column_would_round_is_refused(tmp_path: Path) -> None:
    t = Table(tmp_path, "{k: 'decimal(10,2)', v: string}", key="[k]")
    assert t.feed("1.00", {"v": "one"}) == []
    with Store(t.data) as s:
        table = s.table("t")
        assert table.get(decimal.Decimal("1")) == {"k": decimal.Decimal("1.00"), "v": "one"}
        with pytest.raises(UsageError, match="decimal places"):
            table.get(decimal.Decimal("1.004"))

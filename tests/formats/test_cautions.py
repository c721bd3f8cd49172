"""Cautions: values a column keeps, but not quite as the record carried them, applied with a
warning naming the table, the column and the first such value, once per column.

A decimal with more decimal places than its column's scale is stored rounded (half-even, as
SQL databases do): not what the topic holds; the declaration can keep the digits with a
larger scale. Values at or below the scale, and trailing zeros, say nothing. An integer in a
timestamp column read as milliseconds that is 1970-01-12..1970-04-27 so (2001..2286 as
seconds) is most likely seconds: the warning says to declare `encoding: s`."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from materializer import cautions
from materializer.formats import codecs
from materializer.ingest.jsonrow import row_decoder
from materializer.ingest.shaper import RowShaper, compile_shaper
from tests.formats.test_fuzz_decoders import spec

SPEC = spec({"id": "long", "price": "decimal(10,2)", "prices": "array<decimal(10,2)>",
             "at": "timestamp", "note": "string"}, ["id"], "long", "json")


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cautions, "_warned", set())


def rounded_warnings(caplog: pytest.LogCaptureFixture, what: str = "decimal places"
                     ) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and what in r.getMessage()]


def shapers() -> list[Any]:
    fused = row_decoder(SPEC, SPEC.column_names, codecs.value_decoder(SPEC),
                        compile_shaper(SPEC, SPEC.column_names))
    return [lambda f, k: tuple(RowShaper(SPEC, SPEC.column_names).shape(f, k)),
            compile_shaper(SPEC, SPEC.column_names),
            lambda f, k: fused(json.dumps(f).encode(), k)]


@pytest.mark.parametrize("which", [0, 1, 2], ids=["reference", "generated", "json-fused"])
def test_a_rounded_decimal_is_warned_once_per_column(
        which: int, caplog: pytest.LogCaptureFixture) -> None:
    shape = shapers()[which]
    caplog.set_level(logging.WARNING)
    assert shape({"price": "1.20", "prices": ["3.5"]}, (1,))[1:3] == ("1.20", ["3.50"])
    assert shape({"price": "1.2000"}, (1,))[1] == "1.20"  # zeros: nothing lost
    assert rounded_warnings(caplog) == []

    assert shape({"price": "1.2345"}, (2,))[1] == "1.23"
    assert shape({"price": "9.999"}, (3,))[1] == "10.00"
    [said] = rounded_warnings(caplog)
    assert "public.f" in said and "'price'" in said and "'1.2345'" in said and "1.23" in said

    assert shape({"prices": ["0.125"]}, (4,))[2] == ["0.12"]
    assert len(rounded_warnings(caplog)) == 2
    assert "'prices'" in rounded_warnings(caplog)[1]


@pytest.mark.parametrize("which", [0, 1, 2], ids=["reference", "generated", "json-fused"])
def test_a_timestamp_in_seconds_read_as_milliseconds_is_warned_once(
        which: int, caplog: pytest.LogCaptureFixture) -> None:
    shape = shapers()[which]
    caplog.set_level(logging.WARNING)
    assert shape({"at": 1_733_400_000_000}, (1,))[3] == 1_733_400_000_000_000  # ms: quiet
    assert shape({"at": "2024-12-05T12:00:00Z"}, (1,))[3] == 1_733_400_000_000_000
    assert shape({"at": 999_999_999}, (1,))[3] == 999_999_999_000  # 1970-01-12: quiet
    assert rounded_warnings(caplog, "encoding: s") == []

    assert shape({"at": 1_733_400_000}, (2,))[3] == 1_733_400_000_000  # applied, as ms
    assert shape({"at": 1_733_400_001}, (3,))[3] == 1_733_400_001_000
    [said] = rounded_warnings(caplog, "encoding: s")
    assert "public.f" in said and "'at'" in said and "1970-01-21T01:30:00Z" in said
    assert "2024-12-05T12:00:00Z" in said

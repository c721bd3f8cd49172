"""A decimal with more decimal places than its column's scale is stored rounded (half-even,
as SQL databases do) and the worker says so: a warning naming the table, the column and
the first value rounded, once per column (not what the topic holds; the declaration can
keep the digits with a larger scale). Values at or below the scale, and trailing zeros,
say nothing."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from materializer import decimals
from materializer.formats import codecs
from materializer.ingest.jsonrow import row_decoder
from materializer.ingest.shaper import RowShaper, compile_shaper
from tests.formats.test_fuzz_decoders import spec

SPEC = spec({"id": "long", "price": "decimal(10,2)", "prices": "array<decimal(10,2)>",
             "note": "string"}, ["id"], "long", "json")


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decimals, "_warned_rounded", set())


def rounded_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "decimal places" in r.getMessage()]


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

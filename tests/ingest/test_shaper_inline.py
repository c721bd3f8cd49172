"""The generated row shaper's inline conversions (`shaper.inline_conversion`: an integer
timestamp in milliseconds) give exactly what the column's converter gives, and the
generated shaper with them what the reference shaper gives (values, errors, cautions)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from materializer import cautions
from materializer.columns import parse_type
from materializer.errors import RecordError
from materializer.ingest.shaper import RowShaper, compile_shaper, inline_conversion
from materializer.temporal_values import PLAIN_MS
from materializer.values import to_storage
from tests.formats.test_fuzz_decoders import spec

EDGES = [PLAIN_MS.start - 1, PLAIN_MS.start, PLAIN_MS.stop - 1, PLAIN_MS.stop, 10**9, 0, -1,
         -62_135_596_800_000, -62_135_596_800_001, 2**63, True, False, 1.5, "2024-01-01",
         dt.datetime(2024, 1, 1, tzinfo=dt.UTC)]
VALUES = st.one_of(st.sampled_from(EDGES), st.integers(),
                   st.integers(PLAIN_MS.start - 10, PLAIN_MS.stop + 10),
                   st.integers(-(10**16), 10**16))


def outcome(f: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", repr(f(*args))
    except (TypeError, ValueError, ArithmeticError) as e:
        return type(e).__name__, str(e)
    except RecordError as e:
        return "RecordError", (str(e), e.reason)


@pytest.mark.parametrize("column", ["timestamp", "timestamp ms", "timestamp s",
                                    "timestamp us", "string", "decimal(10,2)"])
def test_the_inline_expression_is_the_converter(column: str) -> None:
    text, _, unit = column.partition(" ")
    t = dataclasses.replace(parse_type(text)[0], encoding=unit or None)
    conv = to_storage(t, lambda said: None)
    namespace = {"conv": conv}
    expr = inline_conversion(t, "v", "conv")
    inline = eval(f"lambda v: {expr}", namespace)  # noqa: S307 - our own expression

    @example(v=PLAIN_MS.start)
    @given(VALUES)
    def run(v: Any) -> None:
        assert outcome(inline, v) == outcome(conv, v)
    run()


@pytest.mark.parametrize("decl", ["timestamp", "timestamp not null"])
def test_generated_shaper_equals_reference_on_timestamps(decl: str) -> None:
    s = spec({"id": "long", "at": decl}, ["id"], "long", "json")
    reference = RowShaper(s, s.column_names)
    fast = compile_shaper(s, s.column_names)

    @given(st.none() | VALUES)
    def run(v: Any) -> None:
        want = outcome(lambda: tuple(reference.shape({"at": v}, (1,))))
        assert outcome(lambda: fast({"at": v}, (1,))) == want
    run()


def test_seconds_like_milliseconds_are_still_cautioned(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(cautions, "_warned", set())
    s = spec({"id": "long", "at": "timestamp"}, ["id"], "long", "json")
    fast = compile_shaper(s, s.column_names)
    caplog.set_level(logging.WARNING)
    assert fast({"at": PLAIN_MS.start}, (1,)) == (1, PLAIN_MS.start * 1000)
    assert not [r for r in caplog.records if "seconds" in r.getMessage()]
    assert fast({"at": 1_700_000_000}, (1,)) == (1, 1_700_000_000_000)
    assert [r for r in caplog.records if "seconds" in r.getMessage()]

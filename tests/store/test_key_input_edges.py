"""Keys and limits the Python API refuses as usage errors, never as another exception or
as an answer: strings that are not valid Unicode (lone surrogates), limits below 1, and
decimal text Python's Decimal would read but that is not plain decimal text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from materializer import Store
from materializer.decimals import decimal_converter, exact_decimal
from materializer.errors import UsageError
from materializer.specs import StreamSpec, TableSpec
from tests.support.api import SpecWriter, columns

STR = TableSpec(name="public.t_str", topic="t_str",
                columns=columns({"k": "string", "v": "string"}, ["k"]),
                key_columns=("k",), key_format="json", value_format="json")
COMP = TableSpec(name="public.t_comp", topic="t_comp",
                 columns=columns({"a": "string", "b": "int", "v": "string"}, ["a", "b"]),
                 key_columns=("a", "b"), key_format="json", value_format="json")
DEC = TableSpec(name="public.t_dec", topic="t_dec",
                columns=columns({"k": "decimal(10,2)", "v": "string"}, ["k"]),
                key_columns=("k",), key_format="json", value_format="json")
EVENTS = StreamSpec(name="public.s_str", topic="s_str",
                    columns=columns({"k": "string", "v": "string"}),
                    key_columns=("k",), key_format="json", value_format="json")

SURROGATES = ["\ud800", "\udcff", "a\udcffb"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    data = Path(tmp_path_factory.mktemp("key-edges")) / "data"
    SpecWriter(str(data), STR).write([("a", {"v": "A"}), ("b", {"v": "B"})])
    SpecWriter(str(data), COMP).write([({"a": "x", "b": 1}, {"v": "x1"}),
                                       ({"a": "x", "b": 2}, {"v": "x2"})])
    SpecWriter(str(data), DEC).write([("1.00", {"v": "one"}), ("10.00", {"v": "ten"})])
    SpecWriter(str(data), EVENTS).write([("a", {"v": str(i)}) for i in range(3)])
    with Store.open(data) as s:
        yield s


# --------------------------------------------------------------- not valid Unicode


@pytest.mark.parametrize("key", SURROGATES)
def test_a_surrogate_key_is_a_usage_error_naming_it(store: Store, key: str) -> None:
    t = store.table("t_str")
    for call in (lambda: t.get(key), lambda: t.get((key,)), lambda: t.get_many(["a", key]),
                 lambda: store.stream("s_str").events(key)):
        with pytest.raises(UsageError, match=r"key .* does not fit \(k\): .*not valid Unicode"):
            call()


@pytest.mark.parametrize("key", SURROGATES)
def test_a_surrogate_in_a_composite_key_is_a_usage_error(store: Store, key: str) -> None:
    t = store.table("t_comp")
    with pytest.raises(UsageError, match=r"does not fit \(a, b\): .*not valid Unicode"):
        t.get((key, 1))
    with pytest.raises(UsageError, match="not valid Unicode"):
        t.get_many([("x", 1), (key, 1)])


@pytest.mark.parametrize("prefix", ["\ud800", ("\udcff",), ("\udcff", 1)])
def test_a_surrogate_prefix_is_a_usage_error(store: Store, prefix: Any) -> None:
    with pytest.raises(UsageError, match="not valid Unicode"):
        store.table("t_comp").scan(prefix=prefix)
    with pytest.raises(UsageError, match="not valid Unicode"):
        store.stream("s_str").scan(prefix=prefix if isinstance(prefix, str) else prefix[:1])


def test_valid_keys_still_answer(store: Store) -> None:
    t = store.table("t_str")
    assert t.get("a") == {"k": "a", "v": "A"}
    assert t.get(("b",)) == {"k": "b", "v": "B"}
    assert t.get("\U0001f600") is None  # a valid non-BMP character: absent, not an error
    assert t.get_many(["a", "zz"]) == [{"k": "a", "v": "A"}, None]
    assert store.table("t_comp").get(("x", 2)) == {"a": "x", "b": 2, "v": "x2"}
    assert [e and e["v"] for e in store.stream("s_str").events("a")] == ["2", "1", "0"]


def test_a_stream_prefix_that_does_not_fit_is_a_usage_error(store: Store) -> None:
    """As TableView.scan: a prefix the key converters refuse is a UsageError."""
    with pytest.raises(UsageError, match="does not fit the key"):
        store.stream("s_str").scan(prefix=(1.5,))


# ---------------------------------------------------------------- limits below 1


@pytest.mark.parametrize("limit", [0, -1, -5])
def test_a_limit_below_one_is_a_usage_error(store: Store, limit: int) -> None:
    with pytest.raises(UsageError, match="below 1"):
        store.table("t_str").scan(limit=limit)
    with pytest.raises(UsageError, match="below 1"):
        store.table("t_comp").scan(prefix=("x",), limit=limit)
    with pytest.raises(UsageError, match="below 1"):
        store.stream("s_str").scan(limit=limit)
    with pytest.raises(UsageError, match="below 1"):
        store.stream("s_str").events("a", limit=limit)
    with pytest.raises(UsageError, match="below 1"):
        store.table("t_str").scan_raw((), limit)


def test_limits_of_one_and_more_answer(store: Store) -> None:
    assert [r["k"] for r in store.table("t_str").scan(limit=1)] == ["a"]
    assert len(store.table("t_str").scan(limit=5)) == 2
    assert len(store.table("t_str").scan()) == 2
    assert len(store.stream("s_str").scan(limit=1)) == 1
    assert len(store.stream("s_str").events("a", limit=1)) == 1


# ------------------------------------------------------- decimal text, plain only

NOT_PLAIN = [" 1", "1.00 ", "\n1", "\uff11", "\u0661", "1_0", "1_000.00", "1\u00a0"]


@pytest.mark.parametrize("text", NOT_PLAIN)
def test_decimal_text_that_is_not_plain_is_refused(store: Store, text: str) -> None:
    for conv in (decimal_converter(10, 2), exact_decimal(10, 2),
                 decimal_converter(10, 2, unrounded=True)):
        with pytest.raises(ValueError, match="is not a decimal"):
            conv(text)
    with pytest.raises(UsageError, match="does not fit"):
        store.table("t_dec").get(text)


@pytest.mark.parametrize(("text", "want"), [
    ("1", "1.00"), ("1.5", "1.50"), ("+1.5", "1.50"), ("-.5", "-0.50"), ("1.", "1.00"),
    ("1e1", "10.00"), ("1E+1", "10.00"), ("-0", "0.00"), ("007.50", "7.50")])
def test_plain_decimal_text_still_converts(text: str, want: str) -> None:
    assert decimal_converter(10, 2)(text) == want
    assert exact_decimal(10, 2)(text) == want


@pytest.mark.parametrize("text", ["NaN", "-Infinity", "inf", "sNaN"])
def test_decimal_text_not_finite_does_not_fit(text: str) -> None:
    with pytest.raises(ValueError, match=r"does not fit decimal\(10,2\)"):
        exact_decimal(10, 2)(text)


def test_decimal_keys_by_plain_text(store: Store) -> None:
    t = store.table("t_dec")
    one = {"k": "1.00", "v": "one"}
    assert t.get("1", json_form=True) == t.get("1.00", json_form=True) == one
    assert t.get("1e0", json_form=True) == one
    assert t.get("10", json_form=True) == {"k": "10.00", "v": "ten"}

"""`POST .../lookup` keys that are JSON numbers with a fraction or exponent, against a real
`serve` process: never rounded to another key.

orjson (and `json`) read a JSON number as the double nearest to it, so a lookup key
`1.5000000000000001` of a decimal(10,2) column was looked up as 1.50, `1e-999` as 0.00 or
0.0, and a double key `0.10000000000000001` as 0.1: each answered another key's row, where
the same text in the path (`GET .../rows/1.5000000000000001`) is a 400 (README "HTTP API":
"a key is never rounded to another's"). The number's text is kept now and read by the key
column's type: a decimal column takes it exactly (its scale check refuses the extra
digits), a double column takes it only when it is that double's value or shortest text."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from materializer.specs import TableSpec
from tests.support.api import SpecWriter, api_process, columns


def _table(name: str, decl: dict[str, str]) -> TableSpec:
    return TableSpec(name=f"public.{name}", topic=name, columns=columns(decl, ["k"]),
                     key_columns=("k",), key_format="json", value_format="json")


DEC = _table("n_dec", {"k": "decimal(10,2)", "v": "string"})
WIDE = _table("n_wide", {"k": "decimal(38,20)", "v": "string"})
DBL = _table("n_dbl", {"k": "double", "v": "string"})
PAIR = TableSpec(name="public.n_pair", topic="n_pair",
                 columns=columns({"c": "int", "k": "decimal(10,2)", "v": "string"}, ["c", "k"]),
                 key_columns=("c", "k"), key_format="json", value_format="json")


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("number-keys") / "data"
    SpecWriter(str(data), DEC).write([({"k": k}, {"v": k}) for k in ("1.50", "0.00", "0.01")])
    SpecWriter(str(data), WIDE).write([({"k": "0.12345678901234567890"}, {"v": "wide"})])
    SpecWriter(str(data), DBL).write([({"k": k}, {"v": repr(k)}) for k in (0.1, 0.0, 1.5)])
    SpecWriter(str(data), PAIR).write([({"c": 1, "k": "1.50"}, {"v": "pair"})])
    with api_process(data) as base:
        yield base


def _lookup(url: str, table: str, body: str) -> httpx.Response:
    return httpx.post(f"{url}/tables/public.{table}/lookup", content=body.encode(), timeout=10,
                      headers={"content-type": "application/json"})


@pytest.mark.parametrize(("table", "body", "said"), [
    ("n_dec", '{"keys": [[1.5000000000000001]]}', "more decimal places"),
    ("n_dec", '{"keys": [1.5000000000000001]}', "more decimal places"),
    ("n_dec", '{"keys": [[0.010000000000000001]]}', "more decimal places"),
    ("n_dec", '{"keys": [[1e-999]]}', "more decimal places"),
    ("n_pair", '{"keys": [[1, 1.5000000000000001]]}', "more decimal places"),
    ("n_dbl", '{"keys": [[0.10000000000000001]]}', "not exactly a double"),
    ("n_dbl", '{"keys": [[1.5000000000000001]]}', "not exactly a double"),
    ("n_dbl", '{"keys": [[1e-999]]}', "not exactly a double"),
])
def test_a_number_key_is_never_rounded_to_another_key(url: str, table: str, body: str,
                                                       said: str) -> None:
    r = _lookup(url, table, body)
    assert r.status_code == 400, r.text  # was 200 with the row of 1.50 / 0.01 / 0.00 / 0.1
    assert said in r.json()["detail"], r.text


@pytest.mark.parametrize(("table", "text"), [("n_dec", "1.5000000000000001"),
                                             ("n_dbl", "0.10000000000000001"),
                                             ("n_dbl", "1e-999")])
def test_the_path_refuses_the_same_text(url: str, table: str, text: str) -> None:
    r = httpx.get(f"{url}/tables/public.{table}/rows/{text}", timeout=10)
    assert r.status_code == 400, r.text


@pytest.mark.parametrize(("table", "body", "want"), [
    ("n_dec", '{"keys": [[1.5], [1.50], [1.500], [15e-1], ["1.50"], [0], [-0.00]]}',
     ["1.50", "1.50", "1.50", "1.50", "1.50", "0.00", "0.00"]),
    ("n_dbl", '{"keys": [[0.1], [0.10], [1e-1], [1.50], [0], [-0.0], [1.5]]}',
     [0.1, 0.1, 0.1, 1.5, 0.0, None, 1.5]),
    ("n_pair", '{"keys": [[1, 1.5], [1, 1.500], [1, "1.5"]]}', ["1.50", "1.50", "1.50"]),
])
def test_numbers_that_are_the_key_still_answer_its_row(url: str, table: str, body: str,
                                                       want: list[Any]) -> None:
    r = _lookup(url, table, body)
    assert r.status_code == 200, r.text
    assert [None if row is None else row["k"] for row in r.json()["rows"]] == want


def test_a_wide_decimal_key_is_read_exactly_from_its_json_number(url: str) -> None:
    """20 decimal places: a double holds 17 digits, so the number was refused as "came as
    a double"; its text is the key exactly, and it answers its row."""
    r = _lookup(url, "n_wide", '{"keys": [[0.12345678901234567890], [0.1234567890123456789]]}')
    assert r.status_code == 200, r.text
    assert [row and row["v"] for row in r.json()["rows"]] == ["wide", "wide"]
    r = _lookup(url, "n_wide", '{"keys": [[0.123456789012345678901]]}')
    assert r.status_code == 400 and "more decimal places" in r.json()["detail"], r.text


def test_integers_past_64_bits_beside_a_float_stay_out_of_range(url: str) -> None:
    r = _lookup(url, "n_pair", '{"keys": [[18446744073709551616, 1.5]]}')
    assert r.status_code == 400 and "out of range for int" in r.json()["detail"], r.text

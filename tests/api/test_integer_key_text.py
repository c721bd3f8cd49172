"""Integer key text with leading zeros or more digits than 64 bits, against a real `serve`
process and the command line's rule (`materializer.keytext`, shared by both).

`01` was the key 1 but `00000000000000000000001` (21 characters) was "expected an
integer", and so was `99999999999999999999999`, a decimal integer out of range: the rule
took at most 20 characters. Leading zeros are read at any length now, and an integer with
more significant digits than any 64-bit one is said to be out of range."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from materializer.columns import parse_type
from materializer.errors import UsageError
from materializer.keytext import key_from_text
from tests.support.api import api_process, build_data_dir


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data: Path = tmp_path_factory.mktemp("int-text") / "data"
    build_data_dir(data, n_users=10)
    with api_process(data) as base:
        yield base


@pytest.mark.parametrize("text", ["7", "07", "0" * 30 + "7"])
def test_leading_zeros_are_the_same_key_at_any_length(url: str, text: str) -> None:
    r = httpx.get(f"{url}/tables/public.users/rows/{text}", timeout=10)
    assert r.status_code == 200 and r.json()["id"] == 7, r.text
    r = httpx.get(f"{url}/tables/shop.orders/rows/{text[:-1]}1/{text[:-1]}1000", timeout=10)
    assert r.status_code == 200 and r.json()["note"] == "1/1000", r.text


@pytest.mark.parametrize(("table", "text"), [
    ("public.users", "99999999999999999999999"),
    ("public.users", "-" + "9" * 40),
    pytest.param("public.users", "1" * 5000, id="5000-digits"),
    ("shop.orders", "1/123456789012345678901"),
])
def test_an_integer_past_64_bits_is_out_of_range(url: str, table: str, text: str) -> None:
    r = httpx.get(f"{url}/tables/{table}/rows/{text}", timeout=10)
    assert r.status_code == 400, r.text
    assert "out of range" in r.json()["detail"], r.text


@pytest.mark.parametrize("kind", ["int", "long"])
def test_the_rule_is_the_command_lines_too(kind: str) -> None:
    t = parse_type(kind)[0]
    assert key_from_text(["k"], [t], ["-" + "0" * 25 + "5"]) == (-5,)
    with pytest.raises(UsageError, match="out of range for a 64-bit integer"):
        key_from_text(["k"], [t], ["9" * 21])
    with pytest.raises(UsageError, match="expected an integer"):
        key_from_text(["k"], [t], ["1_000"])

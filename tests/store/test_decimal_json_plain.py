"""Decimals in JSON (HTTP, CLI, `json_form=True`, JSON change events) are plain digits at
the column's scale: a small value at a large scale was served as `1E-20`, zero as `0E-20`,
beside `1.10000000000000000000` (probe h82), because `Decimal` writes them so."""

from __future__ import annotations

import decimal
from pathlib import Path

from materializer.columns import parse_type
from materializer.store import Store
from materializer.stored import to_json_value
from tests.formats.test_value_edges import Table


def test_the_json_form_has_no_exponent() -> None:
    conv = to_json_value(parse_type("decimal(38,20)")[0])
    assert conv is not None
    assert conv("1E-20") == "0.00000000000000000001"
    assert conv("0E-20") == "0.00000000000000000000"
    assert conv("-1.0000000000000E-7") == "-0.00000010000000000000"
    assert conv("1.10000000000000000000") == "1.10000000000000000000"
    items = to_json_value(parse_type("array<decimal(38,20)>")[0])
    assert items is not None and items(["0E-20", None]) == ["0.00000000000000000000", None]


def test_rows_and_keys_in_json(tmp_path: Path) -> None:
    t = Table(tmp_path, "{k: 'decimal(38,20)', d: 'decimal(38,20)'}", key="[k]")
    assert t.feed("0.00000000000000000001", {"d": 0}) == []
    with Store(t.data) as s:
        (row,) = s.table("t").scan(json_form=True)
        assert row == {"k": "0.00000000000000000001", "d": "0.00000000000000000000"}
        assert s.table("t").get(decimal.Decimal("1E-20"), json_form=True) == row

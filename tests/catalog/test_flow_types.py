"""A type with a comma in a YAML flow mapping: `columns: {balance: decimal(10,2)}`.

In a flow mapping a comma ends the entry, so YAML reads `balance: decimal(10` and a
second key `2)`. The loader says so, once, at the type, and says to quote it."""

from __future__ import annotations

import pytest

from materializer.catalog import load_catalog_text
from tests.support.catalog import errors_of, marked


def table(columns: str) -> str:
    return ("tables:\n  - name: t\n    topic: t\n"
            f"    columns: {columns}\n    primary_key: [id]\n")


@pytest.mark.parametrize(("columns", "name", "full"), [
    ("{id: int, balance: @@decimal(10,2)}", "balance", "decimal(10,2)"),
    ("{id: int, balance: @@decimal(10, 2), name: string}", "balance", "decimal(10,2)"),
    ("{id: int, m: @@map<string,int>}", "m", "map<string,int>"),
    ("{id: int, m: @@map<string,decimal(10,2)>}", "m", "map<string,decimal(10,2)>"),
    ("{id: int, a: @@decimal(10,2), b: decimal(12,2)}", "a", "decimal(10,2)"),
])
def test_a_type_split_at_its_comma_says_to_quote_it(columns: str, name: str,
                                                     full: str) -> None:
    text, line, column = marked(table(columns))
    diags = errors_of(text)
    first = diags[0]
    assert (first.line, first.column) == (line, column), diags
    assert f'quote the type: `{name}: "{full}"`' in first.message, first.message
    assert "flow mapping" in first.message
    assert not any("ends too early" in d.message or "duplicate key" in d.message
                   or "must be a single value" in d.message for d in diags), diags


def test_two_split_types_are_two_errors() -> None:
    diags = errors_of(table("{id: int, a: decimal(10,2), b: decimal(12,2)}"))
    assert [d.message.split(":")[0] for d in diags] == ["column `a`", "column `b`"], diags


def test_a_split_type_in_a_column_mapping() -> None:
    text, line, column = marked(table(
        "\n      id: int\n      b: {type: @@decimal(10,2), encoding: base64}"))
    (d,) = errors_of(text)
    assert (d.line, d.column) == (line, column)
    assert 'quote the type: `type: "decimal(10,2)"`' in d.message


def test_quoted_and_block_types_are_fine() -> None:
    cat = load_catalog_text(table('{id: int, balance: "decimal(10,2)"}'), "t.yaml")
    assert str(cat.tables[0].column("balance").type) == "decimal(10,2)"
    cat = load_catalog_text(table("\n      id: int\n      balance: decimal(10,2)"), "t.yaml")
    assert str(cat.tables[0].column("balance").type) == "decimal(10,2)"


def test_an_unbalanced_type_without_a_fragment_keeps_its_own_error() -> None:
    diags = errors_of(table("{id: int, balance: decimal(10}"))
    assert any("ends too early" in d.message for d in diags), diags

"""A schema whose fields differ from an unfilled value column only in case, several of
them, is refused (case_mismatch) rather than read with the column NULL."""

from __future__ import annotations

import pytest

from materializer.errors import RecordError
from materializer.formats.field_match import unmatched_schema


def test_two_fields_differing_only_in_case_refuse_the_schema() -> None:
    err = unmatched_schema("Avro schema 7", ["id", "Name", "NAME"], ["id", "name"], ["name"])
    assert isinstance(err, RecordError)
    assert err.reason == "case_mismatch"
    assert "'name'" in str(err) and "Name, NAME" in str(err)


def test_one_field_differing_in_case_still_fills_the_column() -> None:
    assert unmatched_schema("Avro schema 7", ["id", "NAME"], ["id", "name"], ["name"]) is None


def test_exact_name_beside_case_variants_is_read() -> None:
    assert unmatched_schema("s", ["id", "name", "NAME"], ["id", "name"], ["name"]) is None


def test_an_exact_alias_settles_the_case_ambiguity() -> None:
    aliases = [("Name", "alias", "name")]
    assert unmatched_schema("s", ["id", "Name", "NAME"], ["id", "name"], ["name"],
                            aliases=aliases) is None


@pytest.mark.parametrize("fields", [["id", "Name", "NAME", "other"], ["Name", "nAmE"]])
def test_ambiguity_is_refused_even_when_other_columns_match(fields: list[str]) -> None:
    err = unmatched_schema("s", fields, ["id", "name", "other"], ["name", "other"])
    assert isinstance(err, RecordError) and err.reason in ("case_mismatch",
                                                           "no_declared_columns")

"""A declaration that changed against existing local state: what decides the rows held
(columns, key, formats, merge rules, input encodings) is refused with the change named
and `rebuild` as the fix; what does not (a nullable column added, NOT NULL dropped, error
policies) is taken. Real relation files, no broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from materializer.catalog.load import load_catalog_text
from materializer.errors import SchemaChangedError
from materializer.ingest.relation import open_relation
from materializer.specs import RelationSpec, storage_identity

BASE = "{id: int, name: string, n: int}"


def spec(tmp: Path, columns: str = BASE, extra: str = "") -> RelationSpec:
    text = ("tables:\n  - name: t\n    topic: t\n"
            f"    columns: {columns}\n    primary_key: [id]\n{extra}")
    return load_catalog_text(text, str(tmp / "t.yaml")).relations[0]


@pytest.mark.parametrize(("before", "after", "said"), [
    ((BASE, ""), (BASE, "    on_existing: ignore\n"), "on_existing changed"),
    ((BASE, "    on_existing: ignore\n"), (BASE, ""), "on_existing changed"),
    ((BASE, "    partial_update: [n]\n"), (BASE, ""), "partial_update changed"),
    ((BASE, ""), (BASE, "    on_existing: versioned\n    version_column: n\n"),
     "on_existing changed"),
    (("{id: int, ts: {type: timestamp, encoding: us}}", ""), ("{id: int, ts: timestamp}", ""),
     "column 'ts' changed its encoding from us to the default"),
    (("{id: int, name: string}", ""), ("{id: int, name: 'string not null'}", ""),
     "column 'name' was made NOT NULL"),
])
def test_a_change_that_decides_the_rows_is_refused(tmp_path: Path, before: tuple[str, str],
                                                   after: tuple[str, str], said: str) -> None:
    data = tmp_path / "data"
    open_relation(spec(tmp_path, *before), data)
    with pytest.raises(SchemaChangedError, match=said) as e:
        open_relation(spec(tmp_path, *after), data)
    assert "materializer rebuild CONFIG public.t" in str(e.value)


@pytest.mark.parametrize(("before", "after"), [
    (("{id: int, name: 'string not null'}", ""), ("{id: int, name: string}", "")),
    ((BASE, ""), ("{id: int, name: string, n: int, extra: string}", "")),
    ((BASE, ""), (BASE, "    on_error: skip\n")),
])
def test_a_change_that_keeps_the_rows_is_taken(tmp_path: Path, before: tuple[str, str],
                                               after: tuple[str, str]) -> None:
    data = tmp_path / "data"
    open_relation(spec(tmp_path, *before), data)
    open_relation(spec(tmp_path, *after), data)


def test_state_recorded_before_the_rules_were_takes_them_and_records_them(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    old = spec(tmp_path)
    rel = open_relation(old, data)
    legacy = {k: v for k, v in storage_identity(old).items() if k != "rules"}
    rel.writer.write_meta(legacy, list(old.column_names))
    ignoring = spec(tmp_path, BASE, "    on_existing: ignore\n")
    open_relation(ignoring, data)  # nothing recorded to compare with: taken, recorded
    with pytest.raises(SchemaChangedError, match="on_existing changed"):
        open_relation(old, data)

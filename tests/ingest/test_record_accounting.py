"""Every record a table reads is counted once: `applied`, `unchanged`, `dropped:<reason>` or
rejected (`skipped:` / `dead_letter:`). A table whose rules read the stored row (`changes:`,
`ignore`, `versioned`, `partial_update`) counted the records that left it as it was (a
version below the stored one, `ignore`'s later rows, the stored values again, a delete of
an absent key) nowhere, while the same topic without `changes:` counted them `applied`:
`materializer status` and /metrics fell short of the records read."""

from __future__ import annotations

from pathlib import Path

import pytest

from materializer.store import Store
from tests.ingest.test_apply_rules import CHANGES, table

RULES = {
    "overwrite": CHANGES,
    "ignore": f"on_existing='ignore', {CHANGES}",
    "versioned": f"on_existing='versioned', version_column='age', on_error='skip', {CHANGES}",
    "partial": f"partial_update='name', on_error='skip', {CHANGES}",
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_every_record_is_counted_once_whatever_the_rule(tmp_path: Path, rule: str) -> None:
    h = table(tmp_path, RULES[rule])
    records = [(1, {"name": "a", "age": 5}), (1, {"name": "a", "age": 5}),  # the same again
               (1, {"name": "b", "age": 4}),  # an older version; ignore keeps the first
               (7, None),  # a delete of an absent key
               (2, {"name": "c", "age": 1}), (2, {"name": "c", "age": 1}),
               (3, {"age": None, "name": "x"})]  # versioned: null_version (skipped)
    out = h.feed(*records)
    assert out.applied + out.unchanged + len(out.rejected) == len(records)
    assert out.unchanged >= 3
    with Store(tmp_path) as store:
        (counters,) = store.relation(h.spec.name).counters().values()
    assert sum(counters.values()) == len(records), counters
    assert counters["unchanged"] == out.unchanged


def test_a_blind_table_counts_the_same_records_applied(tmp_path: Path) -> None:
    h = table(tmp_path)
    assert h.rel.applier.blind  # type: ignore[union-attr]
    out = h.feed((1, {"name": "a"}), (1, {"name": "a"}), (7, None))
    assert (out.applied, out.unchanged) == (3, 0)

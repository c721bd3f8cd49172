"""A `partial_update` record's field for a column that is not listed is not read, for a new
key either (README "Applying a record to a table"; SPEC: the source updates only the listed
columns): the new row holds null there, and a later record of that column alone changes
nothing (found by the model-based probe of table semantics, h80)."""

from __future__ import annotations

from pathlib import Path

from tests.ingest.test_rule_edges import ops, partial


def test_an_unlisted_column_a_new_key_carries_is_null(tmp_path: Path) -> None:
    h = partial(tmp_path)  # listed: name, email; age is not listed
    out = h.feed((3, {"name": "x", "age": 5}))
    assert ops(out) == [("c", None, (3, "x", None, None))]
    assert h.get(3) == {"id": 3, "name": "x", "age": None, "email": None}
    out = h.feed((3, {"age": 6}))
    assert out.changes == [] and out.rejected == [] and out.applied == 0
    assert h.get(3) == {"id": 3, "name": "x", "age": None, "email": None}

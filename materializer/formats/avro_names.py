"""Other names of Avro record fields for matching them to columns: the change-event
envelope's documented fields (`doc_alias`: a field whose `doc` is exactly "column X" and
whose name is X's Avro form, stands for column X) and the Avro forms of columns that are no
valid Avro name (`avro_forms`: `a.b` -> `a_b`, `1st` -> `_1st`, as the envelope and
Debezium's `field.name.adjustment.mode=avro` name them). Used by `field_match`; a free-text
doc never changes matching.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Sequence
from typing import Any

from materializer.changes.avro_envelope import avro_name

Alias = tuple[str, str, str]  # as field_match.Alias: (field, kind, other name)


DOC = "doc"
"""The Alias kind of a field whose `doc` is the change-event envelope's "column X"
(`doc_alias`)."""


def doc_alias(field: str, doc: Any) -> str | None:
    """The column X an Avro record field named `field` stands for when its `doc` is
    exactly "column X" and `field` is X's Avro form followed by none or more `_` (as
    `changes.avro_envelope` names a column that is no valid Avro name, or whose form an
    earlier column took: `a.b` -> `a_b`, then `a_b` -> `a_b_`), and differs from X; else
    None (any other doc is free text and never changes matching)."""
    if not isinstance(doc, str) or not doc.startswith("column "):
        return None
    col = doc[len("column "):]
    if not col or col == field:
        return None
    form = avro_name(col)
    rest = field[len(form):]
    return col if field.startswith(form) and rest == "_" * len(rest) else None


def doc_index(aliases: Iterable[Alias], fields: Sequence[str]) -> dict[str, str]:
    """Column -> the field whose envelope doc names it (`doc_alias`), for a column one
    field's doc names and no other field (without such a doc) is named as: else the
    fields are matched by their own names."""
    docs: dict[str, list[str]] = {}
    documented: set[str] = set()
    present = set(fields)
    for field, kind, col in aliases:
        if kind == DOC and field in present:
            documented.add(field)
            seen = docs.setdefault(col, [])
            if field not in seen:
                seen.append(field)
    return {col: fs[0] for col, fs in docs.items()
            if len(fs) == 1 and (col not in present or col in documented)}


def avro_forms(fields: Container[str], columns: Iterable[str],
               matched: Container[str]) -> dict[str, list[str]]:
    """Avro form -> the `columns` not `matched` that are no valid Avro name and whose
    form (`avro_name`, as the change-event envelope and Debezium name their fields: `a.b`
    -> `a_b`, `1st` -> `_1st`) is one of `fields`."""
    out: dict[str, list[str]] = {}
    for col in columns:
        if col not in matched and (form := avro_name(col)) != col and form in fields:
            out.setdefault(form, []).append(col)
    return out

"""Matching a record's fields to the declared columns, and the checks that no data is
lost on the way: a value sharing no field with the columns is rejected
(no_declared_columns), a field differing from a missing column only in case or
surrounding whitespace is rejected (case_mismatch: in a schemaless object, or in a Connect
payload whose schema gives no field of it for the column), and a column a schema or object
leaves NULL while it carries other fields is logged once (a typo in a column name is
visible, though the row is stored).

Names match exactly, or else case-insensitively when exactly one field matches (ksqlDB
upper-cases names); several case-insensitive candidates leave the column unmatched and
are named in the rejection. A schema's fields may have other names (`Alias`: an Avro
field's `aliases`, a Protobuf field's `json_name`): a column no field matches by its own
name takes the one field one of whose other names is the column's, exactly; a field
matched by its own name always wins. When several fields name a column that way, no
field is guessed: every record of the schema is refused (`alias_ambiguity`, reason
ambiguous_alias). In an Avro record (`avro`), a column that is no valid Avro name (`a.b`,
`1st`) that no field matches otherwise takes the field named as the change-event envelope
and Debezium's `field.name.adjustment.mode=avro` name it (`avro_name`: `a_b`, `_1st`), when
no other column takes that field and no other such column has that name: else the column
is left unmatched (`avro_form_hints` names why in the warning; several columns of one
Avro form: `alias_ambiguity`). Before all of these, an Avro field whose `doc` is the
change-event envelope's "column X" (`doc_alias`: named as X's Avro form, possibly with `_`s
appended for a clash: `a.b` declared before `a_b` gives `a_b` doc "column a.b" and `a_b_`
doc "column a_b") is column X's when X is declared: no other column takes it by its name
(`doc_hints` says why in the warning). Only that exact doc counts; free text never does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Iterable, Sequence
from typing import Any

from materializer.errors import RecordError
from materializer.formats.avro_names import DOC, avro_forms, doc_index

log = logging.getLogger("materializer.formats")


Alias = tuple[str, str, str]
"""(field, what names it otherwise: "alias" for one of an Avro field's `aliases`,
"json_name" for a Protobuf field's, that other name)."""


def match_fields(names: Iterable[str], want: Iterable[str],
                 aliases: Iterable[Alias] = (), avro: bool = False) -> dict[str, str]:
    """Declared column -> source field: first the field whose envelope `doc` names the
    column (`doc_alias`: the field then matches no other column by its own name), else
    exact names, else an unambiguous case-insensitive match, else the one field one of
    whose `aliases` is the column's name exactly (several: the column is left
    unmatched; `alias_ambiguity` says why), else, for an Avro record (`avro`), the field
    named as the column's Avro form (`avro_forms`)."""
    names = list(names)
    want = list(want)
    aliases = list(aliases)
    out = {}
    by_doc = doc_index(aliases, names)
    for col in want:
        if (src := by_doc.get(col)) is not None:
            out[col] = src
    if out:  # a field the envelope names for a declared column is that column's only
        claimed = set(out.values())
        names = [n for n in names if n not in claimed]
    exact = set(names)
    folded: dict[str, list[str]] = {}
    for n in names:
        folded.setdefault(n.casefold(), []).append(n)
    named = _alias_index(aliases, exact)
    for col in want:
        if col in out:
            continue
        if col in exact:
            out[col] = col
        else:
            cands = folded.get(col.casefold(), [])
            if len(cands) == 1:
                out[col] = cands[0]
            elif (by := named.get(col)) is not None and len(by) == 1:
                out[col] = by[0]
    if avro:
        taken = set(out.values())
        for form, cols in avro_forms(exact, want, out).items():
            if len(cols) == 1 and form not in taken:
                out[cols[0]] = form
    return out


def avro_form_hints(fields: Iterable[str], columns: Sequence[str],
                    declared: Sequence[str], aliases: Iterable[Alias] = ()) -> str:
    """Why `match_fields(avro=True)` leaves each of `columns` whose Avro form is a field
    of the record unmatched (that field fills another declared column), joined by "; ",
    or ""."""
    names = list(fields)
    matched = match_fields(names, declared, aliases, avro=True)
    by_field: dict[str, list[str]] = {}
    for col, src in matched.items():
        by_field.setdefault(src, []).append(col)
    out = [f"field {form!r} is the Avro name of column {col!r} but fills column(s) "
           f"{', '.join(map(repr, by_field[form]))}"
           for form, cols in avro_forms(set(names), columns, matched).items()
           for col in cols if form in by_field]
    if not out:
        return ""
    return "; ".join(out) + (": no field is guessed (declare only one of the columns, or "
                             "declare the column as the field's name)")


def _alias_index(aliases: Iterable[Alias], fields: Container[str]) -> dict[str, list[str]]:
    """Other name -> the distinct `fields` it names (in their order), from `aliases`."""
    out: dict[str, list[str]] = {}
    for field, kind, name in aliases:
        if kind != DOC and isinstance(name, str) and field in fields:
            seen = out.setdefault(name, [])
            if field not in seen:
                seen.append(field)
    return out


def alias_ambiguity(names: Iterable[str], columns: Iterable[str],
                    aliases: Iterable[Alias], avro: bool = False) -> str:
    """Why `match_fields` leaves a column without a field where several fields name it
    by an alias (no field matching it by its own name): "column 'email' is named by the
    alias of field 'mail' and the alias of field 'e_mail', which is ambiguous" for each
    such column (joined by "; "), or ""; for an Avro record (`avro`), also where several
    unmatched columns have one field as their Avro form (`a.b` and `a-b`, field `a_b`)."""
    aliases = list(aliases)
    names = list(names)
    if avro:
        columns = list(columns)
        matched = match_fields(names, columns, aliases)
        forms = [f"columns {', '.join(map(repr, cols))} all have the Avro name of field "
                 f"{form!r}, which is ambiguous"
                 for form, cols in avro_forms(set(names), columns, matched).items()
                 if len(cols) > 1 and form not in matched.values()]
        if forms:
            why = alias_ambiguity(names, columns, aliases)
            return "; ".join(([why] if why else []) + forms)
    if not aliases:
        return ""
    named = _alias_index(aliases, set(names))
    if all(len(fs) < 2 for fs in named.values()):
        return ""
    columns = list(columns)
    matched = match_fields(names, columns)  # by their own names
    kinds = {(f, n): k for f, k, n in aliases}
    out = []
    for col in columns:
        if col not in matched and len(fs := named.get(col, [])) > 1:
            by = " and ".join(f"the {kinds[(f, col)]} of field {f!r}" for f in fs)
            out.append(f"column {col!r} is named by {by}, which is ambiguous")
    return "; ".join(out)


def ambiguous_alias(what: str, why: str) -> RecordError:
    """RecordError(ambiguous_alias) for every record of schema `what`, several of whose
    fields name a column by an alias (`alias_ambiguity`'s `why`): no field is guessed."""
    return RecordError(f"{what}: {why}: no field is guessed for the column (give the alias "
                       "to one field only, or declare the column as one field's name)",
                       "ambiguous_alias")


def object_checker(what: str, declared: Sequence[str], value_columns: Sequence[str],
                   table: str = ""
                   ) -> Callable[[dict[str, Any], bool, frozenset[str]], None]:
    """The check of a JSON object about to become a row (a JSON value, a Debezium JSON
    `after`, either as it is or as the payload of a Connect wrapper): `check(obj,
    schemaless)` raises RecordError(no_declared_columns) for a non-empty object sharing no
    field with the `declared` columns (when there are value columns): stored, its data
    would all be lost and its row be NULLs. Also RecordError(case_mismatch) when it lacks
    a value column and has a field differing from it only in case or by surrounding
    whitespace (ksqlDB writes `NAME`; `"name "`): that field's data would be lost and the
    column NULL. A `schemaless` object's names must be the columns' exactly; a wrapped
    payload (not `schemaless`) comes with its Connect schema's fields already matched to
    the columns (`connect_types.apply_plan`), so a column it still lacks is one its schema
    gives no field of the payload for (a payload that disagrees with its schema, a schema
    with several fields differing only in case). (A key column's value comes from the
    key: a field for it in the value is not lost.) An object that lacks a value column and
    has fields that are no column (a column named unlike the producer's field: `emial`
    for `email`) is stored, and the first such object for each column is logged as a
    warning naming `table`, the column and the object's other fields (as `warn_unfilled`
    does for schemas; `check(obj, schemaless, unfilled)` leaves out the `unfilled`
    columns, which a payload's schema has no field for: `warn_unfilled` logged them for
    that schema).

    Cost: a dict key test (the first value column) and a subset test (no set is made)
    when every value column is present; only an object lacking one and having other
    fields looks at their names."""
    names = frozenset(declared)
    probe = value_columns[0] if value_columns else ""  # usually present
    columns = frozenset(value_columns)
    folded = {c.casefold(): c for c in value_columns}
    unwarned = set(value_columns)  # columns no object was yet logged as leaving NULL

    def check(obj: dict[str, Any], schemaless: bool,
              unfilled: frozenset[str] = frozenset()) -> None:
        if not columns or not obj:
            return
        if probe not in obj and names.isdisjoint(obj):
            raise shares_no_column(what, obj, declared, folded=not schemaless)
        if obj.keys() >= columns:  # every value column there (no set made: the common case)
            return
        missing = columns - obj.keys()
        if len(obj) + len(missing) == len(columns):  # no other field
            return
        others = obj.keys() - names
        for name in others:
            col = folded.get(name.strip().casefold())
            if col in missing:
                raise RecordError(f"field {name!r} is not a declared column and differs only "
                                  f"in case or surrounding whitespace from column {col!r}, "
                                  f"which the object lacks: {_EXACT if schemaless else _PLANNED}",
                                  "case_mismatch")
        if others and table and not unwarned.isdisjoint(missing):
            newly = sorted((missing - unfilled) & unwarned)
            if not newly:
                return
            unwarned.difference_update(newly)
            shown = sorted(others)
            log.warning("%s: %s has no field for column(s) %s, NULL in its row (a "
                        "partial_update column keeps its stored value), and has field(s) "
                        "that are no column: %s; check the column names (logged once per "
                        "column)", table, what, ", ".join(newly),
                        ", ".join(shown[:12]) + (", ..." if len(shown) > 12 else ""))
    return check


_EXACT = ("names are case-sensitive and exact without a schema (declare the column as the "
          "producer writes it)")
_PLANNED = ("its Connect schema gives no field of the payload for that column (a payload field "
            "fills a column under its schema's name for it: the column's own, else the one "
            "schema field differing from it only in case), so the data would be lost; make "
            "the schema and the payload agree, or declare the column as the producer writes it")


def case_ambiguity(fields: Iterable[str], columns: Iterable[str]) -> str:
    """Why `match_fields` leaves a column without a field where several `fields` differ
    from it only in case: "column 'name' matches the fields Name, NAME only
    case-insensitively, which is ambiguous" for each such column (joined by "; "), or ""."""
    names = list(fields)
    exact = set(names)
    folded: dict[str, list[str]] = {}
    for n in names:
        folded.setdefault(n.casefold(), []).append(n)
    out = []
    for col in columns:
        if col not in exact and len(cands := folded.get(col.casefold(), [])) > 1:
            out.append(f"column {col!r} matches the fields {', '.join(cands)} only "
                       "case-insensitively, which is ambiguous")
    return "; ".join(out)


def shares_no_column(what: str, fields: Iterable[str], declared: Sequence[str],
                     folded: bool = True) -> RecordError:
    """RecordError(no_declared_columns) for a value (or every value of a schema) whose
    `fields` match none of the `declared` columns: stored, its data would all be lost and
    its row be NULLs. With `folded` (names matched case-insensitively when unambiguous:
    a schema's), a column that several fields match only that way is named as the cause."""
    names = list(fields)
    why = case_ambiguity(names, declared) if folded else ""
    if why:
        return RecordError(f"{what} matches no declared column: {why} (declare the column "
                           "with one field's exact name)", "no_declared_columns")
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    return RecordError(f"{what} shares no field with the declared columns "
                       f"({', '.join(declared)}): it has {shown}; check the column names "
                       "and value_format", "no_declared_columns")


def unmatched_schema(what: str, fields: Iterable[str], declared: Sequence[str],
                     value_columns: Sequence[str], table: str = "",
                     aliases: Iterable[Alias] = (), avro: bool = False
                     ) -> RecordError | None:
    """For a schema's record (Avro, Protobuf, a Debezium `after`): the rejection of its
    values when it has fields, the relation has value columns, and no field matches a
    declared column (by `match_fields`, following `aliases`, key columns included), when
    several fields name one value column by their aliases (ambiguous_alias), or when
    several differ from an unmatched value column only in case (case_mismatch); None
    when it may be read. Then the value columns no field fills (NULL in every row of that
    schema) are logged as a warning naming `table` and the schema (`what`): once per
    schema, as callers prepare each schema once; a field whose other name (`aliases`: an
    Avro alias, a Protobuf json_name) is such a column but for case is named there as the
    likely cause (aliases are followed only when they are the column's name exactly). An
    Avro record (`avro`) fills a column that is no valid Avro name from the field of its
    Avro form (`match_fields`); one left unfilled because another column takes that field
    is named in the warning, and several such columns of one form are ambiguous_alias."""
    names = list(fields)
    if not names or not value_columns:
        return None
    aliases = list(aliases)
    why = alias_ambiguity(names, value_columns, aliases, avro)
    if why:
        return ambiguous_alias(what, why)
    matched = match_fields(names, declared, aliases, avro)
    if not matched:
        return shares_no_column(what, names, declared)
    missing = [c for c in value_columns if c not in matched]
    why = case_ambiguity(names, missing)
    if why:
        return RecordError(f"{what}: {why}, so its data would be lost (declare the column "
                           "with one field's exact name)", "case_mismatch")
    hints = [alias_hints(aliases, missing), doc_hints(aliases, missing, matched)]
    if avro:
        hints.append(avro_form_hints(names, missing, declared, aliases))
    warn_unfilled(table, what, names, missing, "; ".join(h for h in hints if h))
    return None


def doc_hints(aliases: Iterable[Alias], columns: Sequence[str],
              matched: dict[str, str]) -> str:
    """Why each of `columns` named as a field is not filled by it: the field's envelope
    doc (`doc_alias`) gives it to another declared column, which `matched` took it for;
    joined by "; ", or ""."""
    out = [f"field {field!r} is column {col!r}'s (its doc is \"column {col}\"), not "
           f"column {field!r}'s" for field, kind, col in aliases
           if kind == DOC and field in columns and matched.get(col) == field]
    if not out:
        return ""
    return "; ".join(out) + (": declare the column the doc names (this materializer's "
                             "debezium-avro change events name each field's column so)")


def alias_hints(aliases: Iterable[Alias], columns: Sequence[str]) -> str:
    """"field `x` has alias `COL`" (or json_name) for each of `aliases` naming one of
    `columns` but for case, joined by "; ", with why the column stays NULL; "" when none
    does. (An alias naming one of them exactly would have filled it.)"""
    folded = {c.casefold(): c for c in columns}
    out = [f"field {field!r} has {kind} {name!r}" for field, kind, name in aliases
           if kind != DOC and isinstance(name, str) and name not in columns
           and name.casefold() in folded]
    if not out:
        return ""
    return "; ".join(out) + (": aliases and json names fill a column only when they are its "
                             "name exactly (declare the column as the field's name or alias)")


_WARNED: set[tuple[str, str, tuple[str, ...]]] = set()
_MAX_WARNED = 1024


def warn_unfilled(table: str, what: str, fields: Sequence[str], missing: Sequence[str],
                  hint: str = "") -> None:
    """Log, once per process for a table, schema and set of fields, the value columns a
    schema's records leave NULL (`missing`): a column named unlike the producer's field
    is then visible, though every row of that schema is still stored. `hint` (the fields
    whose aliases name such a column, `alias_hints`) is appended."""
    if not missing:
        return
    seen = (table, what, tuple(fields))
    if seen in _WARNED or len(_WARNED) >= _MAX_WARNED:
        return
    _WARNED.add(seen)
    shown = ", ".join(fields[:12]) + (", ..." if len(fields) > 12 else "")
    log.warning("%s: %s has no field for column(s) %s, NULL in its rows (its fields: %s; "
                "a partial_update column keeps its stored value)%s",
                table, what, ", ".join(missing), shown, f"; {hint}" if hint else "")

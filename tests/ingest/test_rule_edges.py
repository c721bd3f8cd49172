"""Edges of a table's merge rules (`partial_update`, `versioned`), with their change events.

A partial update changes only the listed columns its record carries: a listed column the
record lacks (a JSON field that is absent, a field the Avro writer schema lacks) keeps the
stored value, one it holds as null sets null. Before, an absent field was taken for a null
and wiped the stored value: a row served with NULLs where the topic holds data.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from connectors.registry import FileRegistry
from materializer.changes.envelope import JsonEnvelope
from materializer.formats.wire import avro_encoder
from materializer.ingest.relation import open_relation
from materializer.specs import ChangesSpec, TableSpec
from materializer.testing import FakeRecord
from tests.ingest.test_apply_rules import CHANGES, Harness, spec_of, table


def ops(out: Any) -> list[tuple[str, Any, Any]]:
    return [(c.op, c.before, c.after) for c in out.changes]


def partial(tmp_path: Path, cols: str = "name STRING, age BIGINT, email STRING",
            listed: str = "name,email", extra: str = "") -> Harness:
    return table(tmp_path, f"partial_update='{listed}', on_error='skip', {CHANGES}{extra}",
                 cols=cols)


# ----------------------------------------------------------------------------- absent vs null


def test_a_listed_column_the_record_lacks_keeps_its_stored_value(tmp_path: Path) -> None:
    h = partial(tmp_path)
    h.feed((1, {"name": "Ann", "email": "a@x"}))
    out = h.feed((1, {"name": "Anna"}))
    assert ops(out) == [("u", (1, "Ann", None, "a@x"), (1, "Anna", None, "a@x"))]
    assert h.get(1) == {"id": 1, "name": "Anna", "age": None, "email": "a@x"}
    out = h.feed((1, {"email": "b@x"}))  # the other writer of this topic: its own column
    assert ops(out) == [("u", (1, "Anna", None, "a@x"), (1, "Anna", None, "b@x"))]
    assert h.get(1) == {"id": 1, "name": "Anna", "age": None, "email": "b@x"}


def test_a_listed_column_the_record_holds_as_null_is_set_null(tmp_path: Path) -> None:
    h = partial(tmp_path)
    h.feed((1, {"name": "Ann", "email": "a@x"}))
    out = h.feed((1, {"email": None}))
    assert ops(out) == [("u", (1, "Ann", None, "a@x"), (1, "Ann", None, None))]
    assert h.get(1) == {"id": 1, "name": "Ann", "age": None, "email": None}


def test_a_record_with_only_key_columns_changes_nothing_stored(tmp_path: Path) -> None:
    h = partial(tmp_path)
    h.feed((1, {"name": "Ann", "email": "a@x"}))
    out = h.feed((1, {}), (1, {"id": 1}), (1, {"id": 7, "unknown": "field"}))
    assert out.changes == [] and out.rejected == [] and out.applied == 0
    assert h.get(1) == {"id": 1, "name": "Ann", "age": None, "email": "a@x"}
    assert h.get(7) is None


def test_a_record_with_only_key_columns_creates_a_new_key(tmp_path: Path) -> None:
    h = partial(tmp_path)
    out = h.feed((2, {"id": 2}))
    assert ops(out) == [("c", None, (2, None, None, None))]
    assert h.get(2) == {"id": 2, "name": None, "age": None, "email": None}


def test_absent_columns_within_one_batch_keep_the_pending_row(tmp_path: Path) -> None:
    h = partial(tmp_path)
    out = h.feed((1, {"name": "a", "email": "e"}), (1, {"name": "b"}), (1, None),
                 (1, {"name": "c"}))
    assert ops(out) == [("c", None, (1, "a", None, "e")),
                        ("u", (1, "a", None, "e"), (1, "b", None, "e")),
                        ("d", (1, "b", None, "e"), None),
                        ("c", None, (1, "c", None, None))]  # after a delete: a new key
    assert h.get(1) == {"id": 1, "name": "c", "age": None, "email": None}


def test_changed_lists_only_the_columns_a_partial_record_changed(tmp_path: Path) -> None:
    h = partial(tmp_path)
    h.feed((1, {"name": "Ann", "email": "a@x"}))
    out = h.feed((1, {"name": "Anna"}))
    spec = h.spec
    assert isinstance(spec, TableSpec) and spec.changes is not None
    spec = replace(spec, changes=ChangesSpec(spec.changes.topic, columns=True))
    (msg,) = JsonEnvelope(spec, spec.column_names).encode(out.changes, 0)
    ev = json.loads(msg[2])
    assert ev["changed"] == ["name"]
    assert ev["before"]["email"] == ev["after"]["email"] == "a@x"


# ----------------------------------------------------------------------------- NOT NULL


def test_not_null_listed_column_absent_is_kept_for_a_stored_row(tmp_path: Path) -> None:
    h = partial(tmp_path, cols="name STRING NOT NULL, email STRING")
    out = h.feed((1, {"email": "e"}))  # a new key: nothing to keep, NOT NULL is missing
    assert [(r.offset, r.reason) for r in out.rejected] == [(0, "missing_column")]
    assert h.get(1) is None
    h.feed((1, {"name": "n"}))
    out = h.feed((1, {"email": "e2"}))
    assert out.rejected == [] and ops(out) == [("u", (1, "n", None), (1, "n", "e2"))]
    assert h.get(1) == {"id": 1, "name": "n", "email": "e2"}
    out = h.feed((1, {"name": None}))  # explicitly null: still a bad record
    assert [r.reason for r in out.rejected] == ["missing_column"]
    assert h.get(1) == {"id": 1, "name": "n", "email": "e2"}


def test_not_null_under_fail_stops_at_the_record(tmp_path: Path) -> None:
    h = table(tmp_path, f"partial_update='name,email', {CHANGES}",
              cols="name STRING NOT NULL, email STRING")
    out = h.feed((1, {"name": "n"}), (2, {"email": "e"}), (3, {"name": "m"}))
    assert out.fatal is not None and (out.fatal.offset, out.fatal.reason) == (
        1, "missing_column")
    assert out.next_offset == 1 and h.get(1) is not None and h.get(3) is None


# ----------------------------------------------------------------------------- versioned


def versioned_partial(tmp_path: Path) -> Harness:
    return partial(tmp_path, cols="name STRING, email STRING, v BIGINT", listed="name,email,v",
                   extra=", on_existing='versioned', version_column='v'")


def test_versioned_partial_keeps_absent_columns_and_checks_the_version(tmp_path: Path) -> None:
    h = versioned_partial(tmp_path)
    h.feed((1, {"name": "a", "email": "e", "v": 5}))
    out = h.feed((1, {"name": "old", "v": 3}))
    assert out.changes == [] and h.get(1) == {"id": 1, "name": "a", "email": "e", "v": 5}
    out = h.feed((1, {"name": "b", "v": 6}))
    assert ops(out) == [("u", (1, "a", "e", 5), (1, "b", "e", 6))]


def test_versioned_partial_without_the_version_is_a_bad_record(tmp_path: Path) -> None:
    h = versioned_partial(tmp_path)
    h.feed((1, {"name": "a", "v": 5}))
    out = h.feed((1, {"name": "no version"}), (2, {"name": "new, no version"}))
    assert [(r.offset, r.reason) for r in out.rejected] == [(1, "null_version"),
                                                            (2, "null_version")]
    assert h.get(1) == {"id": 1, "name": "a", "email": None, "v": 5} and h.get(2) is None


def test_versioned_a_tombstone_deletes_whatever_the_version(tmp_path: Path) -> None:
    """Documented: a tombstone carries no version; after it the next row is accepted."""
    h = table(tmp_path, f"on_existing='versioned', version_column='v', {CHANGES}",
              cols="name STRING, v BIGINT")
    h.feed((1, {"name": "v9", "v": 9}))
    out = h.feed((1, None), (1, {"name": "v1", "v": 1}), (1, {"name": "v0", "v": 0}))
    assert ops(out) == [("d", (1, "v9", 9), None), ("c", None, (1, "v1", 1))]
    assert h.get(1) == {"id": 1, "name": "v1", "v": 1}


@pytest.mark.parametrize(("vtype", "low", "high"), [
    ("TIMESTAMP", "2024-01-01T01:00:00+02:00", "2024-01-01T00:00:00Z"),
    ("DATE", "2023-12-31", 19724),
    ("TIME", "09:59:59.999999", "10:00:00"),
    ("DOUBLE", -0.5, 1),
])
def test_versions_compare_as_values_not_as_text(tmp_path: Path, vtype: str, low: Any,
                                                high: Any) -> None:
    h = table(tmp_path, f"on_existing='versioned', version_column='v', {CHANGES}",
              cols=f"name STRING, v {vtype}")
    h.feed((1, {"name": "high", "v": high}))
    out = h.feed((1, {"name": "low", "v": low}))
    assert out.changes == [] and out.rejected == []
    assert h.get(1)["name"] == "high"  # type: ignore[index]


# ----------------------------------------------------------------------------- Debezium, Avro


def test_debezium_after_lacking_a_listed_column_keeps_it(tmp_path: Path) -> None:
    h = Harness(tmp_path, spec_of(
        "CREATE TABLE t (id INT PRIMARY KEY, name STRING, email STRING) "
        "WITH (kafka_topic='t', key_format='JSON', value_format='debezium-json', "
        "partial_update='name,email', changes_topic='c')"))
    h.feed((1, {"op": "c", "after": {"id": 1, "name": "a", "email": "e"}}))
    out = h.feed((1, {"op": "u", "after": {"id": 1, "name": "b"}}))
    assert ops(out) == [("u", (1, "a", "e"), (1, "b", "e"))]
    out = h.feed((1, {"op": "d", "before": {"id": 1}, "after": None}))
    assert ops(out) == [("d", (1, "b", "e"), None)] and h.get(1) is None


def test_avro_writer_schema_lacking_a_listed_column_keeps_it(tmp_path: Path) -> None:
    reg = FileRegistry(tmp_path / "registry")
    spec = spec_of("CREATE TABLE t (id INT PRIMARY KEY, name STRING, email STRING) "
                   "WITH (kafka_topic='t', key_format='JSON', value_format='AVRO', "
                   "partial_update='name,email', changes_topic='c')")
    rel = open_relation(spec, tmp_path / "data", registry=reg, map_size=1 << 24)
    opt = ["null", "string"]
    both = avro_encoder(reg, "t-value", {"type": "record", "name": "v", "fields": [
        {"name": "name", "type": opt, "default": None},
        {"name": "email", "type": opt, "default": None}]})
    names = avro_encoder(reg, "t-value", {"type": "record", "name": "v", "fields": [
        {"name": "name", "type": opt, "default": None}]})
    rel.next_offsets[0] = 0
    out = rel.apply({0: [FakeRecord(b"1", both({"name": "a", "email": "e"}), 0),
                         FakeRecord(b"1", names({"name": "b"}), 1),
                         FakeRecord(b"1", both({"name": "c", "email": None}), 2)]})[0]
    assert ops(out) == [("c", None, (1, "a", "e")), ("u", (1, "a", "e"), (1, "b", "e")),
                        ("u", (1, "b", "e"), (1, "c", None))]

"""An integer a double does not hold exactly (past 2^53: 9007199254740993 would be stored as
9007199254740992) into a `double` or `float` column is refused (`type_mismatch`, saying to
declare long or decimal), as a double key already was: the row would hold a number the
topic does not (probe h78). Integers a double holds exactly (2^53, 2^60) and every float are
taken as before. On the fused JSON reader (msgspec rounded such an integer into its float
field before any check), the two-step reader, Avro longs and debezium-json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connectors.registry import FileRegistry
from materializer.formats.wire import avro_encoder
from materializer.testing import FakeRecord
from tests.ingest.test_apply_rules import Harness, spec_of
from tests.ingest.test_debezium_unavailable import AvroHarness, dbz

INEXACT = [2**53 + 1, -(2**53) - 1, 2**64 - 1]
EXACT = [0, 2**53, -(2**53), 2**60, 1.5, 1e300,
         12345678901234567000]  # Go's and JavaScript's JSON text of 1.2345678901234567e19


@pytest.mark.parametrize("fmt", ["json", "debezium-json"])
def test_json_integers_a_double_does_not_hold_are_refused(tmp_path: Path, fmt: str) -> None:
    h = Harness(tmp_path, spec_of(
        "CREATE TABLE t (id INT PRIMARY KEY, d DOUBLE, f FLOAT, ds ARRAY<DOUBLE>) WITH "
        f"(kafka_topic='t', key_format='JSON', value_format='{fmt}', on_error='skip')"))

    def value(row: dict[str, Any]) -> Any:
        return dbz("c", {"id": 1, **row}) if fmt == "debezium-json" else row

    for n in INEXACT:
        for row in ({"d": n}, {"f": n}, {"ds": [1.0, n]}):
            (r,) = h.feed((1, value(row))).rejected
            assert r.reason == "type_mismatch" and "does not hold exactly" in r.message, row
    assert h.get(1) is None
    for n in EXACT:
        assert h.feed((1, value({"d": n, "ds": [n]}))).rejected == []
        row = h.get(1)
        assert row is not None and row["d"] == float(n) and type(row["d"]) is float
        assert row["ds"] == [float(n)]


def test_avro_longs_into_a_double_column(tmp_path: Path) -> None:
    reg = FileRegistry(tmp_path / "registry")
    enc = avro_encoder(reg, "t-value", {"type": "record", "name": "V", "fields": [
        {"name": "d", "type": "long"}]})
    h = AvroHarness(tmp_path / "data", spec_of(
        "CREATE TABLE t (id INT PRIMARY KEY, d DOUBLE) WITH (kafka_topic='t', "
        "key_format='JSON', value_format='avro', on_error='skip')"), registry=reg)
    (r,) = h.apply([FakeRecord(b"1", enc({"d": 2**53 + 1}), 0, 0)]).rejected
    assert r.reason == "type_mismatch" and "declare the column long" in r.message
    assert h.apply([FakeRecord(b"1", enc({"d": 2**53}), 1, 1)]).rejected == []
    assert h.get(1) == {"id": 1, "d": float(2**53)}

"""A table reading a `debezium-avro` change topic declares its source's columns as they are:
a column that is no valid Avro name (`a.b`, `1st`) is a field named as Debezium's
`field.name.adjustment.mode=avro` names it in the envelope (`a_b`, `_1st`), and the reader
fills the column from that field. It was NULL in every row of the reading table (only a
warning once per schema): NULLs where the change events held the data."""

from __future__ import annotations

from pathlib import Path

import pytest

from materializer.devbroker import DevBroker
from tests.support.change_topics import mirror_through_registry, table_rows
from tests.support.workers import j

pytestmark = pytest.mark.integration

BODY = """\
schema_registry:
  url: {registry}
tables:
  - name: src
    topic: {topic}
    columns: {{id: long, "a.b": string, "1st": "decimal(8,2)", plain: long}}
    primary_key: [id]
    key_format: json
    value_format: json
    changes: {{topic: {changes}, format: debezium-avro}}
  - name: mirror
    topic: {changes}
    columns: {{id: long, "a.b": string, "1st": "decimal(8,2)", plain: long}}
    primary_key: [id]
    key_format: avro
    value_format: debezium-avro
"""


def test_a_table_reading_debezium_avro_events_fills_adjusted_columns(
        session_broker: DevBroker, tmp_path: Path) -> None:
    records = [(j(1), j({"a.b": "one", "1st": "1.50", "plain": 10})),
               (j(2), j({"a.b": "two", "1st": "-2.25", "plain": 20})),
               (j(3), j({"a.b": None, "1st": "3", "plain": 30})),
               (j(2), j({"a.b": "two'", "1st": "0.01", "plain": 21})),
               (j(3), None)]
    data, source = mirror_through_registry(session_broker, tmp_path, BODY, "adj",
                                           records, ("mirror",))
    assert source[1]["a.b"] == "one" and set(source) == {1, 2}
    assert table_rows(data, "public.mirror") == {
        1: {"id": 1, "a.b": "one", "1st": "1.50", "plain": 10},
        2: {"id": 2, "a.b": "two'", "1st": "0.01", "plain": 21}}

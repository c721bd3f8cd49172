"""A table declaring `a.b` before `a_b` writes `debezium-avro` change events whose row
fields are `a_b` (`a.b`'s values, doc "column a.b") and `a_b_` (`a_b`'s, doc "column a_b").
A table reading that topic and declaring both columns read `a.b`'s values into `a_b` (the
field of that exact name) and left `a.b` NULL: silently wrong rows. The reader follows the
envelope's docs: its rows equal the source's, whatever order it declares the columns in."""

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
    columns: {{id: long, "a.b": string, "a_b": string, n: long}}
    primary_key: [id]
    key_format: json
    value_format: json
    changes: {{topic: {changes}, format: debezium-avro}}
  - name: mirror
    topic: {changes}
    columns: {{id: long, "a.b": string, "a_b": string, n: long}}
    primary_key: [id]
    key_format: avro
    value_format: debezium-avro
  - name: turned
    topic: {changes}
    columns: {{id: long, n: long, "a_b": string, "a.b": string}}
    primary_key: [id]
    key_format: avro
    value_format: debezium-avro
"""


def test_a_reader_of_a_clashing_pair_follows_the_envelope_docs(
        session_broker: DevBroker, tmp_path: Path) -> None:
    records = [(j(1), j({"a.b": "dot1", "a_b": "under1", "n": 10})),
               (j(2), j({"a.b": "dot2", "a_b": None, "n": 20})),
               (j(3), j({"a.b": None, "a_b": "under3", "n": 30})),
               (j(2), j({"a.b": "dot2'", "a_b": "under2'", "n": 21})),
               (j(4), j({"a.b": "gone", "a_b": "gone", "n": 40})),
               (j(4), None)]
    data, source = mirror_through_registry(session_broker, tmp_path, BODY, "doc",
                                           records, ("mirror", "turned"))
    assert source[1]["a.b"] == "dot1" and set(source) == {1, 2, 3}
    want = {1: {"id": 1, "a.b": "dot1", "a_b": "under1", "n": 10},
            2: {"id": 2, "a.b": "dot2'", "a_b": "under2'", "n": 21},
            3: {"id": 3, "a.b": None, "a_b": "under3", "n": 30}}
    assert table_rows(data, "public.mirror") == want
    assert table_rows(data, "public.turned") == want

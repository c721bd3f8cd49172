"""A stream declared without a key is refused, and the message says what to write, in
the syntax it was declared in (before, the DDL one read "add mark a column `KEY`")."""

from __future__ import annotations

import pytest

from materializer.catalog.load import load_catalog_text
from materializer.errors import ConfigError

YAML = """\
streams:
  - name: s
    topic: s
    columns: {a: string}
"""
DDL = """\
sql: |
  CREATE STREAM s (a STRING) WITH (kafka_topic='s', value_format='JSON');
"""


@pytest.mark.parametrize(("body", "fix"), [
    (YAML, "streams are looked up by key; add `key: [column, ...]`"),
    (DDL, "streams are looked up by key; mark a column `KEY` (`user_id STRING KEY`)"),
])
def test_a_keyless_stream_is_refused_saying_what_to_write(body: str, fix: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_catalog_text(body, "c.yaml")
    assert fix in str(e.value)
    assert "add mark" not in str(e.value)

"""Helpers shared by the declaration-file tests."""

from __future__ import annotations

import textwrap

import pytest

from materializer.catalog import load_catalog_text
from materializer.errors import ConfigError, Diagnostic

MARK = "@@"


def marked(text: str) -> tuple[str, int, int]:
    """Remove the `@@` marker; return the text and the 1-based line and column it marked."""
    text = textwrap.dedent(text).lstrip("\n")
    index = text.index(MARK)
    before = text[:index]
    line = before.count("\n") + 1
    column = index - (before.rfind("\n") + 1) + 1
    return text.replace(MARK, "", 1), line, column


def errors_of(text: str, filename: str = "tables.yaml") -> list[Diagnostic]:
    with pytest.raises(ConfigError) as info:
        load_catalog_text(text, filename)
    assert info.value.exit_code == 2
    assert info.value.diagnostics, "a ConfigError must carry diagnostics"
    return info.value.diagnostics


def load(text: str, filename: str = "tables.yaml") -> object:
    return load_catalog_text(textwrap.dedent(text).lstrip("\n"), filename)


USERS = """\
tables:
  - name: shop.users
    topic: users
    columns: {id: int, name: string}
"""


USERS_OK = """\
STORE
tables:
  - name: shop.users
    topic: users
    columns: {id: int, name: string}
    primary_key: [id]
"""

SPEC_EXAMPLE = """\
kafka:                         # librdkafka properties, passed through as they are
  bootstrap.servers: localhost:9092
group: shop-materializer       # consumer group id (default: materializer)
store:
  path: ./data                 # LMDB data directory (default ./data)
schema_registry:               # needed only for avro
  url: http://localhost:8081   # a Confluent-compatible registry, or
  # path: schemas/registry     # a registry kept as files (development, tests)
api:
  listen: 127.0.0.1:8080       # loopback by default
default_schema: public         # unqualified names resolve here

tables:
  - name: shop.users           # [schema.]name
    topic: users
    columns: {id: int, name: string, age: long, email: string}
    primary_key: [id]
    key_format: int            # how the Kafka message key is encoded
    value_format: json         # how the Kafka message value is encoded
    on_existing: overwrite     # overwrite | ignore | versioned
    # version_column: updated_at   (required with versioned)
    changes: {topic: shop.users.changes}   # optional: where change events go

streams:
  - name: clicks
    topic: clicks
    columns: {user_id: string, url: string, ts: timestamp}
    key: [user_id]
    key_format: string
    value_format: json

sql: |                         # the same declarations, as ksqlDB-style DDL
  CREATE TABLE shop.orders (customer_id INT, order_id INT, total DOUBLE,
                            PRIMARY KEY (customer_id, order_id))
    WITH (kafka_topic='orders', key_format='JSON', value_format='AVRO');
"""


def sql_file(sql: str, style: str, indent: int = 2) -> str:
    """A declaration file whose `sql:` holds `sql` in the given YAML scalar style."""
    pad = " " * (max(indent, 2) if style == "|2" else indent)
    head = "schema_registry: {path: reg}\nsql: "
    if style in ("|", ">", "|-", "|2"):
        body = "\n".join(pad + line if line else "" for line in sql.split("\n"))
        return f"{head}{style}   # the DDL\n{body}\n"
    if style == '"':
        esc = sql.replace("\\", "\\\\").replace('"', '\\"')
        return head + '"' + esc.replace("\n", "\n\n" + pad) + '"\n'
    esc = sql.replace("'", "''")
    return head + "'" + esc.replace("\n", "\n\n" + pad) + "'\n"


def char_at(text: str, d: Diagnostic) -> str:
    """The text of `text` from a diagnostic's line and column on."""
    return text.split("\n")[d.line - 1][d.column - 1:]


def assert_reported_at_mark(text: str, expected: tuple[str, ...]) -> None:
    """`text` (YAML with @@ where the error is) gives a diagnostic of tables.yaml at that
    line and column whose message holds every one of `expected`."""
    source, line, column = marked(text)
    diags = errors_of(source)
    at = [d for d in diags if (d.line, d.column) == (line, column)]
    assert at, (f"no diagnostic at line {line}, column {column}; got:\n"
                + "\n".join(str(d) for d in diags))
    assert any(all(s in d.message for s in expected) for d in at), \
        "\n".join(str(d) for d in at)
    assert all(d.file == "tables.yaml" for d in diags)

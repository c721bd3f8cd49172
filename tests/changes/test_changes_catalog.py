"""The `changes` block in declarations: `schemas` (debezium-json's Connect schema wrapper),
in YAML and DDL, its rules, and what `check` prints."""

from __future__ import annotations

from materializer.catalog import describe
from materializer.catalog.ddl import parse_ddl
from materializer.specs import ChangesSpec, TableSpec
from tests.support.catalog import errors_of, load, marked

TABLE = """\
tables:
  - name: shop.users
    topic: users
    columns: {{id: int, name: string}}
    primary_key: [id]
    changes: {changes}
"""


def _users(changes: str) -> TableSpec:
    catalog = load(TABLE.format(changes=changes))
    spec = catalog.relation("shop.users")  # type: ignore[attr-defined]
    assert isinstance(spec, TableSpec)
    return spec


def test_yaml_schemas() -> None:
    assert _users("{topic: c, schemas: true}").changes == ChangesSpec(
        "c", "debezium-json", False, schemas=True)
    assert _users("{topic: c, schemas: false, columns: true}").changes == ChangesSpec(
        "c", "debezium-json", True)
    assert _users("c").changes == ChangesSpec("c")
    assert _users("{topic: c}").changes == ChangesSpec("c", schemas=False)


def test_yaml_schemas_must_be_a_boolean() -> None:
    text, line, col = marked("""
        tables:
          - name: shop.users
            topic: users
            columns: {id: int}
            primary_key: [id]
            changes: {topic: c, schemas: @@yes please}
        """)
    (d,) = errors_of(text)
    assert (d.line, d.column) == (line, col)
    assert "schemas" in d.message


def test_schemas_is_for_debezium_json_only() -> None:
    text, line, col = marked("""
        schema_registry: {path: ./reg}
        tables:
          - name: shop.users
            topic: users
            columns: {id: int}
            primary_key: [id]
            changes: {topic: c, format: debezium-avro, schemas: @@true}
        """)
    (d,) = errors_of(text)
    assert (d.line, d.column) == (line, col)
    assert "debezium-json" in d.message and "registry" in d.message


def test_ddl_changes_schemas() -> None:
    (t,) = parse_ddl("CREATE TABLE shop.users (id INT PRIMARY KEY, name STRING) WITH ("
                     "kafka_topic='users', format='json', changes_topic='users.changes', "
                     "changes_schemas=true)")
    assert isinstance(t, TableSpec)
    assert t.changes == ChangesSpec("users.changes", "debezium-json", False, schemas=True)
    (t,) = parse_ddl("CREATE TABLE shop.users (id INT PRIMARY KEY) WITH (kafka_topic='u', "
                     "format='json', changes_topic='c', changes_schemas='false')")
    assert isinstance(t, TableSpec) and t.changes == ChangesSpec("c")


def test_check_describes_schemas() -> None:
    catalog = load(TABLE.format(changes="{topic: c, schemas: true, columns: true}"))
    assert "  changes: c (debezium-json, changed columns, Connect schemas)" in describe(
        catalog)  # type: ignore[arg-type]
    catalog = load(TABLE.format(changes="c"))
    assert "  changes: c (debezium-json)" in describe(catalog)  # type: ignore[arg-type]

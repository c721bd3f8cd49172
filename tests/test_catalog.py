"""The declaration file (SPEC §3): every bad declaration is reported at its line and column."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from materializer.catalog import describe, load_catalog, load_catalog_text
from materializer.errors import ConfigError, Diagnostic
from materializer.specs import ChangesSpec, Column, StreamSpec, TableSpec
from materializer.types import ColumnType

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

# (id, YAML with @@ at the expected position, substrings the message must contain)
BAD: list[tuple[str, str, tuple[str, ...]]] = [
    ("table-with-key", USERS + "    @@key: [id]\n",
     ("`key` declares KEY columns: please use `primary_key` for tables.",
      "Tables have PRIMARY KEYs, which are unique and NON NULL.",
      "Streams have KEYs, which have no uniqueness or NON NULL constraints.")),
    ("stream-with-primary-key", """
        streams:
          - name: clicks
            topic: clicks
            columns: {user_id: string, url: string}
            @@primary_key: [user_id]
        """,
     ("`primary_key` declares PRIMARY KEY columns: please use `key` for streams.",
      "Streams have KEYs")),
    ("stream-with-soft-primary-key", """
        streams:
          - name: clicks
            topic: clicks
            columns: {user_id: string}
            @@soft_primary_key: [user_id]
        """, ("`soft_primary_key` declares PRIMARY KEY columns", "use `key` for streams")),
    ("duplicate-yaml-key", """
        tables:
          - name: shop.users
            topic: users
            @@topic: users2
            columns: {id: int}
            primary_key: [id]
        """, ("duplicate key `topic`", "first at line 3, column 5", "remove one")),
    ("duplicate-column", """
        tables:
          - name: shop.users
            topic: users
            columns: {id: int, name: string, @@name: long}
            primary_key: [id]
        """, ("duplicate key `name` in `columns`",)),
    ("unknown-relation-key", USERS + "    primary_key: [id]\n    @@topik: x\n",
     ("unknown key `topik`", "Did you mean `topic`?", "Valid keys: name, topic")),
    ("unknown-top-level-key", "@@tabels: []\n" + USERS + "    primary_key: [id]\n",
     ("unknown key `tabels` in the top level", "Did you mean `tables`?")),
    ("bad-char-in-name", """
        tables:
          - name: shop.bad@@!name
            topic: users
            columns: {id: int}
            primary_key: [id]
        """, ("name `bad!name` contains `!`", "letters, digits, spaces")),
    ("two-dots-in-name", """
        tables:
          - name: a.b@@.c
            topic: users
            columns: {id: int}
            primary_key: [id]
        """, ("more than one `.`", "`schema.name`")),
    ("name-too-long", """
        tables:
          - name: "{}@@a"
            topic: users
            columns: {{id: int}}
            primary_key: [id]
        """.format("a" * 200), ("201 characters long", "1-200 characters")),
    ("bad-char-in-column-name", """
        tables:
          - name: shop.users
            topic: users
            columns: {id: int, first@@ name: string}
            primary_key: [id]
        """, ("column name `first name` contains ` `", "letters, digits and")),
    ("column-name-bad-start", """
        tables:
          - name: shop.users
            topic: users
            columns: {id: int, "@@-x": string}
            primary_key: [id]
        """, ("column name `-x` starts with `-`",)),
    ("name-taken-by-stream", """
        tables:
          - name: shop.users
            topic: users
            columns: {id: int}
            primary_key: [id]
        streams:
          - name: @@shop.users
            topic: user-events
            columns: {id: int}
            key: [id]
        """, ("`shop.users` is already declared as a table at line 2, column 11",
              "share one namespace", "rename one")),
    ("default-schema-collision", """
        default_schema: shop
        tables:
          - name: shop.users
            topic: users
            columns: {id: int}
            primary_key: [id]
          - name: @@users
            topic: users2
            columns: {id: int}
            primary_key: [id]
        """, ("`shop.users` is already declared",)),
    ("unknown-type", """
        tables:
          - name: shop.users
            topic: users
            columns: {id: int, name: @@strng}
            primary_key: [id]
        """, ("column `name`", "unknown type 'strng'", "Did you mean `string`?")),
    ("type-with-trailing-garbage", """
        tables:
          - name: shop.users
            topic: users
            columns: {id: int, name: "string @@nul"}
            primary_key: [id]
        """, ("column `name`", "unexpected 'nul' after type string")),
    ("decimal-out-of-range", """
        tables:
          - name: shop.users
            topic: users
            columns: {id: int, price: "@@decimal(40,2)"}
            primary_key: [id]
        """, ("decimal(40,2) needs 1 <= precision <= 38",)),
    ("map-with-int-keys", """
        tables:
          - name: shop.users
            topic: users
            columns: {id: int, tags: "@@map<int,string>"}
            primary_key: [id]
        """, ("map keys must be string", "map<string,T>")),
    ("column-without-type", """
        tables:
          - name: shop.users
            topic: users
            columns:
              id: int
              name:@@
            primary_key: [id]
        """, ("the type of column `name` must be a single value, not nothing",)),
    ("json-in-primary-key", """
        tables:
          - name: shop.users
            topic: users
            columns: {id: int, doc: json}
            primary_key: [id, @@doc]
        """, ("column `doc` has type json, which cannot be part of a key",)),
    ("array-in-stream-key", """
        streams:
          - name: clicks
            topic: clicks
            columns: {tags: array<string>, url: string}
            key: [@@tags]
        """, ("has type array<string>, which cannot be part of a key",)),
    ("undeclared-primary-key-column", USERS + "    primary_key: [@@user_id]\n",
     ("primary key column `user_id` is not declared", "add it under `columns`",
      "declared: id, name")),
    ("primary-key-column-twice", USERS + "    primary_key: [id, @@id]\n",
     ("`id` appears twice in `primary_key`",)),
    ("table-without-primary-key", """
        tables:
          - @@name: shop.users
            topic: users
            columns: {id: int}
        """, ("has no primary key", "add `primary_key: [column, ...]`", "under `streams:`")),
    ("both-primary-keys", USERS + "    primary_key: [id]\n    @@soft_primary_key: [id]\n",
     ("both `primary_key` and `soft_primary_key`",)),
    ("missing-topic", """
        tables:
          - @@name: shop.users
            columns: {id: int}
            primary_key: [id]
        """, ("table `shop.users` has no `topic`", "add `topic: <kafka topic>`")),
    ("stream-without-key", """
        streams:
          - @@name: clicks
            topic: clicks
            columns: {url: string}
        """, ("stream `public.clicks` has no `key`", "add `key: [column, ...]`")),
    ("shard-key-outside-primary-key", """
        tables:
          - name: shop.orders
            topic: orders
            columns: {customer: int, id: int, total: double}
            primary_key: [customer, id]
            shard_key: [@@total]
        """, ("shard key column `total` is not in the primary key (customer, id)",)),
    ("versioned-without-version-column", USERS + "    primary_key: [id]\n"
     "    on_existing: @@versioned\n",
     ("`on_existing: versioned` needs `version_column: <column>`",)),
    ("version-column-is-key", USERS + "    primary_key: [id]\n    on_existing: versioned\n"
     "    version_column: @@id\n", ("version column `id` is a key column",)),
    ("version-column-undeclared", USERS + "    primary_key: [id]\n    on_existing: versioned\n"
     "    version_column: @@updated_at\n",
     ("version column `updated_at` is not declared", "add it under `columns`")),
    ("version-column-without-versioned", USERS + "    primary_key: [id]\n"
     "    @@version_column: name\n",
     ("`version_column` only applies with `on_existing: versioned`",)),
    ("version-column-not-orderable", """
        tables:
          - name: shop.users
            topic: users
            columns: {id: int, live: boolean}
            primary_key: [id]
            on_existing: versioned
            version_column: @@live
        """, ("has type boolean, which has no version order", "int, long")),
    ("partial-update-undeclared", USERS + "    primary_key: [id]\n"
     "    partial_update: [name, @@email]\n", ("partial_update column `email` is not declared",)),
    ("partial-update-key-column", USERS + "    primary_key: [id]\n"
     "    partial_update: [@@id, name]\n",
     ("`id` is a key column: a partial update always carries the key",)),
    ("partial-update-leaves-not-null-column", """
        tables:
          - name: shop.users
            topic: users
            columns: {id: int, name: string, email: string not null}
            primary_key: [id]
            @@partial_update: [name]
        """, ("column `email` is NOT NULL but not in `partial_update`", "make it nullable")),
    ("partial-update-with-ignore", USERS + "    primary_key: [id]\n    on_existing: ignore\n"
     "    @@partial_update: [name]\n", ("`on_existing: ignore` never changes a stored row",)),
    ("bad-key-format", USERS + "    primary_key: [id]\n    key_format: @@protobuf\n",
     ("`key_format: protobuf` is not valid", "use one of int, long, string, json")),
    ("bad-value-format", USERS + "    primary_key: [id]\n    value_format: @@xml\n",
     ("`value_format: xml` is not valid", "debezium-json")),
    ("composite-key-with-string-format", """
        tables:
          - name: shop.orders
            topic: orders
            columns: {customer: int, id: int, total: double}
            primary_key: [customer, id]
            key_format: @@string
        """, ("`key_format: string` holds one value", "a composite key",
              "use key_format json or avro")),
    ("string-value-with-two-columns", """
        tables:
          - name: shop.users
            topic: users
            columns: {id: int, name: string, email: string}
            primary_key: [id]
            value_format: @@string
        """, ("`value_format: string` holds one value", "2 non-key columns (name, email)",
              "use value_format json or avro")),
    ("int-key-for-string-column", """
        tables:
          - name: shop.users
            topic: users
            columns: {id: string, name: string}
            primary_key: [id]
            key_format: @@int
        """, ("reads a 4-byte big-endian integer", "key column `id` of type string")),
    ("avro-without-registry", USERS + "    primary_key: [id]\n    value_format: @@avro\n",
     ("`value_format: avro` needs a schema registry", "schema_registry")),
    ("dead-letter-without-topic", USERS + "    primary_key: [id]\n    on_error: @@dead_letter\n",
     ("`on_error: dead_letter` needs a topic", "add `dead_letter_topic: <topic>`")),
    ("null-key-dead-letter-without-topic", USERS + "    primary_key: [id]\n"
     "    null_key: @@dead_letter\n", ("`null_key: dead_letter` needs a topic",)),
    ("bad-on-existing", USERS + "    primary_key: [id]\n    on_existing: @@upsert\n",
     ("`on_existing: upsert` is not valid", "overwrite, ignore, versioned")),
    ("bad-on-error", USERS + "    primary_key: [id]\n    on_error: @@retry\n",
     ("`on_error: retry` is not valid", "fail, skip, dead_letter")),
    ("changes-into-own-topic", USERS + "    primary_key: [id]\n    changes: {topic: @@users}\n",
     ("the change topic is the topic this table reads",)),
    ("bad-changes-format", USERS + "    primary_key: [id]\n"
     "    changes: {topic: c, format: @@avro}\n",
     ("change format `avro` is not valid", "debezium-json, debezium-avro")),
    ("soft-key-with-ignore", USERS + "    soft_primary_key: [id]\n    @@on_existing: ignore\n",
     ("`soft_primary_key` writes blind", "use `primary_key`")),
    ("replicated-not-boolean", USERS + "    primary_key: [id]\n    replicated: @@sometimes\n",
     ("`replicated` must be true or false, not `sometimes`",)),
    ("stream-with-table-rule", """
        streams:
          - name: clicks
            topic: clicks
            columns: {user_id: string, url: string}
            key: [user_id]
            @@on_existing: ignore
        """, ("`on_existing` applies to tables only",)),
    ("table-with-retention", USERS + "    primary_key: [id]\n"
     "    @@retention: {max_events_per_key: 5}\n", ("`retention` applies to streams only",)),
    ("retention-zero", """
        streams:
          - name: clicks
            topic: clicks
            columns: {user_id: string, url: string}
            key: [user_id]
            retention: {max_events_per_key: @@0}
        """, ("`max_events_per_key: 0` keeps no events", "at least 1")),
    ("registry-url-and-path", 'schema_registry: @@{url: "http://localhost:8081", path: s}\n'
     + USERS + "    primary_key: [id]\n", ("both `url` and `path`", "give exactly one")),
    ("bad-map-size", "store: {map_size: @@lots}\n" + USERS + "    primary_key: [id]\n",
     ("`store.map_size: lots` is not a size", "64GiB")),
    ("bad-api-listen", "api: {listen: @@localhost}\n" + USERS + "    primary_key: [id]\n",
     ("`api.listen: localhost` is not `host:port`",)),
    ("public-api-without-token", "api: {listen: @@\"0.0.0.0:8080\"}\n" + USERS
     + "    primary_key: [id]\n", ("is not a loopback address", "add `token_env: <VARIABLE>`")),
    ("client-setting-for-file-registry", "schema_registry: {path: reg, @@timeout: 5}\n"
     + USERS + "    primary_key: [id]\n",
     ("`schema_registry.timeout` is a setting of a registry client", "use `url`")),
    ("bad-max-lookup-keys", "api: {max_lookup_keys: @@many}\n" + USERS
     + "    primary_key: [id]\n", ("`api.max_lookup_keys` must be a whole number",)),
    ("tables-not-a-list", "tables:\n  @@name: shop.users\n",
     ("`tables` must be a list of table declarations",)),
    ("yaml-syntax-error", """
        tables:
          - name: shop.users
            topic: [users
        streams@@: []
        """, ("YAML syntax error",)),
    ("empty-file", "@@\n", ("the file is empty",)),
    ("ddl-key-in-table", """
        sql: |
          CREATE TABLE shop.users (id INT @@KEY, name STRING)
            WITH (kafka_topic='users');
        """, ("`KEY` declares KEY columns: please use `PRIMARY KEY` for tables.",
              "Streams have KEYs, which have no uniqueness or NON NULL constraints.")),
    ("ddl-primary-key-in-stream", """
        sql: |
          CREATE STREAM clicks (user_id STRING, url STRING, @@PRIMARY KEY (user_id))
            WITH (kafka_topic='clicks');
        """, ("`PRIMARY KEY` declares PRIMARY KEY columns: please use `KEY` for streams.",)),
    ("ddl-syntax-error", """
        tables:
          - name: a
            topic: a
            columns: {id: int}
            primary_key: [id]
        sql: |
          CREATE TABLE shop.users (id INT PRIMARY KEY, name STRING)
            WITH (kafka_topic='users');

          CREATE TABLE shop.orders (id INT PRIMARY KEY,
                                    total @@DOUBLEE)
            WITH (kafka_topic='orders');
        """, ("unknown type `DOUBLEE`", "Did you mean `DOUBLE`?",
              "sql statement 2, Line: 2, Col: 33")),
    ("ddl-unknown-property", """
        sql: >
          CREATE TABLE shop.users (id INT PRIMARY KEY, name STRING)
          WITH (kafka_topic='users', @@value_fromat='JSON');
        """, ("unknown property `value_fromat`", "Did you mean `value_format`?")),
    ("ddl-missing-topic", """
        sql: |
          @@CREATE TABLE shop.users (id INT PRIMARY KEY, name STRING);
        """, ("has no `topic`", "WITH (kafka_topic='<kafka topic>', ...)")),
    ("ddl-rule-checked-like-yaml", """
        sql: "CREATE TABLE t (id INT PRIMARY KEY, v STRING, w STRING)
          WITH (kafka_topic='t', value_format=@@'string')"
        """, ("`value_format: string` holds one value",)),
]


@pytest.mark.parametrize("text,expected", [(t, e) for _, t, e in BAD],
                         ids=[case_id for case_id, _, _ in BAD])
def test_bad_declaration_is_reported_at_its_line_and_column(text: str,
                                                            expected: tuple[str, ...]) -> None:
    source, line, column = marked(text)
    diags = errors_of(source)
    at = [d for d in diags if (d.line, d.column) == (line, column)]
    assert at, (f"no diagnostic at line {line}, column {column}; got:\n"
                + "\n".join(str(d) for d in diags))
    assert any(all(s in d.message for s in expected) for d in at), \
        "\n".join(str(d) for d in at)
    assert all(d.file == "tables.yaml" for d in diags)


def test_bad_cases_are_many_and_distinct() -> None:
    assert len(BAD) >= 25
    assert len({case_id for case_id, _, _ in BAD}) == len(BAD)


def test_klip23_message_is_exactly_the_spec_text() -> None:
    text = textwrap.dedent("""\
        kafka:
          bootstrap.servers: localhost:9092
        tables:
          - name: shop.users
            topic: users
            columns: {id: int, name: string}
            key: [id]
        """)
    (diag,) = errors_of(text)
    assert str(diag) == (
        "tables.yaml: line 7, column 5: `key` declares KEY columns: please use `primary_key` "
        "for tables.\n"
        "Tables have PRIMARY KEYs, which are unique and NON NULL.\n"
        "Streams have KEYs, which have no uniqueness or NON NULL constraints.")


def test_every_problem_in_a_file_is_reported() -> None:
    text = textwrap.dedent("""\
        tables:
          - name: shop.users
            topic: users
            columns: {id: int, name: strng}
            key: [id]
          - name: shop.orders
            topic: orders
            columns: {id: int, total: double}
            primary_key: [id, customer]
            on_existing: versioned
        streams:
          - name: clicks
            topic: clicks
            columns: {u: string}
            primary_key: [u]
        sql: |
          CREATE TABLE t (id INT KEY) WITH (kafka_topic='t');
        """)
    positions = {(d.line, d.column) for d in errors_of(text)}
    assert {(4, 30), (5, 5), (9, 23), (10, 18), (15, 5), (17, 26)} <= positions


def test_errors_are_sorted_by_position() -> None:
    text = "tables:\n  - name: b\n    topik: x\n  - name: a!\n"
    diags = errors_of(text)
    assert [(d.line, d.column) for d in diags] == sorted((d.line, d.column) for d in diags)


# ----------------------------------------------------------------------------- good files


def test_spec_example_resolves(tmp_path: Path) -> None:
    path = tmp_path / "tables.yaml"
    path.write_text(SPEC_EXAMPLE)
    cat = load_catalog(str(path))
    assert cat.kafka == (("bootstrap.servers", "localhost:9092"),)
    assert cat.group == "shop-materializer"
    assert cat.store_path == str(tmp_path / "data")
    assert cat.schema_registry is not None and cat.schema_registry.url == "http://localhost:8081"
    assert cat.api.listen == "127.0.0.1:8080"
    users = cat.relation("shop.users")
    assert isinstance(users, TableSpec)
    assert users.columns == (Column("id", ColumnType("int"), True),
                             Column("name", ColumnType("string")),
                             Column("age", ColumnType("long")),
                             Column("email", ColumnType("string")))
    assert users.primary_key == ("id",)
    assert (users.key_format, users.value_format) == ("int", "json")
    assert users.changes == ChangesSpec("shop.users.changes")
    assert users.location.line == 14 and users.location.file == str(path)
    clicks = cat.relation("clicks")
    assert isinstance(clicks, StreamSpec)
    assert clicks.name == "public.clicks" and clicks.key_columns == ("user_id",)
    assert clicks.column("user_id").not_null is False
    assert clicks.max_events_per_key == 1000
    orders = cat.relation("shop.orders")
    assert isinstance(orders, TableSpec)
    assert orders.primary_key == ("customer_id", "order_id")
    assert (orders.key_format, orders.value_format) == ("json", "avro")
    assert [t.name for t in cat.tables] == ["shop.users", "shop.orders"]


def test_defaults() -> None:
    cat = load_catalog_text("streams:\n  - {name: s, topic: t, columns: {k: int}, key: k}\n",
                            "/etc/mat/tables.yaml")
    assert cat.group == "materializer"
    assert cat.store_path == "/etc/mat/data"
    assert cat.default_schema == "public"
    assert cat.schema_registry is None
    assert cat.api.listen == "127.0.0.1:8080" and cat.api.max_lookup_keys == 1000
    (s,) = cat.streams
    assert (s.key_format, s.value_format, s.on_error, s.dead_letter_topic) == \
        ("json", "json", "fail", None)


def test_table_rules_are_carried_into_the_spec() -> None:
    cat = load("""
        kafka: {bootstrap.servers: "k:9092", enable.idempotence: true, linger.ms: 5}
        schema_registry: {url: "https://r:8081", basic.auth.user.info: "u:p"}
        tables:
          - name: shop.orders
            topic: orders
            columns: {customer: int, id: long, total: "decimal(10,2) not null",
                      updated: timestamp, note: string}
            primary_key: [customer, id]
            shard_key: customer
            on_existing: versioned
            version_column: updated
            partial_update: [total, updated]
            replicated: yes
            null_key: dead_letter
            on_error: skip
            dead_letter_topic: orders.dlq
            changes: {topic: orders.changes, format: debezium-avro, columns: true}
        """, "/srv/conf/tables.yaml")
    assert isinstance(cat, object)
    from materializer.specs import Catalog  # noqa: PLC0415

    assert isinstance(cat, Catalog)
    assert cat.kafka == (("bootstrap.servers", "k:9092"), ("enable.idempotence", "true"),
                         ("linger.ms", "5"))
    assert cat.schema_registry is not None
    assert cat.schema_registry.url == "https://r:8081"
    assert cat.schema_registry.config == (("basic.auth.user.info", "u:p"),)
    (t,) = cat.tables
    assert t.shard_key == ("customer",)
    assert t.on_existing == "versioned" and t.version_column == "updated"
    assert t.partial_update == ("total", "updated")
    assert t.replicated is True
    assert (t.null_key, t.on_error, t.dead_letter_topic) == ("dead_letter", "skip", "orders.dlq")
    assert t.changes == ChangesSpec("orders.changes", "debezium-avro", True)
    assert t.column("total") == Column("total", ColumnType("decimal", 10, 2), True)
    assert t.column("customer").not_null and t.column("id").not_null
    assert not t.column("note").not_null


def test_store_settings_and_map_size_units(tmp_path: Path) -> None:
    cat = load_catalog_text(USERS_OK.replace("STORE", "store: {path: /var/lib/m, "
                                             "map_size: 2GiB}"), str(tmp_path / "t.yaml"))
    assert cat.store_path == "/var/lib/m" and cat.map_size == 2 * 2**30
    cat = load_catalog_text(USERS_OK.replace("STORE", "store: {path: d, map_size: 1048576}"),
                            str(tmp_path / "t.yaml"))
    assert cat.store_path == str(tmp_path / "d") and cat.map_size == 1048576


def test_relative_paths_resolve_against_the_file_not_the_cwd(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "t.yaml").write_text(USERS_OK.replace(
        "STORE", "store: {path: ./state}\nschema_registry: {path: ../schemas}"))
    monkeypatch.chdir(tmp_path)
    cat = load_catalog(os.path.join("conf", "t.yaml"))
    assert cat.store_path == str(conf / "state")
    assert cat.schema_registry is not None
    assert cat.schema_registry.path == str(tmp_path / "schemas")
    assert cat.source == os.path.join("conf", "t.yaml")


def test_single_string_key_and_merge_keys() -> None:
    cat = load("""
        tables:
          - &base
            name: a
            topic: a
            columns: {id: int, v: string}
            primary_key: id
            on_error: skip
          - <<: *base
            name: b
            topic: b
        """)
    from materializer.specs import Catalog  # noqa: PLC0415

    assert isinstance(cat, Catalog)
    a, b = cat.tables
    assert b.name == "public.b" and b.topic == "b"
    assert (b.columns, b.primary_key, b.on_error) == (a.columns, a.primary_key, a.on_error)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_catalog(str(tmp_path / "nope.yaml"))
    (d,) = info.value.diagnostics
    assert (d.line, d.column) == (1, 1) and "cannot read" in d.message


def test_describe_lists_every_rule() -> None:
    cat = load("""
        schema_registry: {url: "http://r:8081", basic.auth.user.info: "user:secret"}
        api: {listen: "0.0.0.0:9000", token_env: MAT_TOKEN}
        tables:
          - name: shop.orders
            topic: orders
            columns: {customer: int, id: long, total: "decimal(10,2)", v: long}
            primary_key: [customer, id]
            shard_key: [customer]
            on_existing: versioned
            version_column: v
            partial_update: [total, v]
            replicated: true
            on_error: dead_letter
            dead_letter_topic: dlq
            changes: {topic: orders.changes}
          - name: shop.tags
            topic: tags
            columns: {id: int, tag: string}
            soft_primary_key: [id]
        streams:
          - name: clicks
            topic: clicks
            columns: {u: string, url: string}
            key: [u]
            retention: {max_events_per_key: 50}
        """)
    from materializer.specs import Catalog  # noqa: PLC0415

    assert isinstance(cat, Catalog)
    text = describe(cat)
    for needle in ("table shop.orders", "topic: orders", "customer  int NOT NULL PRIMARY KEY",
                   "total     decimal(10,2)", "primary key: (customer, id)",
                   "shard_key: (customer)", "on_existing: versioned, version_column v",
                   "partial_update: total, v", "replicated: yes", "null_key: drop",
                   "on_error: dead_letter", "dead_letter_topic: dlq",
                   "changes: orders.changes (debezium-json)", "formats: key json, value json",
                   "soft primary key: (id)", "stream public.clicks", "u    string KEY",
                   "retention: 50 events per key", "api: 0.0.0.0:9000, token from $MAT_TOKEN",
                   "2 table(s), 1 stream(s)"):
        assert needle in text, needle
    assert "secret" not in text


# ----------------------------------------------------------------------------- the CLI


_HAS_CLI = (importlib.util.find_spec("materializer.cli") is not None
            and importlib.util.find_spec("materializer.__main__") is not None)


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-m", "materializer", "check", str(path)],
                          capture_output=True, text=True, timeout=60, env=env, cwd=root)


@pytest.mark.skipif(not _HAS_CLI, reason="materializer/cli.py is not there yet")
def test_cli_check_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "tables.yaml"
    path.write_text(SPEC_EXAMPLE)
    done = _check(path)
    assert done.returncode == 0, done.stderr
    for needle in ("table shop.users", "table shop.orders", "stream public.clicks",
                   "customer_id  int NOT NULL PRIMARY KEY", "changes: shop.users.changes"):
        assert needle in done.stdout


@pytest.mark.skipif(not _HAS_CLI, reason="materializer/cli.py is not there yet")
def test_cli_check_invalid_file(tmp_path: Path) -> None:
    path = tmp_path / "tables.yaml"
    path.write_text(SPEC_EXAMPLE.replace("    primary_key: [id]\n", "    key: [id]\n")
                    .replace("columns: {user_id: string,", "columns: {user_id: strin,"))
    done = _check(path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert f"{path}: line 17, column 5: `key` declares KEY columns" in done.stderr
    assert f"{path}: line 27, column 24: column `user_id`: unknown type 'strin'" in done.stderr


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

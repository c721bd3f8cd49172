"""The declaration file (SPEC §3): every broken rule of a table (versions, partial updates,
formats, policies, changes, retention), of the services and of DDL statements is reported
at its line and column."""

from __future__ import annotations

import pytest

from tests.support.catalog import USERS, assert_reported_at_mark

# (id, YAML with @@ at the expected position, substrings the message must contain)
BAD_RULES: list[tuple[str, str, tuple[str, ...]]] = [
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
    ("bad-key-format", USERS + "    primary_key: [id]\n    key_format: @@msgpack\n",
     ("`key_format: msgpack` is not valid", "use one of int, long, string, json")),
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
    ("dead-letter-cycle", """
        tables:
          - name: a
            topic: x
            columns: {id: string, v: long}
            primary_key: [id]
            on_error: dead_letter
            dead_letter_topic: y
          - name: b
            topic: y
            columns: {id: string, v: long}
            primary_key: [id]
            on_error: dead_letter
            dead_letter_topic: @@x
        """, ("`dead_letter_topic` 'x' leads back to the topic this relation reads ('y')",
              "public.b -> public.a", "would come back forever")),
    ("dead-letter-cycle-through-a-stream", """
        tables:
          - name: a
            topic: x
            columns: {id: string, v: long}
            primary_key: [id]
            null_key: dead_letter
            dead_letter_topic: y
        streams:
          - name: s
            topic: y
            columns: {id: string, v: long}
            key: [id]
            on_error: dead_letter
            dead_letter_topic: @@x
        """, ("leads back to the topic this relation reads", "public.s -> public.a")),
    ("dead-letters-into-a-change-topic", USERS + "    primary_key: [id]\n"
     "    on_error: dead_letter\n    dead_letter_topic: @@users.changes\n"
     "    changes: {topic: users.changes}\n",
     ("`dead_letter_topic` 'users.changes' is the change topic of shop.users",
      "mixed into its change events")),
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
    ("retention-negative", """
        streams:
          - name: clicks
            topic: clicks
            columns: {user_id: string, url: string}
            key: [user_id]
            retention: {max_events_per_key: @@-1}
        """, ("`max_events_per_key: -1` keeps no events", "at least 1")),
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
        """, ("Column `id` is a `KEY` column: please use `PRIMARY KEY` for tables.",
              "Streams have KEYs, which have no uniqueness or NON NULL constraints.")),
    ("ddl-primary-key-in-stream", """
        sql: |
          CREATE STREAM clicks (user_id STRING, url STRING, @@PRIMARY KEY (user_id))
            WITH (kafka_topic='clicks');
        """, ("Column `user_id` is a `PRIMARY KEY` column: please use `KEY` for streams.",
              "Tables have PRIMARY KEYs, which are unique and NON NULL.")),
    ("ddl-replicated-with-shard-key", """
        sql: |
          CREATE TABLE shop.countries (code STRING PRIMARY KEY, name STRING)
            WITH (kafka_topic='countries', replicated=true,
                  @@shard_key='code');
        """, ("table `shop.countries` is replicated",
              "remove one of `shard_key` and `replicated=true`")),
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


@pytest.mark.parametrize("text,expected", [(t, e) for _, t, e in BAD_RULES],
                         ids=[case_id for case_id, _, _ in BAD_RULES])
def test_broken_rule_is_reported_at_its_line_and_column(text: str,
                                                        expected: tuple[str, ...]) -> None:
    assert_reported_at_mark(text, expected)

"""The declaration file (SPEC §3): every bad declaration is reported at its line and column."""

from __future__ import annotations

import pytest

from tests.support.catalog import USERS, errors_of, load, marked

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
    ("types-nested-too-deep", """
        tables:
          - name: shop.users
            topic: users
            columns:
              id: int
              t: "array<map<string,array<array<array<array<array<array<@@array<long>>>>>>>>>"
            primary_key: [id]
        """, ("arrays and maps nest at most 8 levels",)),
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
    ("replicated-with-shard-key", """
        tables:
          - name: shop.orders
            topic: orders
            columns: {customer: int, id: int, total: double}
            primary_key: [customer, id]
            replicated: true
            @@shard_key: [customer]
        """, ("table `shop.orders` is replicated (every worker keeps every partition), so it "
              "has no shard key: remove one of `shard_key` and `replicated: true`",)),
    ("shard-key-before-replicated", USERS + "    primary_key: [id]\n    @@shard_key: id\n"
     "    replicated: yes\n", ("is replicated", "remove one of `shard_key` and `replicated")),
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


def _two_tables(b_policy: str, b_topic: str = "x") -> str:
    return f"""\
tables:
  - name: a
    topic: x
    columns: {{id: string, v: long}}
    primary_key: [id]
    on_error: dead_letter
    dead_letter_topic: y
  - name: b
    topic: y
    columns: {{id: string, v: long}}
    primary_key: [id]
    on_error: {b_policy}
    dead_letter_topic: {b_topic}
"""


@pytest.mark.parametrize(("b_policy", "b_topic"), [("skip", "x"), ("fail", "x"),
                                                   ("dead_letter", "z")])
def test_dead_letters_read_by_another_relation_without_a_way_back_are_accepted(
        b_policy: str, b_topic: str) -> None:
    """A table reading another's dead letters is fine while its own rejections cannot reach
    the first's topic (it skips or stops, or sends them elsewhere)."""
    catalog = load(_two_tables(b_policy, b_topic))
    assert [t.name for t in catalog.tables] == ["public.a", "public.b"]  # type: ignore[attr-defined]


def test_a_dead_letter_cycle_is_reported_once() -> None:
    diags = errors_of(_two_tables("dead_letter"))
    assert len(diags) == 1 and "would come back forever" in diags[0].message, diags

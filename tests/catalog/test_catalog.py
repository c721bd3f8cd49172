"""The declaration file (SPEC §3): every bad declaration is reported at its line and column."""

from __future__ import annotations

import pytest

from tests.support.catalog import USERS, assert_reported_at_mark, errors_of, load

# (id, YAML with @@ at the expected position, substrings the message must contain): names,
# types and keys; the rules of tables, formats, policies, services and DDL are in
# tests/catalog/test_catalog_rules.py
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
     "    replicated: true\n", ("is replicated", "remove one of `shard_key` and `replicated")),
]


@pytest.mark.parametrize("text,expected", [(t, e) for _, t, e in BAD],
                         ids=[case_id for case_id, _, _ in BAD])
def test_bad_declaration_is_reported_at_its_line_and_column(text: str,
                                                            expected: tuple[str, ...]) -> None:
    assert_reported_at_mark(text, expected)


def test_bad_cases_are_many_and_distinct() -> None:
    from tests.catalog.test_catalog_rules import BAD_RULES

    ids = [case_id for case_id, _, _ in BAD + BAD_RULES]
    assert len(BAD) >= 25 and len(BAD_RULES) >= 25
    assert len(set(ids)) == len(ids)


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

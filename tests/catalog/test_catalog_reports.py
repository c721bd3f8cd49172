"""The declaration file's reports beyond one bad case each: KLIP-23's exact messages (YAML
and DDL), every problem of a file reported, in position order."""

from __future__ import annotations

import textwrap

from materializer.catalog import load_catalog_text
from tests.support.catalog import USERS, errors_of


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


def test_replicated_false_keeps_its_shard_key() -> None:
    text = USERS + "    primary_key: [id]\n    shard_key: [id]\n    replicated: false\n"
    (t,) = load_catalog_text(text, "tables.yaml").tables
    assert t.shard_key == ("id",) and not t.replicated


def test_ddl_klip23_message_names_the_column() -> None:
    """KLIP-23's example, in a file: the column is named; file, line and column kept."""
    text = textwrap.dedent("""\
        sql: |
          CREATE TABLE input (VIN STRING KEY, make STRING)
            WITH (kafka_topic='input');
        """)
    (diag,) = errors_of(text)
    assert str(diag) == (
        "tables.yaml: line 2, column 34: Column `VIN` is a `KEY` column: please use "
        "`PRIMARY KEY` for tables. (sql statement 1, Line: 1, Col: 32)\n"
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

"""Names that the loader took although they collide with another name after what the code
does with it: columns differing only in case (records' fields match columns
case-insensitively, so one field filled both: a Connect-wrapped `{"v": 5}` gave `V` 5 too,
and a key schema with a field `id` filled key columns `id` and `ID`), two tables sending
change events to one topic (a snapshot of one deleted the other's rows from it), and a
topic that is the group's own `<group>.members` topic (the table read the workers'
membership records as rows). Each is refused at its line and column, saying what to
change; the names that do not collide still load."""

from __future__ import annotations

import pytest

from tests.support.catalog import errors_of, load, marked

TABLE = """
group: shop
tables:
  - name: t
    topic: {topic}
    columns: {columns}
    primary_key: [id]
    key_format: {key_format}
{extra}"""


def table(topic: str = "t", columns: str = "{id: string, v: long}", key_format: str = "string",
          extra: str = "") -> str:
    return TABLE.format(topic=topic, columns=columns, key_format=key_format, extra=extra)


def only_error(text: str) -> tuple[int, int, str]:
    text, line, column = marked(text)
    diags = errors_of(text)
    assert len(diags) == 1, diags
    d = diags[0]
    assert (d.line, d.column) == (line, column), d
    return d.line, d.column, d.message


@pytest.mark.parametrize("columns", ["{id: string, V: long, @@v: long}",
                                     "{id: string, value: long, @@VALUE: string}",
                                     "{ID: long, @@id: long, v: long}"])
def test_columns_differing_only_in_case_are_refused(columns: str) -> None:
    key = "[ID, id]" if "ID" in columns else "[id]"
    text = table(columns=columns, key_format="json").replace("primary_key: [id]",
                                                             f"primary_key: {key}")
    _, _, message = only_error(text)
    assert "differs only in case from column" in message
    assert "rename one" in message


def test_columns_differing_only_in_case_are_refused_in_ddl() -> None:
    _, _, message = only_error("""
        sql: |
          CREATE TABLE t (id STRING PRIMARY KEY, v BIGINT, @@V BIGINT)
            WITH (kafka_topic='t', key_format='KAFKA', value_format='JSON');
        """)
    assert "column `V` differs only in case from column `v` (line 2, column" in message


def test_two_tables_sending_change_events_to_one_topic_are_refused() -> None:
    text = table(extra="    changes: {topic: cc}\n") + """\
  - name: u
    topic: u
    columns: {id: string, v: long}
    primary_key: [id]
    key_format: string
    changes: {topic: @@cc}
"""
    _, _, message = only_error(text)
    assert "'cc' is also the change topic of public.t (line 8, column 22)" in message
    assert "give each table a topic of its own" in message


def test_a_change_topic_another_table_reads_is_taken() -> None:
    """Reading another table's change events (a chain of tables) stays possible."""
    text = table(extra="    changes: {topic: t.changes}\n") + """\
  - name: u
    topic: t.changes
    columns: {id: string, v: long}
    primary_key: [id]
    key_format: json
    value_format: debezium-json
"""
    assert load(text)


@pytest.mark.parametrize("text", [
    table(topic="@@shop.members"),
    table(extra="    changes: {topic: @@shop.members}\n"),
    table(extra="    on_error: dead_letter\n    dead_letter_topic: @@shop.members\n"),
    table(topic="@@materializer.members").replace("group: shop\n", ""),
    """
    group: shop
    sql: |
      CREATE STREAM s (id STRING KEY, v BIGINT)
        WITH (kafka_topic=@@'shop.members', value_format='JSON');
    """,
])
def test_the_groups_members_topic_is_refused_as_a_relations_topic(text: str) -> None:
    _, _, message = only_error(text)
    assert "publish their membership (`<group>.members`)" in message
    assert "choose another topic, or another `group`" in message


def test_names_that_differ_otherwise_still_load() -> None:
    assert load(table(topic="shop.members2", columns="{id: string, v: long, v2: long}",
                      extra="    changes: {topic: t.changes}\n")
                + """\
  - name: T
    topic: other.members
    columns: {id: string, v: long}
    primary_key: [id]
    key_format: string
    changes: {topic: T.changes}
""")

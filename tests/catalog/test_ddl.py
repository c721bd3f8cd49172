"""The `sql:` DDL: ksqlDB-style CREATE TABLE / CREATE STREAM, equal to the YAML form."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from materializer.catalog import load_catalog_text
from materializer.catalog.ddl import parse_ddl, tokenize
from materializer.columns import ColumnType
from materializer.errors import ConfigError, Diagnostic
from materializer.specs import ChangesSpec, Column, StreamSpec, TableSpec
from tests.support.catalog import char_at, sql_file


def one(sql: str, **kw: Any) -> TableSpec | StreamSpec:
    (spec,) = parse_ddl(sql, **kw)
    return spec


def errors(sql: str) -> list[Diagnostic]:
    with pytest.raises(ConfigError) as info:
        parse_ddl(sql)
    return info.value.diagnostics


def C(name: str, kind: str, not_null: bool = False, **kw: Any) -> Column:  # noqa: N802
    return Column(name, ColumnType(kind, **kw), not_null)


# ----------------------------------------------------------------------------- parsing


def test_spec_example_table() -> None:
    t = one("""CREATE TABLE shop.orders (customer_id INT, order_id INT, total DOUBLE,
                            PRIMARY KEY (customer_id, order_id))
    WITH (kafka_topic='orders', key_format='JSON', value_format='AVRO');""")
    assert t == TableSpec(name="shop.orders", topic="orders",
                          columns=(C("customer_id", "int", True), C("order_id", "int", True),
                                   C("total", "double")),
                          key_columns=("customer_id", "order_id"), key_format="json",
                          value_format="avro")


def test_every_type_name() -> None:
    t = one("""create table t (
        a INT PRIMARY KEY, b INTEGER, c BIGINT, d LONG, e DOUBLE, f FLOAT, g VARCHAR,
        h STRING, i BOOLEAN, j DECIMAL(10, 2), k BYTES, l DATE, m TIME, n TIMESTAMP,
        o UUID, p JSON, q ARRAY<INT>, r MAP<STRING, ARRAY<DECIMAL(5,0)>>,
        s MAP<VARCHAR, MAP<STRING, BIGINT>> NOT NULL
    ) with (kafka_topic='t')""")
    assert [str(c.type) for c in t.columns] == [
        "int", "int", "long", "long", "double", "float", "string", "string", "boolean",
        "decimal(10,2)", "bytes", "date", "time", "timestamp", "uuid", "json", "array<int>",
        "map<string,array<decimal(5,0)>>", "map<string,map<string,long>>"]
    assert t.column("s").not_null and not t.column("r").not_null


def test_keywords_are_case_insensitive_and_identifiers_keep_case() -> None:
    t = one("cReAtE TaBlE Shop.Users (UserId iNt pRiMaRy KeY, Name sTrInG nOt NuLl) "
            "WiTh (KAFKA_TOPIC='Users', Key_Format='Int', VALUE_FORMAT='Json')")
    assert t.name == "Shop.Users" and t.topic == "Users"
    assert t.columns == (C("UserId", "int", True), C("Name", "string", True))
    assert (t.key_format, t.value_format) == ("int", "json")


def test_backtick_identifiers() -> None:
    t = one("CREATE TABLE `my schema`.`orders (v2)` (`a.b` INT PRIMARY KEY, "
            "`x{1}:[y]` STRING) WITH (kafka_topic='o')")
    assert t.name == "my schema.orders (v2)"
    assert t.column_names == ("a.b", "x{1}:[y]")


def test_comments_several_statements_and_stray_semicolons() -> None:
    specs = parse_ddl("""
        -- the users
        CREATE TABLE users (id INT PRIMARY KEY) WITH (kafka_topic='users');;
        /* clicks, keyed by user
           (several lines) */
        CREATE STREAM clicks (user_id STRING KEY, url STRING)
          WITH (kafka_topic='clicks', key_format='STRING');
        CREATE TABLE s.t (id INT PRIMARY KEY) WITH (kafka_topic='t')
    """)
    assert [(s.kind, s.name) for s in specs] == [
        ("table", "public.users"), ("table", "s.t"), ("stream", "public.clicks")]


def test_with_properties_map_to_the_yaml_fields() -> None:
    t = one("""CREATE TABLE shop.orders (
          customer INT, id BIGINT, total DECIMAL(10,2), v BIGINT, note STRING,
          PRIMARY KEY (customer, id))
        WITH (kafka_topic='orders', format='JSON', on_existing='VERSIONED',
              version_column='v', partial_update='total, v', shard_key='customer',
              replicated=false, null_key='DEAD_LETTER', on_error='skip',
              dead_letter_topic='orders.dlq', changes_topic='orders.changes',
              changes_format='debezium-avro', changes_columns='true')""")
    assert isinstance(t, TableSpec)
    assert (t.key_format, t.value_format) == ("json", "json")
    assert (t.on_existing, t.version_column) == ("versioned", "v")
    assert t.partial_update == ("total", "v") and t.shard_key == ("customer",)
    assert not t.replicated and t.null_key == "dead_letter" and t.on_error == "skip"
    assert t.dead_letter_topic == "orders.dlq"
    assert t.changes == ChangesSpec("orders.changes", "debezium-avro", True)
    t = one("CREATE TABLE d (code STRING PRIMARY KEY) WITH (kafka_topic='d', replicated=TRUE)")
    assert isinstance(t, TableSpec) and t.replicated and t.shard_key == ()


def test_soft_primary_key_property() -> None:
    t = one("CREATE TABLE t (id INT PRIMARY KEY, v STRING) "
            "WITH (kafka_topic='t', soft_primary_key=TRUE)")
    assert isinstance(t, TableSpec) and t.soft_primary_key and t.key_columns == ("id",)
    t = one("CREATE TABLE t (id INT PRIMARY KEY) WITH (kafka_topic='t', soft_primary_key=false)")
    assert isinstance(t, TableSpec) and not t.soft_primary_key


def test_stream_keys_and_retention() -> None:
    s = one("CREATE STREAM s (a STRING KEY, b INT KEY, c STRING) "
            "WITH (kafka_topic='s', key_format='JSON', max_events_per_key=25)")
    assert isinstance(s, StreamSpec)
    assert s.key_columns == ("a", "b") and s.max_events_per_key == 25
    assert not s.column("a").not_null  # stream keys may be null
    s = one("CREATE STREAM s (a STRING, b INT, KEY (b, a)) WITH (kafka_topic='s', "
            "key_format='json')")
    assert s.key_columns == ("b", "a")


def test_tokens_carry_offsets() -> None:
    toks = tokenize("CREATE  `x``y` 'it''s' 12 -- c\n(")
    assert [(t.kind, t.text, t.start) for t in toks] == [
        ("ident", "CREATE", 0), ("qident", "`x``y`", 8), ("string", "'it''s'", 15),
        ("number", "12", 23), ("punct", "(", 31), ("eof", "", 32)]


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("sql,needles", [
    ("CREATE TABLE t (id INT @@KEY) WITH (kafka_topic='t')",
     ("Column `id` is a `KEY` column: please use `PRIMARY KEY` for tables.",
      "Streams have KEYs, which have no uniqueness or NON NULL constraints.")),
    ("CREATE TABLE t (id INT NOT NULL @@KEY, v STRING) WITH (kafka_topic='t')",
     ("Column `id` is a `KEY` column: please use `PRIMARY KEY` for tables.",)),
    ("CREATE TABLE t (id INT, @@KEY (id)) WITH (kafka_topic='t')",
     ("Column `id` is a `KEY` column: please use `PRIMARY KEY` for tables.",)),
    ("CREATE TABLE t (a INT, `b c` INT, @@KEY (a, `b c`)) WITH (kafka_topic='t')",
     ("Columns `a`, `b c` are `KEY` columns: please use `PRIMARY KEY` for tables.",)),
    ("CREATE TABLE t (a INT, @@KEY (a,)) WITH (kafka_topic='t')",
     ("please use `PRIMARY KEY` for tables.",)),
    ("CREATE STREAM s (id INT @@PRIMARY KEY) WITH (kafka_topic='s')",
     ("Column `id` is a `PRIMARY KEY` column: please use `KEY` for streams.",
      "Tables have PRIMARY KEYs, which are unique and NON NULL.")),
    ("CREATE STREAM s (Id INT, v INT, @@PRIMARY KEY (Id)) WITH (kafka_topic='s')",
     ("Column `Id` is a `PRIMARY KEY` column: please use `KEY` for streams.",)),
    ("CREATE TABLE t (a INT PRIMARY KEY, b INT @@PRIMARY KEY) WITH (kafka_topic='t')",
     ("PRIMARY KEY is given more than once", "PRIMARY KEY (a, b)")),
    ("CREATE TABLE t (a INT PRIMARY KEY, @@PRIMARY KEY (a)) WITH (kafka_topic='t')",
     ("PRIMARY KEY is given more than once",)),
    ("CREATE STREAM s (a INT KEY, @@KEY (a)) WITH (kafka_topic='s')",
     ("KEY is given more than once",)),
    ("CREATE TABLE t (id @@INTEGR PRIMARY KEY) WITH (kafka_topic='t')",
     ("unknown type `INTEGR`", "Did you mean `INTEGER`?")),
    ("CREATE TABLE t (id INT PRIMARY KEY, d DECIMAL@@) WITH (kafka_topic='t')",
     ("DECIMAL needs a precision and scale",)),
    ("CREATE TABLE t (id INT PRIMARY KEY, d @@DECIMAL(50, 2)) WITH (kafka_topic='t')",
     ("DECIMAL(50, 2) needs 1 <= precision <= 38",)),
    ("CREATE TABLE t (id INT PRIMARY KEY, m MAP<@@INT, STRING>) WITH (kafka_topic='t')",
     ("map keys must be STRING",)),
    ("CREATE TABLE t (id INT PRIMARY KEY) WITH (kafka_topic='t', @@partitons=3)",
     ("unknown property `partitons`", "Did you mean `partitions`?", "Properties of a table")),
    ("CREATE TABLE t (id INT PRIMARY KEY) WITH (kafka_topic='t', @@value_fromat='JSON')",
     ("unknown property `value_fromat`", "Did you mean `value_format`?")),
    ("CREATE STREAM s (id INT KEY) WITH (kafka_topic='s', @@on_existing='ignore')",
     ("property `on_existing` applies to tables only",)),
    ("CREATE TABLE t (id INT PRIMARY KEY) WITH (kafka_topic='t', @@kafka_topic='u')",
     ("property `kafka_topic` is given twice",)),
    ("CREATE TABLE t (id INT PRIMARY KEY) WITH (kafka_topic='t', replicated=@@'maybe')",
     ("`replicated` must be true or false",)),
    ("CREATE TABLE t (id INT PRIMARY KEY) WITH (kafka_topic=@@'t",
     ("this ' is never closed: end the string with '",)),
    ("CREATE TABLE @@`t (id INT PRIMARY KEY) WITH (kafka_topic='t')",
     ("this ` is never closed: end the name with `",)),
    ("CREATE TABLE t (id INT PRIMARY KEY) @@! WITH (kafka_topic='t')",
     ("unexpected character `!`",)),
    ('CREATE TABLE @@"Users" (id INT PRIMARY KEY) WITH (kafka_topic=\'t\')',
     ("quote a name with backquotes (`Users`), text with single quotes ('text')",)),
    ("CREATE TABLE t (id INT PRIMARY KEY, b BYTES ENCODING base64@@-url-safe)\n"
     "  WITH (kafka_topic='t')",
     ("unexpected character `-` in `base64-url-safe`: write text in single quotes "
      "('base64-url-safe') or a name in backquotes (`base64-url-safe`)",)),
    ("CREATE TABLE t (id INT PRIMARY KEY @@WITH (kafka_topic='t')",
     ("expected `)` but found `WITH`",)),
    ("CREATE @@VIEW v AS SELECT 1", ("expected TABLE or STREAM but found `VIEW`",)),
    ("@@CREATE TABLE t (id INT PRIMARY KEY)",
     ("has no `topic`", "WITH (kafka_topic='<kafka topic>', ...)")),
    ("@@CREATE STREAM s (id INT) WITH (kafka_topic='s')", ("has no `key`", "mark a column `KEY`")),
    ("@@CREATE TABLE t (id INT) WITH (kafka_topic='t')",
     ("has no primary key", "PRIMARY KEY (column, ...)", "CREATE STREAM")),
    ("CREATE TABLE t (id INT PRIMARY KEY, v INT)\n  WITH (kafka_topic='t', shard_key='id, @@v')",
     ("shard key column `v` is not in the primary key",)),
    ("CREATE TABLE t (id INT PRIMARY KEY)\n"
     "  WITH (replicated=true, kafka_topic='t', @@shard_key='id')",
     ("table `public.t` is replicated (every worker keeps every partition), so it has no shard "
      "key: remove one of `shard_key` and `replicated=true`",)),
    ("CREATE TABLE t (id INT PRIMARY KEY)\n"
     "  WITH (@@SHARD_KEY='id', kafka_topic='t', REPLICATED=TRUE)",
     ("is replicated", "remove one of `shard_key` and `replicated=true`")),
    ("CREATE TABLE t (id INT PRIMARY KEY, j JSON, @@PRIMARY KEY (j))", ("more than once",)),
    ("CREATE TABLE t (id INT, j JSON, PRIMARY KEY (id, @@j)) WITH (kafka_topic='t')",
     ("column `j` has type json, which cannot be part of a key",)),
    ("CREATE TABLE t (id INT PRIMARY KEY) WITH (kafka_topic='t', value_format=@@'string')",
     ("`value_format: string` holds one value", "0 non-key columns")),
])
def test_ddl_errors(sql: str, needles: tuple[str, ...]) -> None:
    index = sql.index("@@")
    before = sql[:index]
    line, column = before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1
    diags = errors(sql.replace("@@", ""))
    at = [d for d in diags if (d.line, d.column) == (line, column)]
    assert at, f"nothing at {line}:{column}: " + "\n".join(str(d) for d in diags)
    assert any(all(n in d.message for n in needles) for d in at), "\n".join(map(str, at))


def test_parsing_resumes_after_a_bad_statement() -> None:
    diags = errors("CREATE TABLE a (id INTT PRIMARY KEY) WITH (kafka_topic='a');\n"
                   "CREATE TABLE b (id INT PRIMARY KEY) WITH (kafka_topic='b');\n"
                   "CREATE TABLE c (id INT PRIMARY KEY, PRIMARY KEY (id)) WITH (kafka_topic='c');\n"
                   "CREATE TABLE b (id INT PRIMARY KEY) WITH (kafka_topic='b2');\n")
    assert [(d.line, d.column) for d in diags] == [(1, 20), (3, 37), (4, 14)]
    assert "sql statement 1, Line: 1, Col: 20" in diags[0].message
    assert "sql statement 3, Line: 1, Col: 37" in diags[1].message
    assert "already declared as a table at line 2, column 14" in diags[2].message


def test_klip23_message_names_the_column_as_klip23_does() -> None:
    """KLIP-23's own example: `CREATE TABLE INPUT (VIN STRING KEY, ...)`."""
    (d,) = errors("CREATE TABLE INPUT (VIN STRING KEY, MAKE STRING) WITH (kafka_topic='input')")
    assert (d.line, d.column) == (1, 32)
    assert d.message.split("\n") == [
        "Column `VIN` is a `KEY` column: please use `PRIMARY KEY` for tables. "
        "(sql statement 1, Line: 1, Col: 32)",
        "Tables have PRIMARY KEYs, which are unique and NON NULL.",
        "Streams have KEYs, which have no uniqueness or NON NULL constraints."]
    (d,) = errors("CREATE STREAM s (X STRING PRIMARY KEY) WITH (kafka_topic='s')")
    assert d.message.split("\n") == [
        "Column `X` is a `PRIMARY KEY` column: please use `KEY` for streams. "
        "(sql statement 1, Line: 1, Col: 27)",
        "Tables have PRIMARY KEYs, which are unique and NON NULL.",
        "Streams have KEYs, which have no uniqueness or NON NULL constraints."]


# ----------------------------------------------------------------------------- in the file


@pytest.mark.parametrize("style", ["|", ">", "|-", "|2", '"', "'"])
def test_positions_point_into_the_yaml_file_in_every_scalar_style(style: str) -> None:
    sql = ("CREATE TABLE a (id INT PRIMARY KEY) WITH (kafka_topic='a');\n"
           "CREATE TABLE b (id INT PRIMARY KEY,\n"
           "                v NOSUCHTYPE) WITH (kafka_topic='b');\n"
           "CREATE STREAM c (id INT PRIMARY KEY) WITH (kafka_topic='c')")
    text = sql_file(sql, style)
    with pytest.raises(ConfigError) as info:
        load_catalog_text(text, "t.yaml")
    diags = info.value.diagnostics
    assert len(diags) == 2
    assert char_at(text, diags[0]).startswith("NOSUCHTYPE")
    assert char_at(text, diags[1]).startswith("PRIMARY KEY) WITH (kafka_topic=")


def test_ddl_and_yaml_mix_in_one_file() -> None:
    text = textwrap.dedent("""\
        tables:
          - {name: users, topic: users, columns: {id: int}, primary_key: [id]}
        sql: |
          CREATE STREAM clicks (user_id INT KEY, url STRING) WITH (kafka_topic='clicks');
          CREATE TABLE users (id INT PRIMARY KEY) WITH (kafka_topic='users2');
        """)
    with pytest.raises(ConfigError) as info:
        load_catalog_text(text, "t.yaml")
    (d,) = info.value.diagnostics
    assert (d.line, d.column) == (5, 16)
    assert "`public.users` is already declared as a table at line 2, column 12" in d.message
    cat = load_catalog_text(text.replace("TABLE users", "TABLE shop.users"), "t.yaml")
    assert [r.name for r in cat.relations] == ["public.users", "shop.users", "public.clicks"]

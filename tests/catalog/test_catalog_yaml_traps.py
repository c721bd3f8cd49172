"""Declaration files that YAML would read with another meaning than written, or that
used to crash the loader: each is an error at its line and column, never a traceback."""

from __future__ import annotations

import pytest

from materializer.catalog import load_catalog_text
from materializer.catalog.ddl import parse_ddl
from materializer.errors import ConfigError
from tests.support.catalog import USERS, errors_of, marked

PK = "    primary_key: [id]\n"

# (id, YAML with @@ at the expected position, substrings the message must contain)
TRAPS: list[tuple[str, str, tuple[str, ...]]] = [
    ("merge-into-itself", """
        tables:
          - &a {name: a, topic: t, columns: {id: int}, primary_key: [id], @@<<: *a}
        """, ("merges a mapping into itself",)),
    ("merge-into-itself-nested", """
        tables:
          - name: a
            topic: t
            columns: &c {id: int, @@<<: *c}
            primary_key: [id]
        """, ("merges a mapping into itself",)),
    ("octal-partitions", USERS + PK + "    partitions: @@010\n",
     ("`partitions`", "`010` as octal", "8")),
    ("base-60-partitions", USERS + PK + "    partitions: @@1:30\n",
     ("`partitions`", "base-60", "90")),
    ("octal-workers", "workers: @@010\n" + USERS + PK, ("`workers`", "octal")),
    ("binary-tag", USERS.replace("topic: users", "topic: @@!!binary dXNlcnM=") + PK,
     ("YAML tag `!!binary` is not supported",)),
    ("custom-tag", USERS.replace("topic: users", "topic: @@!env USERS_TOPIC") + PK,
     ("YAML tag `!env` is not supported", "${NAME}")),
    ("python-tag", USERS.replace("topic: users", "topic: @@!!python/object:os.system x")
     + PK, ("YAML tag `!!python/object:os.system`",)),
    ("set-tag-on-columns", USERS.replace("columns: {", "columns: @@!!set {") + PK,
     ("YAML tag `!!set`",)),
    ("control-character", USERS.replace("topic: users", "topic: us@@\x07ers") + PK,
     ("character #x0007 is not allowed",)),
    ("huge-decimal-precision",
     USERS.replace("name: string", 'n: "@@decimal(' + "9" * 5000 + ',2)"') + PK,
     ("decimal(999999...,2) needs 1 <= precision <= 38",)),
    ("fullwidth-digits-in-type",
     USERS.replace("name: string", 'n: "decimal(@@\uff11\uff10,2)"') + PK,
     ("unexpected",)),
]


@pytest.mark.parametrize("text,expected", [(t, e) for _, t, e in TRAPS],
                         ids=[case_id for case_id, _, _ in TRAPS])
def test_trap_is_an_error_at_its_place(text: str, expected: tuple[str, ...]) -> None:
    source, line, column = marked(text)
    diags = errors_of(source)
    assert any((d.line, d.column) == (line, column) and all(e in d.message for e in expected)
               for d in diags), diags


def test_too_deep_nesting_is_an_error_not_a_recursion_error() -> None:
    diags = errors_of("tables: " + "[" * 3000 + "]" * 3000 + "\n")
    assert "nests lists and mappings too deeply" in diags[0].message


def test_a_default_holding_a_variable_is_an_error_not_literal_text() -> None:
    text = USERS.replace("topic: users", "topic: ${TOPIC:-${OTHER}}") + PK
    with pytest.raises(ConfigError) as info:
        load_catalog_text(text, "tables.yaml", {"OTHER": "orders"})
    (d,) = info.value.diagnostics
    assert (d.line, d.column) == (3, 12)
    assert "holds another `${`" in d.message


def test_plain_numbers_hex_underscores_and_int_tags_still_read() -> None:
    for written, n in (("10", 10), ("0x10", 16), ("1_000", 1000), ("+4", 4),
                       ("!!int 4", 4)):
        cat = load_catalog_text(USERS + PK + f"    partitions: {written}\n", "t.yaml")
        assert cat.tables[0].partitions == n


@pytest.mark.parametrize("sql,expected", [
    ("CREATE TABLE t (id INT PRIMARY KEY, a " + "ARRAY<" * 9 + "INT" + ">" * 9
     + ") WITH (kafka_topic='t', key_format='json');", "nest at most 8 levels"),
    ("CREATE TABLE t (id INT PRIMARY KEY, a " + "ARRAY<" * 3000 + "INT" + ">" * 3000
     + ") WITH (kafka_topic='t', key_format='json');", "nest at most 8 levels"),
    ("CREATE TABLE t (id INT PRIMARY KEY, a DECIMAL(" + "9" * 5000
     + ", 1)) WITH (kafka_topic='t', key_format='json');", "too large"),
    ("CREATE TABLE t (id INT PRIMARY KEY) WITH (kafka_topic='t', key_format='json', "
     "partitions=" + "9" * 5000 + ");", "too large"),
], ids=["array-9-deep", "array-3000-deep", "huge-decimal", "huge-partitions"])
def test_ddl_limits_are_errors(sql: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_ddl(sql)
    assert any(expected in d.message for d in info.value.diagnostics), info.value.diagnostics


def test_ddl_array_8_deep_is_accepted_as_in_yaml() -> None:
    (spec,) = parse_ddl("CREATE TABLE t (id INT PRIMARY KEY, a " + "ARRAY<" * 8 + "INT"
                        + ">" * 8 + ") WITH (kafka_topic='t', key_format='json');")
    assert str(spec.columns[1].type).count("array") == 8


@pytest.mark.parametrize(("topic", "shown"), [("my topic", "contains ' '"),
                                               ("a/b", "contains '/'"), (".", "not a valid"),
                                               ("x" * 250, "250 characters long")])
@pytest.mark.parametrize("key", ["topic", "dead_letter_topic", "changes"])
def test_a_topic_name_kafka_refuses_is_refused_at_its_place(topic: str, shown: str,
                                                            key: str) -> None:
    """Kafka refuses such names only when a worker asks the broker, far from the file."""
    fields = {"topic": "users", "dead_letter_topic": "users.dlq", "changes": "{topic: users.ch}"}
    fields[key] = f'{{topic: "{topic}"}}' if key == "changes" else f'"{topic}"'
    text = ("tables:\n  - name: t\n    columns: {id: int, v: string}\n"
            "    primary_key: [id]\n" + "".join(f"    {k}: {v}\n" for k, v in fields.items()))
    with pytest.raises(ConfigError) as e:
        load_catalog_text(text, "f.yaml")
    line = 5 + list(fields).index(key)
    assert f"f.yaml: line {line}, column" in str(e.value) and shown in str(e.value), str(e.value)


@pytest.mark.parametrize("path", ['""', "' '", '"${STORE:-}"'])
def test_an_empty_store_path_is_refused_not_the_files_folder(path: str) -> None:
    text = f"store:\n  path: {path}\n" + USERS + PK
    with pytest.raises(ConfigError) as e:
        load_catalog_text(text, "f.yaml", {})
    assert "f.yaml: line 2, column" in str(e.value) and "`store.path` is empty" in str(e.value)


@pytest.mark.parametrize(("setting", "shown"), [
    ("partitions: 2147483648", "`partitions` must be at most 2147483647"),
    ("replicas: 32768", "`replicas` must be at most 32767")])
def test_a_partition_count_kafka_cannot_carry_is_refused_at_its_place(setting: str,
                                                                      shown: str) -> None:
    """It passed `check`; the Kafka client cannot send it (an OverflowError when the worker
    creates the topic)."""
    text = ("tables:\n  - name: t\n    topic: t\n    columns: {id: int}\n"
            f"    primary_key: [id]\n    {setting}\n")
    with pytest.raises(ConfigError) as e:
        load_catalog_text(text, "f.yaml")
    assert "f.yaml: line 6, column" in str(e.value) and shown in str(e.value), str(e.value)
    load_catalog_text(text.replace("2147483648", "2147483647").replace("32768", "32767"),
                      "f.yaml")

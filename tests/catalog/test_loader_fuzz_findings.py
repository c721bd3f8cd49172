"""What a mutation fuzzer of the declaration loader found: inputs that crashed it, that it
placed at the wrong line or column, or that it read with another meaning than written. Each
is now an error at its place (with how to fix it), or is read as written."""

from __future__ import annotations

import time

import pytest

from materializer.catalog import load_catalog_text
from materializer.errors import ConfigError
from tests.support.catalog import USERS, errors_of, marked

PK = "    primary_key: [id]\n"
TABLE = USERS + PK


def refused_at(text: str, *expected: str) -> None:
    source, line, column = marked(text)
    diags = errors_of(source)
    assert any((d.line, d.column) == (line, column) and all(e in d.message for e in expected)
               for d in diags), diags


# ------------------------------------------------------------------ crashes (tracebacks)


@pytest.mark.parametrize("value", ["'--3'", "'\u00b3'", "'\u0663'", "'-'", "''", "'3 '"])
def test_ddl_whole_number_properties_take_ascii_digits_only(value: str) -> None:
    # '--3' and '³' passed str.isdigit and crashed int(); '٣' was read as 3
    refused_at(f"""
        sql: CREATE TABLE t (id INT PRIMARY KEY, v INT) WITH (kafka_topic='t',
          partitions=@@{value});
        """, "`partitions` must be a whole number")


def test_ddl_retention_takes_ascii_digits_only() -> None:
    refused_at("""
        sql: CREATE STREAM s (id INT KEY, v INT) WITH (kafka_topic='s', key_format='JSON',
          max_events_per_key=@@'\u00b2');
        """, "`max_events_per_key` must be a whole number")


@pytest.mark.parametrize("setting,what", [
    ("partitions: @@!!int ''", "`partitions` must be a whole number"),
    ("partitions: @@!!int '_'", "`partitions` must be a whole number"),
    ("partitions: @@!!int '-'", "`partitions` must be a whole number"),
    ("replicated: @@!!bool 'abc'", "`replicated` must be true or false"),
    ("replicated: @@!!bool ''", "`replicated` must be true or false"),
    ("changes: {topic: c, columns: @@!!bool x}", "`changes.columns` must be true or false"),
])
def test_an_explicit_tag_on_a_value_that_is_not_of_it_is_an_error(setting: str,
                                                                     what: str) -> None:
    # KeyError / IndexError out of PyYAML's constructors before
    refused_at(TABLE + f"    {setting}\n", what)


def test_explicit_tags_that_fit_still_read() -> None:
    cat = load_catalog_text(TABLE + "    partitions: !!int '3'\n    replicated: !!bool 'true'\n",
                            "t.yaml")
    assert cat.tables[0].partitions == 3 and cat.tables[0].replicated


# ------------------------------------------------------------------ places


def test_lines_ended_by_cr_alone_are_counted() -> None:
    text = "tables:\r  - name: shop.users\r    topic: users\r    columns: {id: int, n!: int}\r" \
           "    primary_key: [id]\r"
    [d] = errors_of(text)
    assert (d.line, d.column) == (4, 25), d  # was line 1, column 84


def test_a_byte_order_mark_does_not_shift_the_first_line() -> None:
    text = "sql: CREATE TABLE t (id INT PRIMARY KEY, v TEXT) WITH (kafka_topic='t');\n"
    [plain] = errors_of(text)
    [with_bom] = errors_of("\ufeff" + text)
    assert (with_bom.line, with_bom.column) == (plain.line, plain.column) == (1, 44)


@pytest.mark.parametrize("ch", ["\x85", "\u2028", "\u2029"])
def test_yaml_11_line_breaks_that_editors_do_not_show_are_refused(ch: str) -> None:
    # PyYAML ends the comment there: `replicated: true` was read as a setting
    text = TABLE + f"    # replicated is off for now{ch}    replicated: true\n"
    diags = errors_of(text)
    assert [(d.line, d.column) for d in diags] == [(6, 32)], diags
    assert f"U+{ord(ch):04X}" in diags[0].message and "replace it with a newline" in \
        diags[0].message


def test_a_tab_in_the_indentation_says_to_use_spaces() -> None:
    refused_at(TABLE.replace("    topic", "@@\ttopic"), "YAML syntax error",
               "replace the tab with spaces")


def test_a_second_document_says_to_keep_one() -> None:
    refused_at(TABLE + "@@---\n" + TABLE, "one YAML document")


# ------------------------------------------------------------------ other meanings


@pytest.mark.parametrize("clause,at", [
    ("format='JSON', @@key_format='KAFKA'", "KEY_FORMAT"),
    ("value_format='AVRO', @@format='JSON'", "FORMAT"),
])
def test_ddl_format_with_key_or_value_format_is_refused_as_in_ksqldb(clause: str,
                                                                     at: str) -> None:
    # was accepted, the specific one silently winning over FORMAT
    refused_at(f"""
        sql: CREATE TABLE t (id INT PRIMARY KEY, v STRING) WITH (kafka_topic='t', {clause});
        """, f"`{at}`", "use FORMAT alone, or KEY_FORMAT and VALUE_FORMAT")


@pytest.mark.parametrize("prop", ["group.id: other", "auto.offset.reset: latest",
                                  "enable.partition.eof: false"])
def test_kafka_properties_the_worker_sets_itself_are_refused(prop: str) -> None:
    # group.id won over `group:` in the consumer only; the others were ignored
    refused_at(f"group: shop\nkafka:\n  @@{prop}\n" + TABLE, "set by the worker itself")


@pytest.mark.parametrize("group,shown", [
    ("@@''", "is empty"), ("@@' '", "is empty"), ("'@@ shop'", "starts or ends with a blank"),
    ("shop@@", None),
    ('"@@\\ufeffshop"', "U+FEFF"), ('"sh@@\\u200bop"', "U+200B"), ('"sh@@\\x01op"', "U+0001"),
])
def test_a_group_id_that_is_not_what_it_looks_like_is_refused(group: str,
                                                                shown: str | None) -> None:
    if shown is None:
        assert load_catalog_text(f"group: {group.replace('@@', '')}\n" + TABLE,
                                 "t.yaml").group == "shop"
        return
    refused_at(f"group: {group}\n" + TABLE, shown)


def test_trailing_blank_of_a_group_is_located() -> None:
    refused_at("group: \"shop@@ \"\n" + TABLE, "starts or ends with a blank")


def test_a_listen_port_past_65535_is_refused() -> None:
    refused_at("api: {listen: '127.0.0.1:@@99999'}\n" + TABLE, "not a TCP port")
    assert load_catalog_text("api: {listen: '127.0.0.1:65535'}\n" + TABLE, "t.yaml")


@pytest.mark.parametrize("text", [
    TABLE.replace("columns: {", "columns: @@!!str {"),
    TABLE.replace("primary_key: [id]", "primary_key: @@!!map [id]"),
    TABLE + "    partitions: @@!!seq 3\n",
    TABLE.replace("columns: {id: int", "columns: {@@!!seq id: int"),
])
def test_a_standard_tag_that_does_not_fit_its_node_is_refused(text: str) -> None:
    # `!!str {...}` was read as the mapping, `!!map [id]` as the list: the tag dropped
    refused_at(text, "does not fit")


def test_every_case_here_is_a_config_error_not_a_crash() -> None:
    with pytest.raises(ConfigError):
        load_catalog_text(TABLE + "    replicated: !!bool 'abc'\n", "t.yaml")


def test_merge_keys_of_merge_keys_take_linear_time() -> None:
    # each level merges the one before ten times: 10**40 expansions took forever (6 s at 6
    # levels, 500 bytes); every mapping is now expanded once
    lines = ["tables:", "  - name: t", "    topic: t", "    columns:",
             "      id: int", "      x0: &m0 {a: int}"]
    lines += [f"      x{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 10)}]}}"
              for i in range(1, 41)]
    lines += ["    primary_key: [id]", "  - name: u", "    topic: u",
              "    columns: {id: int, <<: *m40}", "    primary_key: [id]"]
    started = time.monotonic()
    diags = errors_of("\n".join(lines) + "\n")
    assert time.monotonic() - started < 5
    assert any(d.line == 6 and "column `x0` has no `type`" in d.message for d in diags), diags


def test_too_deep_nesting_is_placed_where_it_gets_too_deep() -> None:
    # was line 1, column 1 (a RecursionError caught), after seconds for 50,000 brackets
    diags = errors_of(TABLE + "    partitions: " + "[" * 50_000 + "\n")
    # the 62nd `[` opens level 65 (the file, `tables` and the table are levels 1-3)
    assert [(d.line, d.column) for d in diags] == [(6, 17 + 61)], diags
    assert "too deeply here (more than 64 levels)" in diags[0].message


def test_a_declaration_file_past_a_million_characters_is_refused_at_once() -> None:
    # PyYAML reads some 300,000 to a million characters a second: a 10 MB file took 17 s
    started = time.monotonic()
    diags = errors_of(TABLE + "# " + "x" * 10_000_000 + "\n")
    assert time.monotonic() - started < 2
    assert [(d.line, d.column) for d in diags] == [(6, 1_000_000 - len(TABLE) + 1)], diags
    assert "10,000," in diags[0].message and "past the 1,000,000" in diags[0].message


@pytest.mark.parametrize("text", [
    "tables:\n  - {name: 'users@@ ', topic: t, columns: {id: int}, primary_key: [id]}\n",
    "tables:\n  - {name: 'shop@@ .users', topic: t, columns: {id: int}, primary_key: [id]}\n",
    "sql: CREATE TABLE `users@@ ` (id INT PRIMARY KEY) WITH (kafka_topic='t');\n",
])
def test_a_relation_name_ending_with_a_blank_is_refused(text: str) -> None:
    # `users ` and `users` were two tables that look the same
    refused_at(text, "ends with a blank")

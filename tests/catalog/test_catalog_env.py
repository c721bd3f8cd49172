"""`${NAME}` and `${NAME:-default}` in the declaration file: substituted in values (never
keys) from the environment mapping the caller passes; `$$` is a literal `$`; an unset
variable is an error at its line and column."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from materializer.catalog import load_catalog, load_catalog_text
from materializer.catalog.yamlvars import substitute
from materializer.errors import ConfigError, Diagnostic
from materializer.specs import Catalog, StreamSpec, TableSpec
from tests.support.catalog import marked
from tests.support.workers import run_cli

BODY = """\
tables:
  - name: shop.users
    topic: users
    columns: {id: int, name: string}
    primary_key: [id]
"""


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def load(text: str, env: dict[str, str]) -> Catalog:
    return load_catalog_text(dedent(text), "tables.yaml", env)


def errors(text: str, env: dict[str, str]) -> list[Diagnostic]:
    with pytest.raises(ConfigError) as info:
        load(text, env)
    return info.value.diagnostics


def test_variables_in_values() -> None:
    cat = load("""
        kafka:
          bootstrap.servers: ${BROKER}:${PORT:-9092}
          client.id: pre-${ID}-post
        group: ${GROUP:-shop}
        store:
          path: /srv/${ENV}/data
        api:
          listen: 0.0.0.0:8080
          token_env: TOKEN
        tables:
          - name: ${SCHEMA}.users
            topic: "${ENV}.users"
            columns: {id: int, name: string}
            primary_key: [id]
        """, {"BROKER": "kafka", "ID": "w1", "ENV": "prod", "SCHEMA": "shop"})
    assert cat.kafka == (("bootstrap.servers", "kafka:9092"), ("client.id", "pre-w1-post"))
    assert cat.group == "shop"
    assert cat.store_path == "/srv/prod/data"
    assert cat.relation("shop.users").topic == "prod.users"


def test_default_applies_to_unset_and_empty_plain_reference_keeps_empty() -> None:
    text = "group: ${G:-fallback}\n" + BODY
    assert load(text, {}).group == "fallback"
    assert load(text, {"G": ""}).group == "fallback"
    assert load(text, {"G": "mine"}).group == "mine"
    assert load("group: x${E}y\n" + BODY, {"E": ""}).group == "xy"
    assert load("group: ${G:-}x\n" + BODY, {}).group == "x"


def test_dollar_escapes_and_lone_dollars() -> None:
    cat = load(dedent("""
        kafka:
          sasl.password: "pa$$${PW}$$"
          client.id: cost$5 and $ alone
        group: $$${NAME}
        """) + BODY, {"PW": "wo$$rd", "NAME": "g"})
    conf = dict(cat.kafka)
    assert conf["sasl.password"] == "pa$wo$$rd$"  # a value is not substituted twice
    assert conf["client.id"] == "cost$5 and $ alone"
    assert cat.group == "$g"


def test_unset_variable_is_an_error_at_its_place() -> None:
    text, line, column = marked(dedent("""
        kafka:
          bootstrap.servers: localhost:9092
          client.id: x-@@${CLIENT_ID}
        group: ${GROUP}
        """) + BODY)
    diags = errors(text, {})
    assert [(d.line, d.column) for d in diags] == [(line, column), (line + 1, 8)]
    assert "environment variable `CLIENT_ID` is not set" in diags[0].message
    assert "${CLIENT_ID:-default}" in diags[0].message
    assert "`GROUP`" in diags[1].message


def test_unset_variable_in_quoted_and_block_scalars() -> None:
    text, line, column = marked("""
        group: "a \\t b @@${G}"
        sql: |
          CREATE TABLE t (id INT PRIMARY KEY)
            WITH (kafka_topic='${TOPIC}', value_format='JSON');
        """)
    diags = errors(text, {})
    assert (diags[0].line, diags[0].column) == (line, column)
    assert (diags[1].line, diags[1].column) == (4, 24)
    assert "`TOPIC`" in diags[1].message


def test_malformed_references() -> None:
    for bad in ("${1X}", "${X", "${}", "${X:=d}", "${X-y}"):
        diags = errors(f"group: 'a{bad}'\n" + BODY, {"X": "x"})
        assert len(diags) == 1, bad
        assert (diags[0].line, diags[0].column) == (1, 10), bad
        assert "is not a variable reference" in diags[0].message, bad


def test_keys_are_not_substituted() -> None:
    diags = errors("${TOP}: x\n" + BODY, {"TOP": "group"})
    assert len(diags) == 1
    assert "${TOP}" in diags[0].message and (diags[0].line, diags[0].column) == (1, 1)


def test_plain_values_are_typed_after_substitution_quoted_stay_strings() -> None:
    text = """
        api:
          max_lookup_keys: ${N}
        tables:
          - name: t
            topic: t
            columns: {id: int}
            primary_key: [id]
            replicated: ${R:-false}
        """
    cat = load(text, {"N": "50", "R": "true"})
    assert cat.api.max_lookup_keys == 50
    t = cat.relation("t")
    assert isinstance(t, TableSpec) and t.replicated
    diags = errors(text.replace("${N}", '"${N}"'), {"N": "50"})
    assert "`api.max_lookup_keys` must be a whole number, not `50`" in diags[0].message
    # a variable that is empty in a plain scalar leaves nothing there, as `key:` would
    diags = errors(text, {"N": ""})
    assert "must be a single value, not nothing" in diags[0].message


def test_later_errors_in_a_substituted_value_point_into_the_file() -> None:
    text, line, column = marked("""
        streams:
          - name: clicks
            topic: clicks
            columns: {u: string, url: "@@${URL_TYPE}"}
            key: [u]
        """)
    diags = errors(text, {"URL_TYPE": "strng"})
    assert [(d.line, d.column) for d in diags] == [(line, column)]
    assert "unknown type 'strng'" in diags[0].message
    # characters written literally after a variable keep their own place
    text, line, column = marked("""
        streams:
          - name: clicks
            topic: clicks
            columns: {u: string, url: "${T} @@null"}
            key: [u]
        """)
    diags = errors(text, {"T": "string"})
    assert [(d.line, d.column) for d in diags] == [(line, column)]


def test_anchors_are_substituted_once() -> None:
    cat = load(dedent("""
        kafka:
          client.id: &c "a$$b${X}"
        group: *c
        """) + BODY, {"X": "$$"})
    assert cat.group == "a$b$$" and dict(cat.kafka)["client.id"] == "a$b$$"


def test_ddl_values_are_substituted() -> None:
    cat = load("""
        sql: |
          CREATE STREAM clicks (u STRING KEY, url STRING)
            WITH (kafka_topic='${ENV:-dev}.clicks', value_format='JSON');
        """, {})
    s = cat.relation("clicks")
    assert isinstance(s, StreamSpec) and s.topic == "dev.clicks"


def test_load_catalog_reads_no_environment_by_itself(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "tables.yaml"
    path.write_text("group: ${MAT_TEST_GROUP}\n" + BODY)
    monkeypatch.setenv("MAT_TEST_GROUP", "from-env")
    with pytest.raises(ConfigError, match="`MAT_TEST_GROUP` is not set"):
        load_catalog(str(path))
    assert load_catalog(str(path), env={"MAT_TEST_GROUP": "given"}).group == "given"


def test_substitute_maps_every_character() -> None:
    out, index, problems = substitute("a$$b${X}c${Y:-dd}", {"X": "xyz"})
    assert (out, problems) == ("a$bxyzcdd", [])
    assert index == [0, 1, 3, 4, 4, 4, 8, 9, 9]


def test_cli_check_uses_the_process_environment(tmp_path: Path) -> None:
    path = tmp_path / "tables.yaml"
    path.write_text("group: ${MAT_TEST_GROUP}\n" + BODY)
    done = run_cli("check", str(path), env={"MAT_TEST_GROUP": "from-env"})
    assert done.returncode == 0, done.stderr
    assert "group: from-env" in done.stdout
    done = run_cli("check", str(tmp_path / "other.yaml"))
    assert done.returncode == 2
    (tmp_path / "unset.yaml").write_text("store: {path: ./d}\ngroup: ${MAT_TEST_UNSET_VAR}\n"
                                         + BODY)
    done = run_cli("check", str(tmp_path / "unset.yaml"), env={})
    assert done.returncode == 2
    assert (f"{tmp_path / 'unset.yaml'}: line 2, column 8: environment variable "
            "`MAT_TEST_UNSET_VAR` is not set") in done.stderr

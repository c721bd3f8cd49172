"""Settings the loader accepted with a meaning other than the one written (h97's open items):
each is now refused at its line and column, saying how to fix it.

- `schema_registry:` keys the client does not know (typos) and `url`s that are not http(s);
- `store.map_size: 010` (read as 10 where every other whole number refuses YAML 1.1 octal);
- `api.token_env: ''` (names no variable);
- (DDL `CREATE OR REPLACE`, `CREATE SOURCE`, `IF NOT EXISTS` load as ksqlDB writes them
  and change nothing: checked here too);
- YAML 1.1 booleans `yes/no/on/off` (read as true/false; YAML 1.2 and the DDL disagree);
- `api.processes` without an upper bound (`workers:` and `run --processes` stop at 256).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from materializer.catalog import load_catalog_text
from materializer.specs import MAX_PROCESSES, REGISTRY_CLIENT_KEYS, Catalog
from tests.support.catalog import USERS, errors_of, marked

ROOT = Path(__file__).resolve().parents[2]
TABLE = USERS + "    primary_key: [id]\n"
AVRO = TABLE + "    value_format: avro\n"


def refused_at(text: str, *expected: str) -> str:
    """Assert a diagnostic at the `@@` mark holding every `expected` text; its message."""
    source, line, column = marked(text)
    diags = errors_of(source)
    hits = [d for d in diags if (d.line, d.column) == (line, column)
            and all(e in d.message for e in expected)]
    assert hits, diags
    return hits[0].message


def loads(text: str) -> Catalog:
    return load_catalog_text(textwrap.dedent(text).lstrip("\n"), "tables.yaml")


# ------------------------------------------------------------------ schema_registry


@pytest.mark.parametrize("key,closest", [("basic.auth.user.inf", "basic.auth.user.info"),
                                         ("ssl.ca.locaton", "ssl.ca.location"),
                                         ("urll", "url"), ("max_retries", "max.retries")])
def test_a_misspelt_registry_setting_is_refused_with_the_known_ones(key: str,
                                                                    closest: str) -> None:
    message = refused_at(AVRO + f"schema_registry:\n  url: http://r:8081\n  @@{key}: x\n",
                         f"unknown key `{key}` in `schema_registry`",
                         f"Did you mean `{closest}`?")
    for known in ("url", "path", *REGISTRY_CLIENT_KEYS):
        assert known in message


def test_a_misspelt_key_of_a_registry_kept_as_files_is_refused_as_unknown() -> None:
    refused_at(AVRO + "schema_registry:\n  path: reg\n  @@pth: reg\n",
               "unknown key `pth`", "Did you mean `path`?")


def test_every_client_setting_the_readme_names_is_accepted() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("**Registries**: ")
    named = set(re.findall(r"`([a-z.]+)`", readme[start:start + 1500])) & REGISTRY_CLIENT_KEYS
    assert named == REGISTRY_CLIENT_KEYS  # the README names every one
    settings = "".join(f"  {k}: '1'\n" for k in sorted(named))
    cat = loads(AVRO + "schema_registry:\n  url: http://r:8081\n" + settings)
    assert cat.schema_registry is not None
    assert {k for k, _ in cat.schema_registry.config} == REGISTRY_CLIENT_KEYS


@pytest.mark.parametrize("value,mark", [
    ("not a url", 0), ("'5'", 1), ("5", 0), ("localhost:8081", 0), ("ftp://r:8081", 0),
    ("http://", 0), ("http://r:99999", 0), ("http://r:80x", 0), ("http://r:8081?x=1", 0),
    ("'http://a:8081,ftp://b:8081'", 15), ("'http://a:8081, b:8081'", 16),
    ("'http://u:secret@r:8081#f'", 1)])
def test_a_registry_url_that_is_not_http_is_refused_at_the_bad_one(value: str,
                                                                   mark: int) -> None:
    text = AVRO + "schema_registry:\n  url: " + value[:mark] + "@@" + value[mark:] + "\n"
    message = refused_at(text, "`schema_registry.url`")
    assert "secret" not in message
    assert "write http://host:port" in message or "remove it" in message


@pytest.mark.parametrize("value", ["''", "' , '"])
def test_an_empty_registry_url_is_refused(value: str) -> None:
    refused_at(AVRO + "schema_registry:\n  url: @@" + value + "\n",
               "`schema_registry.url` is empty")


@pytest.mark.parametrize("value", ["http://r:8081", "https://r", "http://r:8081/",
                                   "'http://a:8081, https://u:p@b:8081/'",
                                   "'http://[::1]:8081,,http://r:8081/base'"])
def test_registry_urls_the_client_takes_still_load(value: str) -> None:
    cat = loads(AVRO + f"schema_registry:\n  url: {value}\n")
    assert cat.schema_registry is not None and cat.schema_registry.url == value.strip("'")


# ------------------------------------------------------------------ store.map_size


@pytest.mark.parametrize("value,how", [("010", "octal"), ("0_10", "octal"),
                                       ("1:30", "base-60")])
def test_map_size_refuses_what_yaml_11_reads_otherwise_as_other_numbers_do(value: str,
                                                                          how: str) -> None:
    size = refused_at(TABLE + f"store:\n  map_size: @@{value}\n", "`store.map_size`", how)
    other = refused_at(TABLE + f"standby_replicas: @@{value}\n", "`standby_replicas`", how)
    assert size.removeprefix("`store.map_size`") == other.removeprefix("`standby_replicas`")


@pytest.mark.parametrize("value,size", [("68719476736", 68719476736), ("64GiB", 64 << 30),
                                        ("'512 MB'", 512 * 10**6), ("10", 10),
                                        ("1_000", 1000)])
def test_map_sizes_still_load(value: str, size: int) -> None:
    assert loads(TABLE + f"store:\n  map_size: {value}\n").map_size == size


# ------------------------------------------------------------------ api.token_env


@pytest.mark.parametrize("listen", ["0.0.0.0:8080", "127.0.0.1:8080"])
@pytest.mark.parametrize("value", ["''", "' '", "${TOKEN_VAR:-}"])
def test_an_empty_token_env_is_refused(listen: str, value: str) -> None:
    message = refused_at(TABLE + f"api:\n  listen: {listen}\n  token_env: @@{value}\n",
                         "`api.token_env` is empty", "leave `token_env` out")
    assert "names no environment variable" in message
    source, _, _ = marked(TABLE + f"api:\n  listen: {listen}\n  token_env: @@{value}\n")
    assert len(errors_of(source)) == 1  # not also "needs a token" at `listen`


def test_a_non_loopback_listen_without_token_env_is_still_refused() -> None:
    refused_at(TABLE + "api:\n  listen: @@0.0.0.0:8080\n", "is not a loopback address")
    cat = loads(TABLE + "api:\n  listen: 0.0.0.0:8080\n  token_env: MAT_TOKEN\n")
    assert cat.api.token_env == "MAT_TOKEN"


# ------------------------------------------------------------------ DDL


@pytest.mark.parametrize("head", ["CREATE OR REPLACE TABLE", "create or replace table",
                                  "CREATE SOURCE TABLE", "CREATE SOURCE STREAM",
                                  "CREATE TABLE IF NOT EXISTS", "CREATE STREAM if not exists"])
def test_ksqldb_statement_forms_load_as_plain_declarations(head: str) -> None:
    """`OR REPLACE`, `SOURCE` and `IF NOT EXISTS` are taken as ksqlDB writes them and
    change nothing (the file is the whole truth; every relation is read-only)."""
    key = "PRIMARY KEY" if "TABLE" in head.upper() else "KEY"
    plain = "CREATE TABLE" if "TABLE" in head.upper() else "CREATE STREAM"
    written = load_catalog_text(f"sql: |\n  {head} t (id INT {key}) WITH (kafka_topic='t', "
                                "key_format='INT');\n", "t.yaml")
    same = load_catalog_text(f"sql: |\n  {plain} t (id INT {key}) WITH (kafka_topic='t', "
                             "key_format='INT');\n", "t.yaml")
    assert written.relations == same.relations


# ------------------------------------------------------------------ booleans


@pytest.mark.parametrize("value", ["yes", "no", "on", "off", "Yes", "NO", "On", "OFF", "y"])
@pytest.mark.parametrize("setting,where", [
    ("replicated", "    replicated: {v}\n"),
    ("changes.columns", "    changes: {{topic: users.changes, columns: {v}}}\n"),
    ("changes.schemas", "    changes: {{topic: users.changes, format: debezium-json, "
                        "schemas: {v}}}\n")])
def test_yaml_11_booleans_are_refused_in_every_boolean_setting(value: str, setting: str,
                                                               where: str) -> None:
    message = refused_at(TABLE + where.format(v="@@" + value), f"`{setting}`",
                         "true or false")
    if value != "y":  # `y` is text to YAML 1.1 too: the plain "must be true or false"
        assert "YAML 1.1" in message


@pytest.mark.parametrize("value,expected", [("true", True), ("false", False), ("True", True),
                                            ("FALSE", False)])
def test_true_and_false_in_any_case_still_load(value: str, expected: bool) -> None:
    (table,) = loads(TABLE + f"    replicated: {value}\n").tables
    assert table.replicated is expected


# ------------------------------------------------------------------ api.processes


def test_api_processes_is_bounded_as_workers_are() -> None:
    over = MAX_PROCESSES + 1
    refused_at(TABLE + f"api:\n  processes: @@{over}\n",
               f"`api.processes` must be at most {MAX_PROCESSES}, not {over}")
    refused_at(TABLE + f"workers: @@{over}\n",
               f"`workers` must be at most {MAX_PROCESSES}, not {over}")
    assert loads(TABLE + f"api:\n  processes: {MAX_PROCESSES}\n").api.processes == MAX_PROCESSES


# ------------------------------------------------------------------ the CLI


def test_materializer_check_reports_each_at_its_place(tmp_path: Path) -> None:
    path = tmp_path / "tables.yaml"
    path.write_text(
        "schema_registry:\n"                         # 1
        "  url: http://r:8081,r2:8081\n"             # 2: the second URL
        "  basic.auth.user.inf: u:p\n"               # 3
        "store:\n  map_size: 010\n"                  # 4, 5
        "api:\n  listen: 0.0.0.0:8080\n"             # 6, 7
        "  token_env: ''\n  processes: 1000\n"       # 8, 9
        "tables:\n  - name: users\n    topic: users\n"             # 10-12
        "    columns: {id: int}\n    primary_key: [id]\n"          # 13, 14
        "    replicated: yes\n"                                    # 15
        "sql: |\n  CREATE SOURCE TABLE t (id INT PRIMARY KEY) WITH (kafka_topic='t');\n",
        encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "materializer", "check", str(path)],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out
    places = re.findall(r"tables\.yaml: line (\d+), column (\d+): [^`\n]*(`[^`]*`)", out)
    assert [(int(line), int(col), what) for line, col, what in places] == [
        (2, 22, "`schema_registry.url`"), (3, 3, "`basic.auth.user.inf`"),
        (5, 13, "`store.map_size`"), (8, 14, "`api.token_env`"), (9, 14, "`api.processes`"),
        (15, 17, "`replicated`")], out  # line 17's CREATE SOURCE loads (as ksqlDB's)

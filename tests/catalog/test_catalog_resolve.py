"""The declaration file (SPEC §3): valid files resolve to the specs they declare, and
`materializer check` prints them (exit 0) or every problem (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from materializer.catalog import describe, load_catalog, load_catalog_text
from materializer.columns import ColumnType
from materializer.errors import ConfigError
from materializer.specs import ChangesSpec, Column, StreamSpec, TableSpec
from tests.support.catalog import SPEC_EXAMPLE, USERS_OK, load

# ----------------------------------------------------------------------------- good files


def test_spec_example_resolves(tmp_path: Path) -> None:
    path = tmp_path / "tables.yaml"
    path.write_text(SPEC_EXAMPLE)
    cat = load_catalog(str(path))
    assert cat.kafka == (("bootstrap.servers", "localhost:9092"),)
    assert cat.group == "shop-materializer"
    assert cat.store_path == str(tmp_path / "data")
    assert cat.schema_registry is not None and cat.schema_registry.url == "http://localhost:8081"
    assert cat.api.listen == "127.0.0.1:8080"
    users = cat.relation("shop.users")
    assert isinstance(users, TableSpec)
    assert users.columns == (Column("id", ColumnType("int"), True),
                             Column("name", ColumnType("string")),
                             Column("age", ColumnType("long")),
                             Column("email", ColumnType("string")))
    assert users.primary_key == ("id",)
    assert (users.key_format, users.value_format) == ("int", "json")
    assert users.changes == ChangesSpec("shop.users.changes")
    assert users.location.line == 14 and users.location.file == str(path)
    clicks = cat.relation("clicks")
    assert isinstance(clicks, StreamSpec)
    assert clicks.name == "public.clicks" and clicks.key_columns == ("user_id",)
    assert clicks.column("user_id").not_null is False
    assert clicks.max_events_per_key == 1000
    orders = cat.relation("shop.orders")
    assert isinstance(orders, TableSpec)
    assert orders.primary_key == ("customer_id", "order_id")
    assert (orders.key_format, orders.value_format) == ("json", "avro")
    assert [t.name for t in cat.tables] == ["shop.users", "shop.orders"]


def test_defaults() -> None:
    cat = load_catalog_text("streams:\n  - {name: s, topic: t, columns: {k: int}, key: k}\n",
                            "/etc/mat/tables.yaml")
    assert cat.group == "materializer"
    assert cat.store_path == "/etc/mat/data"
    assert cat.default_schema == "public"
    assert cat.schema_registry is None
    assert cat.api.listen == "127.0.0.1:8080" and cat.api.max_lookup_keys == 1000
    (s,) = cat.streams
    assert (s.key_format, s.value_format, s.on_error, s.dead_letter_topic) == \
        ("json", "json", "fail", None)


def test_table_rules_are_carried_into_the_spec() -> None:
    cat = load("""
        kafka: {bootstrap.servers: "k:9092", enable.idempotence: true, linger.ms: 5}
        schema_registry: {url: "https://r:8081", basic.auth.user.info: "u:p"}
        tables:
          - name: shop.orders
            topic: orders
            columns: {customer: int, id: long, total: "decimal(10,2) not null",
                      updated: timestamp, note: string}
            primary_key: [customer, id]
            shard_key: customer
            on_existing: versioned
            version_column: updated
            partial_update: [total, updated]
            replicated: false
            null_key: dead_letter
            on_error: skip
            dead_letter_topic: orders.dlq
            changes: {topic: orders.changes, format: debezium-avro, columns: true}
        """, "/srv/conf/tables.yaml")
    assert isinstance(cat, object)
    from materializer.specs import Catalog  # noqa: PLC0415

    assert isinstance(cat, Catalog)
    assert cat.kafka == (("bootstrap.servers", "k:9092"), ("enable.idempotence", "true"),
                         ("linger.ms", "5"))
    assert cat.schema_registry is not None
    assert cat.schema_registry.url == "https://r:8081"
    assert cat.schema_registry.config == (("basic.auth.user.info", "u:p"),)
    (t,) = cat.tables
    assert t.shard_key == ("customer",)
    assert t.on_existing == "versioned" and t.version_column == "updated"
    assert t.partial_update == ("total", "updated")
    assert t.replicated is False
    assert (t.null_key, t.on_error, t.dead_letter_topic) == ("dead_letter", "skip", "orders.dlq")
    assert t.changes == ChangesSpec("orders.changes", "debezium-avro", True)
    assert t.column("total") == Column("total", ColumnType("decimal", 10, 2), True)
    assert t.column("customer").not_null and t.column("id").not_null
    assert not t.column("note").not_null


def test_store_settings_and_map_size_units(tmp_path: Path) -> None:
    cat = load_catalog_text(USERS_OK.replace("STORE", "store: {path: /var/lib/m, "
                                             "map_size: 2GiB}"), str(tmp_path / "t.yaml"))
    assert cat.store_path == "/var/lib/m" and cat.map_size == 2 * 2**30
    cat = load_catalog_text(USERS_OK.replace("STORE", "store: {path: d, map_size: 1048576}"),
                            str(tmp_path / "t.yaml"))
    assert cat.store_path == str(tmp_path / "d") and cat.map_size == 1048576


def test_relative_paths_resolve_against_the_file_not_the_cwd(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "t.yaml").write_text(USERS_OK.replace(
        "STORE", "store: {path: ./state}\nschema_registry: {path: ../schemas}"))
    monkeypatch.chdir(tmp_path)
    cat = load_catalog(os.path.join("conf", "t.yaml"))
    assert cat.store_path == str(conf / "state")
    assert cat.schema_registry is not None
    assert cat.schema_registry.path == str(tmp_path / "schemas")
    assert cat.source == os.path.join("conf", "t.yaml")


def test_single_string_key_and_merge_keys() -> None:
    cat = load("""
        tables:
          - &base
            name: a
            topic: a
            columns: {id: int, v: string}
            primary_key: id
            on_error: skip
          - <<: *base
            name: b
            topic: b
        """)
    from materializer.specs import Catalog  # noqa: PLC0415

    assert isinstance(cat, Catalog)
    a, b = cat.tables
    assert b.name == "public.b" and b.topic == "b"
    assert (b.columns, b.primary_key, b.on_error) == (a.columns, a.primary_key, a.on_error)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_catalog(str(tmp_path / "nope.yaml"))
    (d,) = info.value.diagnostics
    assert (d.line, d.column) == (1, 1) and "cannot read" in d.message


def test_describe_lists_every_rule() -> None:
    cat = load("""
        schema_registry: {url: "http://r:8081", basic.auth.user.info: "user:secret"}
        api: {listen: "0.0.0.0:9000", token_env: MAT_TOKEN}
        tables:
          - name: shop.orders
            topic: orders
            columns: {customer: int, id: long, total: "decimal(10,2)", v: long}
            primary_key: [customer, id]
            shard_key: [customer]
            on_existing: versioned
            version_column: v
            partial_update: [total, v]
            on_error: dead_letter
            dead_letter_topic: dlq
            changes: {topic: orders.changes}
          - name: shop.tags
            topic: tags
            columns: {id: int, tag: string}
            soft_primary_key: [id]
            replicated: true
        streams:
          - name: clicks
            topic: clicks
            columns: {u: string, url: string}
            key: [u]
            retention: {max_events_per_key: 50}
        """)
    from materializer.specs import Catalog  # noqa: PLC0415

    assert isinstance(cat, Catalog)
    text = describe(cat)
    for needle in ("table shop.orders", "topic: orders", "customer  int NOT NULL PRIMARY KEY",
                   "total     decimal(10,2)", "primary key: (customer, id)",
                   "shard_key: (customer)", "on_existing: versioned, version_column v",
                   "partial_update: total, v", "replicated: yes", "null_key: drop",
                   "on_error: dead_letter", "dead_letter_topic: dlq",
                   "changes: orders.changes (debezium-json)", "formats: key json, value json",
                   "soft primary key: (id)", "stream public.clicks", "u    string KEY",
                   "retention: 50 events per key", "api: 0.0.0.0:9000, token from $MAT_TOKEN",
                   "2 table(s), 1 stream(s)"):
        assert needle in text, needle
    assert "secret" not in text


# ----------------------------------------------------------------------------- the CLI


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-m", "materializer", "check", str(path)],
                          capture_output=True, text=True, timeout=60, env=env, cwd=root)


def test_cli_check_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "tables.yaml"
    path.write_text(SPEC_EXAMPLE)
    done = _check(path)
    assert done.returncode == 0, done.stderr
    for needle in ("table shop.users", "table shop.orders", "stream public.clicks",
                   "customer_id  int NOT NULL PRIMARY KEY", "changes: shop.users.changes"):
        assert needle in done.stdout


def test_cli_check_invalid_file(tmp_path: Path) -> None:
    path = tmp_path / "tables.yaml"
    path.write_text(SPEC_EXAMPLE.replace("    primary_key: [id]\n", "    key: [id]\n")
                    .replace("columns: {user_id: string,", "columns: {user_id: strin,"))
    done = _check(path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert f"{path}: line 17, column 5: `key` declares KEY columns" in done.stderr
    assert f"{path}: line 27, column 24: column `user_id`: unknown type 'strin'" in done.stderr

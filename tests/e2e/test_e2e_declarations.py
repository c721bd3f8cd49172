"""One declaration file mixing YAML tables, a YAML stream and DDL statements, materialized
at once by a real `materializer run` on a real broker."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from materializer.store import Store
from tests.support.workers import (
    applied_offsets,
    caught_up,
    j,
    materialize,
    run_cli,
    start_worker,
    unique,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.integration


def test_mixed_yaml_and_ddl_file(session_broker: DevBroker, tmp_path: Path) -> None:
    t = {name: session_broker.create_topic(unique(name), partitions=3)
         for name in ("orders", "first", "prices", "profiles", "clicks", "views")}
    body = f"""\
default_schema: shop
tables:
  - name: orders                       # composite key, overwrite
    topic: {t["orders"]}
    columns: {{customer_id: int, order_id: int, total: double}}
    primary_key: [customer_id, order_id]
    key_format: json
  - name: first_seen                   # ignore: the first row per key wins
    topic: {t["first"]}
    columns: {{id: string, city: string}}
    primary_key: [id]
    key_format: string
    on_existing: ignore
  - name: prices                       # versioned: greater or equal version wins
    topic: {t["prices"]}
    columns: {{sku: string, price: "decimal(10,2)", version: long}}
    primary_key: [sku]
    key_format: string
    on_existing: versioned
    version_column: version
streams:
  - name: clicks
    topic: {t["clicks"]}
    columns: {{user_id: string, url: string}}
    key: [user_id]
    key_format: string
sql: |
  CREATE TABLE profiles (id INT PRIMARY KEY, name STRING, email STRING, age INT)
    WITH (kafka_topic='{t["profiles"]}', key_format='JSON', value_format='JSON',
          partial_update='email');
  CREATE STREAM analytics.views (page STRING KEY, ms BIGINT)
    WITH (kafka_topic='{t["views"]}', key_format='STRING', value_format='JSON');
"""
    cfg = write_config(tmp_path / "mixed.yaml", session_broker, body)
    check = run_cli("check", str(cfg))
    assert check.returncode == 0, check.stderr
    for name in ("shop.orders", "shop.first_seen", "shop.prices", "shop.profiles", "shop.clicks",
                 "analytics.views"):
        assert name in check.stdout

    conf = session_broker.kafka_config()
    ends = {
        "shop.orders": produce_records(conf, t["orders"], [
            (j({"customer_id": c, "order_id": o}), j({"total": c + o / 100}))
            for c in (7, 3, 12) for o in (30, 1001, 2)] + [
            (j({"customer_id": 7, "order_id": 2}), j({"total": 99.5}))]),
        "shop.first_seen": produce_records(conf, t["first"], [
            (b"a", j({"city": "Oslo"})), (b"a", j({"city": "Rome"})), (b"b", j({"city": "Lima"})),
            (b"b", None), (b"b", j({"city": "Kyiv"}))]),
        "shop.prices": produce_records(conf, t["prices"], [
            (b"x", j({"price": "1.50", "version": 2})), (b"x", j({"price": "9.99", "version": 1})),
            (b"x", j({"price": "2.25", "version": 2})), (b"y", j({"price": 3, "version": 5})),
            (b"y", j({"price": "4.00", "version": 6}))]),
        "shop.profiles": produce_records(conf, t["profiles"], [
            (j(1), j({"id": 1, "name": "Ann", "email": "a@x", "age": 30})),
            (j(1), j({"id": 1, "email": "ann@new", "name": "IGNORED", "age": 99})),
            (j(2), j({"id": 2, "email": "bo@x", "name": "Bo"}))]),
        "shop.clicks": produce_records(conf, t["clicks"], [
            (b"u1", j({"url": "/a"})), (b"u1", j({"url": "/b"})), (None, j({"url": "/anon"})),
            (b"u1", None), (b"u1", j({"url": "/c"}))]),
        "analytics.views": produce_records(conf, t["views"], [
            (b"home", j({"ms": 5})), (b"home", j({"ms": 7}))]),
    }
    materialize(cfg, ends)

    with Store.open(tmp_path / "data", default_schema="shop") as store:
        orders = store.table("orders")
        assert [(r["customer_id"], r["order_id"]) for r in orders.scan(prefix=(7,))] == \
            [(7, 2), (7, 30), (7, 1001)]
        assert orders.get((7, 2))["total"] == 99.5
        assert [r["customer_id"] for r in orders.scan()][:3] == [3, 3, 3]
        first = store.table("first_seen")
        assert first.get("a") == {"id": "a", "city": "Oslo"}
        assert first.get("b") == {"id": "b", "city": "Kyiv"}  # accepted again after a delete
        prices = store.table("prices")
        assert str(prices.get("x")["price"]) == "2.25"  # a tie wins, an older version loses
        assert str(prices.get("y")["price"]) == "4.00"
        profiles = store.table("profiles")
        # the source updates only `email`: a new key starts with nulls elsewhere, and the
        # name and age a record carries are not applied
        assert profiles.get(1) == {"id": 1, "name": None, "email": "ann@new", "age": None}
        assert profiles.get(2) == {"id": 2, "name": None, "email": "bo@x", "age": None}
        clicks = store.stream("clicks")
        assert clicks.events("u1", limit=10) == [
            {"user_id": "u1", "url": "/c"}, None, {"user_id": "u1", "url": "/b"},
            {"user_id": "u1", "url": "/a"}]
        assert clicks.events("u1", limit=2) == [{"user_id": "u1", "url": "/c"}, None]
        assert clicks.events(None, limit=5) == [{"user_id": None, "url": "/anon"}]
        views = store.stream("analytics.views")
        assert [e and e["ms"] for e in views.events("home")] == [7, 5]
    got = run_cli("get", str(cfg), "clicks", "u1", "--limit", "1")
    assert got.returncode == 0 and json.loads(got.stdout) == {"user_id": "u1", "url": "/c"}
    scan = run_cli("scan", str(cfg), "orders", "--prefix", "12")
    assert [json.loads(x)["order_id"] for x in scan.stdout.splitlines()] == [2, 30, 1001]


def test_replicated_table_is_complete_in_every_worker_of_a_group(session_broker: DevBroker,
                                                                 tmp_path: Path) -> None:
    """Two workers in one group split an ordinary table's partitions, and each keeps every
    partition of a `replicated: true` table (a GlobalKTable)."""
    facts, dims = (session_broker.create_topic(unique(n), partitions=4) for n in ("f", "d"))
    body = f"""\
tables:
  - name: facts
    topic: {facts}
    columns: {{id: int, v: string}}
    primary_key: [id]
  - name: countries
    topic: {dims}
    columns: {{code: string, name: string}}
    primary_key: [code]
    key_format: string
    replicated: true
"""
    group = unique("shared")
    conf = session_broker.kafka_config()
    fact_ends = produce_records(conf, facts, [(j(i), j({"v": f"v{i}"})) for i in range(400)])
    dim_ends = produce_records(conf, dims, [(c.encode(), j({"name": f"country {c}"}))
                                            for c in ("no", "pe", "jp", "ua", "it", "ke")])
    cfgs = [write_config(tmp_path / f"w{i}" / "t.yaml", session_broker, body, group=group)
            for i in range(2)]
    workers = [start_worker(c) for c in cfgs]
    try:
        for cfg, w in zip(cfgs, workers, strict=True):
            wait_until(caught_up(cfg.parent / "data", "public.countries", dim_ends), 90,
                       "the replicated table in every worker", w)

        def facts_split() -> bool:  # together, the two workers hold every fact once
            owned: dict[int, int] = {}
            for cfg in cfgs:
                for p, nxt in applied_offsets(cfg.parent / "data", "public.facts").items():
                    if nxt >= fact_ends.get(p, 0) and fact_ends.get(p, 0) > 0:
                        owned[p] = owned.get(p, 0) + 1
            return set(owned) == set(fact_ends)
        wait_until(facts_split, 90, "the group to cover every fact partition")
        for cfg in cfgs:  # read while the workers run: a stopped member's store is refused
            with Store.open(cfg.parent / "data") as store:
                assert store.table("countries").get("jp") == {"code": "jp",
                                                              "name": "country jp"}
                assert len(store.table("countries")) == 6
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
            w.wait(30)

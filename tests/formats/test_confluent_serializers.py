"""Records written by confluent-kafka's own serializers against a registry (AvroSerializer,
JSONSerializer; ProtobufSerializer in test_protobuf.py), keyed by Kafka's primitive
serializers as ksqlDB writes them, declared by ksqlDB DDL without KEY_FORMAT: the tables
equal the source rows."""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

AVRO_SCHEMA = """{"type": "record", "name": "Order", "namespace": "shop", "fields": [
  {"name": "TOTAL", "type": {"type": "bytes", "logicalType": "decimal", "precision": 38,
                             "scale": 2}},
  {"name": "PLACED", "type": {"type": "long", "logicalType": "timestamp-micros"}},
  {"name": "NOTE", "type": ["null", "string"], "default": null}]}"""
JSON_SCHEMA = """{"$schema": "http://json-schema.org/draft-07/schema#", "title": "Click",
  "type": "object", "properties": {"url": {"type": "string"}, "n": {"type": "integer"}},
  "required": ["url", "n"]}"""


def test_avro_and_json_serializer_records_with_kafka_keys_materialize(
        session_broker: Any, tmp_path: Path) -> None:
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.schema_registry.json_schema import JSONSerializer
    from confluent_kafka.serialization import (
        IntegerSerializer,
        MessageField,
        SerializationContext,
        StringSerializer,
    )

    from connectors.producer import produce_records
    from materializer.store import Store
    from tests.support.registry_server import RegistryServer
    from tests.support.workers import materialize, unique, write_config

    orders, clicks = unique("orders"), unique("clicks")
    for t in (orders, clicks):
        session_broker.create_topic(t, partitions=2)
    with RegistryServer() as reg:
        client = SchemaRegistryClient({"url": reg.url})
        avro = AvroSerializer(client, AVRO_SCHEMA)
        js = JSONSerializer(JSON_SCHEMA, client)
        int_key, str_key = IntegerSerializer(), StringSerializer()
        want_orders: dict[int, dict[str, Any]] = {}
        order_records: list[tuple[bytes | None, bytes | None]] = []
        for n in range(40):
            k = n % 13
            key = int_key(k, SerializationContext(orders, MessageField.KEY))
            if n % 9 == 8:
                order_records.append((key, None))
                want_orders.pop(k, None)
                continue
            row = {"TOTAL": decimal.Decimal(f"{n * 10**33 + n}.{n:02d}"),
                   "PLACED": dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(
                       microseconds=n * 1_000_001),
                   "NOTE": None if n % 4 else f"note {n}"}
            order_records.append((key, avro(row, SerializationContext(orders,
                                                                      MessageField.VALUE))))
            want_orders[k] = {"id": k, "total": row["TOTAL"], "placed": row["PLACED"],
                              "note": row["NOTE"]}
        click_records = []
        want_clicks: dict[str, dict[str, Any]] = {}
        for n in range(30):
            user = f"u{n % 7}"
            value = {"url": f"/p/{n}", "n": n}
            click_records.append((str_key(user, SerializationContext(clicks, MessageField.KEY)),
                                  js(value, SerializationContext(clicks, MessageField.VALUE))))
            want_clicks[user] = {"user_id": user, **value}
        conf = session_broker.kafka_config()
        ends_orders = produce_records(conf, orders, order_records)
        ends_clicks = produce_records(conf, clicks, click_records)
        cfg = write_config(tmp_path / "t.yaml", session_broker, f"""\
schema_registry: {{url: '{reg.url}'}}
sql: |
  CREATE TABLE shop.orders (id INT PRIMARY KEY, total DECIMAL(38, 2), placed TIMESTAMP,
                            note STRING)
    WITH (kafka_topic='{orders}', value_format='AVRO');
  CREATE TABLE shop.last_click (user_id STRING PRIMARY KEY, url STRING, n BIGINT)
    WITH (kafka_topic='{clicks}', value_format='JSON_SR');
""")
        materialize(cfg, {"shop.orders": ends_orders, "shop.last_click": ends_clicks})
    with Store.open(tmp_path / "data") as store:
        t = store.table("shop.orders")
        assert len(t) == len(want_orders)
        assert {k: t.get(k) for k in want_orders} == want_orders
        c = store.table("shop.last_click")
        assert {k: c.get(k) for k in want_clicks} == want_clicks and len(c) == len(want_clicks)

"""`kafka:` properties the worker sets itself are accepted when their value says what the
worker does anyway (a file written for another Kafka client keeps loading:
`auto.offset.reset: earliest` is common), and `group.id` stands for an absent `group:`;
a value that disagrees is refused at its place (tests/catalog/test_loader_fuzz_findings.py)."""

from __future__ import annotations

import pytest

from materializer.catalog.load import load_catalog_text
from materializer.errors import ConfigError

TABLE = """tables:
  - name: t
    topic: t
    columns: {id: int, v: string}
    primary_key: [id]
"""


@pytest.mark.parametrize("prop", ["auto.offset.reset: earliest", "auto.offset.reset: smallest",
                                  "auto.offset.reset: error", "enable.partition.eof: true",
                                  "enable.partition.eof: 'True'", "group.id: shop"])
def test_agreeing_values_load_and_are_not_passed_on(prop: str) -> None:
    cat = load_catalog_text(f"group: shop\nkafka:\n  bootstrap.servers: b:9092\n  {prop}\n"
                            + TABLE, "t.yaml")
    assert cat.group == "shop"
    assert prop.split(":")[0] not in cat.kafka_config


def test_group_id_stands_for_an_absent_group() -> None:
    cat = load_catalog_text("kafka:\n  bootstrap.servers: b:9092\n  group.id: orders-view\n"
                            + TABLE, "t.yaml")
    assert cat.group == "orders-view"
    assert "group.id" not in cat.kafka_config


def test_a_blank_group_id_standing_for_group_is_refused() -> None:
    with pytest.raises(ConfigError, match="group.id"):
        load_catalog_text("kafka:\n  bootstrap.servers: b:9092\n  group.id: ' x'\n" + TABLE,
                          "t.yaml")


@pytest.mark.parametrize("prop", ["auto.offset.reset: latest", "enable.partition.eof: false",
                                  "group.id: other"])
def test_disagreeing_values_are_refused(prop: str) -> None:
    with pytest.raises(ConfigError, match="set by the worker itself"):
        load_catalog_text(f"group: shop\nkafka:\n  bootstrap.servers: b:9092\n  {prop}\n"
                          + TABLE, "t.yaml")

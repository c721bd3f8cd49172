"""`schema_registry:` client settings are checked at load, at their line and column: the
Confluent cache settings this client does not implement (`cache.capacity`,
`cache.latest.ttl.sec`) and unknown ones are refused (before: accepted and ignored, or an
unknown one refused only when `run` built the client, with no position)."""

from __future__ import annotations

import pytest

from materializer.catalog.load import load_catalog_text
from materializer.errors import ConfigError

BASE = """\
kafka: {bootstrap.servers: "k:9092"}
schema_registry:
  url: http://localhost:8081
  %s
tables:
  - name: t
    topic: t
    columns: {id: int, v: string}
    primary_key: [id]
    value_format: avro
"""


@pytest.mark.parametrize("setting", ["cache.capacity: 100", "cache.latest.ttl.sec: 60"])
def test_a_cache_setting_the_client_does_not_implement_is_refused_at_its_line(
        setting: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_catalog_text(BASE % setting, "/srv/tables.yaml")
    text = str(e.value)
    name = setting.split(":")[0]
    assert "/srv/tables.yaml: line 4, column 3" in text, text
    assert f"`schema_registry.{name}`" in text and "does not implement" in text, text


def test_an_unknown_setting_is_refused_at_load_and_the_known_ones_load() -> None:
    with pytest.raises(ConfigError) as e:
        load_catalog_text(BASE % "basic.auth.userinfo: a:b", "/srv/tables.yaml")
    assert "line 4, column 3" in str(e.value) and "basic.auth.user.info" in str(e.value)
    cat = load_catalog_text(BASE % "unknown.id.wait.ms: 5000", "/srv/tables.yaml")
    assert cat.schema_registry is not None
    assert cat.schema_registry.config == (("unknown.id.wait.ms", "5000"),)

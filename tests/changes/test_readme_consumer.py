"""README's change-topic consumer ("Change events"), run as it is written, reproduces the table.

The consumer is the README's own code block, executed with confluent_kafka's Consumer
replaced by one that hands it the change topic's messages: after a source topic deleted and
created again (its offsets start over) and `rebuild`, a key deleted before the recreation
and inserted again after it must be in the consumer's mirror.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from materializer.store import Store
from tests.support.change_topics import drain_all
from tests.support.readme_consumer import run_readme_consumer
from tests.support.workers import materialize, run_cli, unique, wait_until, write_config

pytestmark = pytest.mark.integration
TABLE = """
tables:
  - name: shop.users
    topic: {topic}
    columns: {{id: int, name: string}}
    primary_key: [id]
    key_format: json
    value_format: json
    on_reset: rebuild
    changes: {{topic: {topic}.changes}}
"""


def _table(data: Path) -> dict[Any, Any]:
    with Store.open(data) as store:
        return {r["id"]: r for r in store.table("shop.users").scan(json_form=True)}


def test_readme_consumer_after_a_recreated_source_topic(session_broker: DevBroker,
                                                        tmp_path: Path) -> None:
    conf = session_broker.kafka_config()
    topic = session_broker.create_topic(unique("users"), partitions=1)
    cfg = write_config(tmp_path / "t.yaml", session_broker, TABLE.format(topic=topic))
    # key 1 inserted, updated 40 times, then deleted: its last position is offset 41
    old = [(b"1", json.dumps({"name": f"v{i}"}).encode()) for i in range(41)]
    old += [(b"1", None), (b"2", b'{"name": "two"}')]
    ends = produce_records(conf, topic, old)
    materialize(cfg, {"shop.users": ends})

    admin = AdminClient({"bootstrap.servers": session_broker.bootstrap})
    admin.delete_topics([topic])[topic].result(15)
    wait_until(lambda: topic not in admin.list_topics(timeout=5).topics, 15, "the deletion")
    session_broker.create_topic(topic, partitions=1)
    # the new topic: key 2 again; rebuild (its snapshot: an r event for key 2 at offset 0)
    produce_records(conf, topic, [(b"2", b'{"name": "two"}')])
    done = run_cli("rebuild", str(cfg), "shop.users", timeout=180)
    assert done.returncode == 0, done.stderr
    # then key 1 inserted again, at offset 1 of the new topic (it was deleted at offset 41)
    ends = produce_records(conf, topic, [(b"1", b'{"name": "back"}')])
    materialize(cfg, {"shop.users": ends})
    table = _table(tmp_path / "data")
    assert table == {1: {"id": 1, "name": "back"}, 2: {"id": 2, "name": "two"}}
    msgs = drain_all(conf, f"{topic}.changes")
    assert run_readme_consumer(msgs) == table

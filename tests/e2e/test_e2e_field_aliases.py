"""Avro field `aliases` through a real `materializer run` on a real broker (probe h93): a
producer renames `email` to `mail` (`"aliases": ["email"]`) in a new schema version. The
`email` column must hold `mail`'s value, under `partial_update` too (it kept the stale
value of the previous version, and a new key got NULL); a schema where two fields name
`email` by their aliases is dead-lettered as `ambiguous_alias`, never guessed."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path
from typing import cast

import pytest
from confluent_kafka import Consumer, TopicPartition

from connectors.producer import produce_records
from connectors.registry import FileRegistry
from materializer.devbroker import DevBroker
from materializer.formats.wire import avro_encoder
from materializer.store import Store
from tests.support.workers import caught_up, j, start_worker, unique, wait_until, write_config

pytestmark = pytest.mark.integration


def _record(*fields: dict[str, object]) -> dict[str, object]:
    return {"type": "record", "name": "Profile", "namespace": "shop", "fields": list(fields)}


NAME = {"name": "name", "type": "string"}
V1 = _record(NAME, {"name": "email", "type": ["null", "string"]})
V2 = _record(NAME, {"name": "mail", "type": ["null", "string"], "aliases": ["email"]})
AMBIGUOUS = _record(NAME, {"name": "mail", "type": ["null", "string"], "aliases": ["email"]},
                    {"name": "old_mail", "type": ["null", "string"], "aliases": ["email"]})


def _dead_letters(broker: DevBroker, topic: str, count: int) -> list[dict[str, str]]:
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("dlq"),
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    out: list[dict[str, str]] = []
    try:
        def more() -> bool:
            for m in c.consume(10, 0.5):
                if m.error() is None:
                    headers = cast(list[tuple[str, bytes]], m.headers() or [])
                    out.append({k: v.decode() for k, v in headers})
            return len(out) >= count
        wait_until(more, 60, "the dead letters")
    finally:
        c.close()
    return out


def test_a_renamed_field_fills_its_column_through_its_alias(session_broker: DevBroker,
                                                            tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("profiles"), partitions=1)
    dlq = session_broker.create_topic(unique("profiles.dlq"), partitions=1)
    cfg = write_config(tmp_path / "p.yaml", session_broker, f"""\
schema_registry:
  path: {tmp_path / 'registry'}
tables:
  - name: profiles
    topic: {topic}
    columns: {{id: int, name: string, email: string}}
    primary_key: [id]
    key_format: json
    value_format: avro
    partial_update: [name, email]
    on_error: dead_letter
    dead_letter_topic: {dlq}
""")
    registry = FileRegistry(tmp_path / "registry")
    v1 = avro_encoder(registry, "profiles-value", V1)
    v2 = avro_encoder(registry, "profiles-value", V2)
    ambiguous = avro_encoder(registry, f"other-{uuid.uuid4().hex[:6]}", AMBIGUOUS)
    ends = produce_records(session_broker.kafka_config(), topic, [
        (j(1), v1({"name": "Ann", "email": "a@x"})),
        (j(1), v2({"name": "Ann", "mail": "ann@new"})),     # renamed: the column takes it
        (j(2), v2({"name": "Bo", "mail": "bo@x"})),         # a new key
        (j(3), v1({"name": "Cy", "email": "c@x"})),
        (j(3), v2({"name": "Cy", "mail": None})),           # held as null: set to null
        (j(4), ambiguous({"name": "Di", "mail": "d@x", "old_mail": "old@x"})),
    ])
    worker = start_worker(cfg)
    try:
        wait_until(caught_up(tmp_path / "data", "public.profiles", ends), 90,
                   "profiles to catch up", worker)
    finally:
        worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0

    with Store.open(tmp_path / "data") as store:
        profiles = store.table("profiles")
        assert profiles.get(1) == {"id": 1, "name": "Ann", "email": "ann@new"}
        assert profiles.get(2) == {"id": 2, "name": "Bo", "email": "bo@x"}
        assert profiles.get(3) == {"id": 3, "name": "Cy", "email": None}
        assert profiles.get(4) is None
    [letter] = _dead_letters(session_broker, dlq, 1)
    assert letter["materializer.reason"] == "ambiguous_alias"
    assert "column 'email'" in letter["materializer.error"]
    assert "'mail'" in letter["materializer.error"]
    assert "'old_mail'" in letter["materializer.error"]

"""A snapshot (`op: r` for every row) also deletes from the change topic the keys the table
no longer holds: rows deleted while `changes:` was turned off left their last c/u event in
the (compacted) change topic, so a fold of it kept rows the table had deleted."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from materializer.store import Store
from tests.support.workers import (
    caught_up,
    j,
    read_topic,
    start_worker,
    unique,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.integration

BODY = """\
tables:
  - name: t
    topic: {topic}
    columns: {{id: long, name: string}}
    primary_key: [id]
    key_format: json
    value_format: json
{changes}"""


def _run(broker: DevBroker, cfg: Path, topic: str, changes: str | None,
         records: list[tuple[bytes, bytes | None]], events: int = 0
         ) -> list[tuple[int, int, bytes | None, bytes | None]]:
    """Run a worker until caught up and, with `changes`, until the change topic holds
    `events` messages (read back while it runs: the snapshot is staged once caught up)."""
    write_config(cfg, broker, BODY.format(
        topic=topic, changes=f"    changes: {{topic: {changes}}}\n" if changes else ""),
        group="g-" + topic)
    ends = produce_records(broker.kafka_config(), topic, records)
    worker = start_worker(cfg)
    try:
        wait_until(caught_up(cfg.parent / "data", "public.t", ends), 90, "t to catch up",
                   worker)
        got = read_topic(broker, changes, {0: events}, timeout=15) if changes else []
    finally:
        worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    return got


def test_keys_deleted_while_changes_were_off_are_tombstoned(session_broker: DevBroker,
                                                           tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("src"), partitions=1)
    changes = session_broker.create_topic(unique("src.changes"), partitions=1)
    cfg = tmp_path / "c.yaml"
    _run(session_broker, cfg, topic, changes, [(j(1), j({"name": "a"})), (j(2), j({"name": "b"}))],
         events=2)
    _run(session_broker, cfg, topic, None, [(j(1), None), (j(2), j({"name": "b2"}))])
    # c, c, then the snapshot: r (2), key 1's d and tombstone (absent before), r (3)
    events = _run(session_broker, cfg, topic, changes, [(j(3), j({"name": "c"}))], events=6)
    fold: dict[int, object] = {}
    for _, _, k, v in events:
        key = json.loads(k or b"null")["id"]
        after = v and json.loads(v)["after"]
        if after is None:
            fold.pop(key, None)
        else:
            fold[key] = after
    with Store.open(tmp_path / "data") as store:
        table = {r["id"]: r for r in store.table("t").scan()}
    assert table == {2: {"id": 2, "name": "b2"}, 3: {"id": 3, "name": "c"}}
    assert fold == table  # key 1 was still {"id": 1, "name": "a"} in the change topic
    assert (events[-2][2], events[-2][3]) == (b'{"id":1}', None)
    assert events[-1][2] == b'{"id":3}'  # the snapshot's "last" r event ends it


RICH = """\
{registry}tables:
  - name: t
    topic: {topic}
    columns: {{id: long, amt: "decimal(8,2)", at: {{type: timestamp, encoding: us}},
              tags: "array<string>", b64: {{type: "decimal(8,2)", encoding: base64}}}}
    primary_key: [id]
{changes}"""


def _decoder(fmt: str, registry: str | None) -> Any:
    """(key bytes, value bytes) -> (key, event) as a consumer of `fmt` reads them."""
    if fmt == "avro":
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.schema_registry.avro import AvroDeserializer
        from confluent_kafka.serialization import MessageField, SerializationContext

        client = SchemaRegistryClient({"url": registry})
        keys, values = AvroDeserializer(client), AvroDeserializer(client)

        def avro(k: bytes, v: bytes, topic: str) -> tuple[Any, Any]:
            return (keys(k, SerializationContext(topic, MessageField.KEY))["id"],
                    values(v, SerializationContext(topic, MessageField.VALUE)))
        return avro

    def plain(k: bytes, v: bytes, topic: str) -> tuple[Any, Any]:
        key, ev = json.loads(k), json.loads(v)
        if fmt == "schemas":
            key, ev = key["payload"], ev["payload"]
        return key["id"], ev
    return plain


@pytest.mark.parametrize("fmt", ["json", "schemas", "avro"])
def test_keys_deleted_while_changes_were_off_get_a_d_event(session_broker: DevBroker,
                                                           tmp_path: Path, fmt: str) -> None:
    """A consumer that folds the events and skips tombstones (the README's, Flink's
    debezium-json) deleted nothing: the snapshot sent key 1's tombstone alone, and such
    a consumer kept {"id": 1, ...} for ever. Now a `d` event whose `before` is the row the
    topic last announced precedes the tombstone, at the position of its partition's last
    applied offset."""
    from tests.support.registry_server import RegistryServer

    changes_spec = {"json": "", "schemas": ", schemas: true",
                    "avro": ", format: debezium-avro"}[fmt]
    topic = session_broker.create_topic(unique("src"), partitions=1)
    changes = session_broker.create_topic(unique("src.changes"), partitions=1)
    cfg = tmp_path / "c.yaml"
    with RegistryServer() as srv:
        registry = f"schema_registry:\n  url: {srv.url}\n"

        def run(on: bool, records: list[tuple[bytes, bytes | None]], events: int = 0
                ) -> list[tuple[int, int, bytes | None, bytes | None]]:
            write_config(cfg, session_broker, RICH.format(
                registry=registry, topic=topic,
                changes=(f"    changes: {{topic: {changes}{changes_spec}}}\n" if on else "")),
                group="g-" + topic)
            ends = produce_records(session_broker.kafka_config(), topic, records)
            worker = start_worker(cfg)
            try:
                wait_until(caught_up(cfg.parent / "data", "public.t", ends), 90,
                           "t to catch up", worker)
                got = read_topic(session_broker, changes, {0: events}, timeout=15) if on else []
            finally:
                worker.send_signal(signal.SIGTERM)
            assert worker.wait(30) == 0
            return got

        row1 = {"amt": "12.30", "at": "2024-01-02T03:04:05.123456Z", "tags": ["a", None],
            "b64": "BM4="}  # 12.30
        run(True, [(j(1), j(row1)), (j(2), j({"amt": "1"}))], events=2)  # offsets 0, 1
        run(False, [(j(1), None), (j(2), j({"amt": "2"}))])  # offsets 2, 3
        # c, c, then the snapshot: r (2), key 1's d and tombstone, r (3) marked "last"
        events = run(True, [(j(3), j({"amt": "3"}))], events=6)  # offset 4
        decode = _decoder(fmt, srv.url)
        mirror: dict[Any, Any] = {}
        applied: dict[Any, tuple[int, int]] = {}
        ops = []
        for _, _, k, v in events:
            if v is None:  # tombstones only matter to compaction
                continue
            key, ev = decode(k or b"", v, changes)
            ops.append((key, ev["op"], ev["source"]["snapshot"]))
            pos = (ev["source"]["partition"], ev["source"]["offset"])
            if ev["source"]["snapshot"] == "false" and applied.get(key, (-1, -1)) >= pos:
                continue
            applied[key] = pos
            if ev["op"] == "d":
                mirror.pop(key, None)
            else:
                mirror[key] = ev["after"]
    # no event marked part of the snapshot after the one marked "last"
    assert ops == [(1, "c", "false"), (2, "c", "false"), (2, "r", "true"), (1, "d", "true"),
                   (3, "r", "last")]
    key, d = decode(events[-3][2] or b"", events[-3][3] or b"", changes)
    assert d["before"] == events_after(decode, events[0], changes)  # the row announced last
    assert d["after"] is None
    assert (d["source"]["partition"], d["source"]["offset"], d["source"]["snapshot"]) == (
        0, 4, "true")
    assert events[-2][3] is None and events[-2][2] == events[-3][2]
    with Store.open(tmp_path / "data") as store:
        assert sorted(r["id"] for r in store.table("t").scan()) == sorted(mirror) == [2, 3]


def events_after(decode: Any, event: tuple[int, int, bytes | None, bytes | None],
                 topic: str) -> Any:
    return decode(event[2] or b"", event[3] or b"", topic)[1]["after"]

"""A JSON value that is `null` (the four bytes a producer's `json.dumps(None)` writes) is a
null value (SPEC §2, §4.3), as Kafka Connect's JsonConverter and ksqlDB read it: it deletes
a table's row, with its delete event and tombstone, and is a stream's event with no value;
under the default `on_error: fail` it used to stop the worker as `not_an_object`. Through a
real `materializer run` on a real broker; `json_sr` (the JSON after the wire header) too."""

from __future__ import annotations

import json
import signal
from pathlib import Path

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

SR = b"\x00\x00\x00\x00\x07"  # the Confluent wire header of json_sr (the id is not looked up)


def test_a_json_null_value_deletes_the_row_and_is_a_stream_event_without_value(
        session_broker: DevBroker, tmp_path: Path) -> None:
    users = session_broker.create_topic(unique("users"), partitions=1)
    framed = session_broker.create_topic(unique("users-sr"), partitions=1)
    clicks = session_broker.create_topic(unique("clicks"), partitions=1)
    changes = session_broker.create_topic(unique("users.changes"), partitions=1)
    cfg = write_config(tmp_path / "t.yaml", session_broker, f"""\
tables:
  - name: users
    topic: {users}
    columns: {{id: int, name: string}}
    primary_key: [id]
    changes: {{topic: {changes}}}
  - name: users_sr
    topic: {framed}
    columns: {{id: int, name: string}}
    primary_key: [id]
    value_format: json_sr
streams:
  - name: clicks
    topic: {clicks}
    columns: {{user_id: string, url: string}}
    key: [user_id]
    key_format: string
""")
    conf = session_broker.kafka_config()
    ends = {
        "public.users": produce_records(conf, users, [
            (j(1), j({"name": "Ann"})), (j(1), b"null"), (j(2), j({"name": "Bo"})),
            (j(3), b" null\n")]),
        "public.users_sr": produce_records(conf, framed, [
            (j(1), SR + j({"name": "Ann"})), (j(1), SR + b"null"), (j(2), SR + j({"name": "Bo"}))]),
        "public.clicks": produce_records(conf, clicks, [
            (b"u1", j({"url": "/a"})), (b"u1", b"null")]),
    }
    worker = start_worker(cfg)
    try:
        for relation, relation_ends in ends.items():
            wait_until(caught_up(tmp_path / "data", relation, relation_ends), 90,
                       f"{relation} to catch up", worker)
        events = read_topic(session_broker, changes, {0: 4})  # c 1, d 1, tombstone, c 2
    finally:
        worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0

    with Store.open(tmp_path / "data") as store:
        for name in ("users", "users_sr"):
            view = store.table(name)
            assert view.get(1) is None and view.get(2) == {"id": 2, "name": "Bo"}
            counted = {k for p in view.partition_stats() for k in p["counters"]}
            assert counted <= {"applied", "unchanged"}, counted  # nothing rejected
        assert store.table("users").get(3) is None  # a delete of an absent key: no event
        assert store.stream("clicks").events("u1") == [None, {"user_id": "u1", "url": "/a"}]
    got = [(json.loads(k), v and json.loads(v)) for _, _, k, v in events]
    assert [(k["id"], v and v["op"]) for k, v in got] == [(1, "c"), (1, "d"), (1, None), (2, "c")]
    assert got[1][1]["before"] == {"id": 1, "name": "Ann"} and got[1][1]["after"] is None

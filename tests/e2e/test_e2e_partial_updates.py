"""Partial updates through a real `materializer run` on a real broker: two producers each
write their own columns of one topic; a column a record lacks keeps its stored value, and
the change events say exactly what changed."""

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


def test_partial_records_keep_the_columns_they_lack(session_broker: DevBroker,
                                                    tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("profiles"), partitions=1)
    changes = session_broker.create_topic(unique("profiles.changes"), partitions=1)
    cfg = write_config(tmp_path / "p.yaml", session_broker, f"""\
tables:
  - name: profiles
    topic: {topic}
    columns: {{id: int, name: string not null, email: string, v: long}}
    primary_key: [id]
    on_existing: versioned
    version_column: v
    partial_update: [name, email, v]
    on_error: skip
    changes: {{topic: {changes}, columns: true}}
""")
    ends = produce_records(session_broker.kafka_config(), topic, [
        (j(1), j({"name": "Ann", "email": "a@x", "v": 1})),
        (j(1), j({"email": "ann@new", "v": 2})),        # the email writer
        (j(1), j({"name": "Anna", "v": 3})),            # the name writer
        (j(1), j({"email": "stale", "v": 2})),          # older: ignored
        (j(1), j({"email": None, "v": 4})),             # explicitly null
        (j(2), j({"email": "bo@x", "v": 1})),           # new key without its NOT NULL name
        (j(3), j({"name": "Cy", "v": 1})),
        (j(3), None),
    ])
    worker = start_worker(cfg)
    try:
        wait_until(caught_up(tmp_path / "data", "public.profiles", ends), 90,
                   "profiles to catch up", worker)
        events = read_topic(session_broker, changes, {0: 7})  # 6 events, 1 tombstone
    finally:
        worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0

    with Store.open(tmp_path / "data") as store:
        profiles = store.table("profiles")
        assert profiles.get(1) == {"id": 1, "name": "Anna", "email": None, "v": 4}
        assert profiles.get(2) is None and profiles.get(3) is None
    got = [(json.loads(k or b"null"), v and json.loads(v)) for _, _, k, v in events]
    seen = [(k["id"], v["op"], v["before"], v["after"], v.get("changed"))
            for k, v in got if v is not None]
    assert seen == [
        (1, "c", None, {"id": 1, "name": "Ann", "email": "a@x", "v": 1}, None),
        (1, "u", {"id": 1, "name": "Ann", "email": "a@x", "v": 1},
         {"id": 1, "name": "Ann", "email": "ann@new", "v": 2}, ["email", "v"]),
        (1, "u", {"id": 1, "name": "Ann", "email": "ann@new", "v": 2},
         {"id": 1, "name": "Anna", "email": "ann@new", "v": 3}, ["name", "v"]),
        (1, "u", {"id": 1, "name": "Anna", "email": "ann@new", "v": 3},
         {"id": 1, "name": "Anna", "email": None, "v": 4}, ["email", "v"]),
        (3, "c", None, {"id": 3, "name": "Cy", "email": None, "v": 1}, None),
        (3, "d", {"id": 3, "name": "Cy", "email": None, "v": 1}, None, None),
    ]
    assert got[-1] == ({"id": 3}, None)  # the tombstone after the delete

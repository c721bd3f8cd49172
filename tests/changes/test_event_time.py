"""TIMESTAMP='col' (YAML `timestamp_column`): the column is the event time of change events
(`source.ts_ms`, where Debezium carries the source's time) and the time stream events are
stored and ordered by; a delete, a null value or a null column falls back to the Kafka
record's timestamp."""

from __future__ import annotations

import datetime as dt
import io
import json
import signal
from dataclasses import replace
from pathlib import Path
from typing import Any

import fastavro
import pytest

from connectors.registry import FileRegistry
from materializer.changes.avro_envelope import AvroEnvelope
from materializer.changes.envelope import JsonEnvelope
from materializer.changes.event import Change
from materializer.ingest.relation import open_relation
from materializer.specs import ChangesSpec, StreamSpec, TableSpec
from materializer.store import Store
from materializer.testing import FakeRecord
from tests.support.api import columns

RECORD_TS = 1_700_000_000_000
AT = dt.datetime(2021, 3, 4, 5, 6, 7, 890123, tzinfo=dt.UTC)
AT_MS = 1_614_834_367_890  # AT in milliseconds (the microseconds cut)


def orders(ts_column: str | None, fmt: str = "debezium-json") -> TableSpec:
    return TableSpec(name="shop.orders", topic="orders",
                     columns=columns({"id": "int", "at": "timestamp", "at_ms": "long",
                                      "note": "string"}),
                     key_columns=("id",), key_format="json", value_format="json",
                     timestamp_column=ts_column,
                     changes=ChangesSpec(topic="orders.changes", format=fmt))  # type: ignore[arg-type]


def apply_changes(spec: TableSpec, tmp_path: Path, values: list[Any]) -> list[Change]:
    """Apply JSON values for key 1 (None: a tombstone) as the worker does; the changes."""
    rel = open_relation(spec, str(tmp_path / "data"), map_size=1 << 26)
    recs = [FakeRecord(b"1", None if v is None else json.dumps(v).encode(), i, RECORD_TS + i)
            for i, v in enumerate(values)]
    out = rel.apply({0: recs})[0]
    assert out.fatal is None, out.fatal
    return out.changes


VALUES = [{"at": AT.isoformat(), "at_ms": 42, "note": "c"},  # c: the column
          {"at": None, "at_ms": 43, "note": "u"},              # u, column null: the record's
          None]                                                # d: the record's


@pytest.mark.parametrize(("column", "want"), [
    ("at", [AT_MS, RECORD_TS + 1, RECORD_TS + 2]),
    ("at_ms", [42, 43, RECORD_TS + 2]),
    (None, [RECORD_TS, RECORD_TS + 1, RECORD_TS + 2])])
def test_json_events_carry_the_column_as_source_ts_ms(tmp_path: Path, column: str | None,
                                                      want: list[int]) -> None:
    spec = orders(column)
    changes = apply_changes(spec, tmp_path, VALUES)
    assert [c.op for c in changes] == ["c", "u", "d"]
    msgs = JsonEnvelope(spec, spec.column_names).encode(changes, 99)
    events = [json.loads(v) for _, _, v in msgs if v is not None]
    assert [e["source"]["ts_ms"] for e in events] == want
    assert {e["ts_ms"] for e in events} == {99}  # when the worker processed it, as Debezium


def test_connect_json_and_avro_events_carry_it_too(tmp_path: Path) -> None:
    spec = replace(orders("at"), changes=ChangesSpec(topic="o.c", schemas=True))
    changes = apply_changes(spec, tmp_path, VALUES[:1])
    (m,) = JsonEnvelope(spec, spec.column_names).encode(changes, 99)
    assert json.loads(m[2] or b"")["payload"]["source"]["ts_ms"] == AT_MS
    spec = orders("at", "debezium-avro")
    registry = FileRegistry(tmp_path / "registry")
    avro = AvroEnvelope(spec, spec.column_names, registry)
    (m,) = avro.encode(changes, 99)
    event = fastavro.schemaless_reader(io.BytesIO((m[2] or b"")[5:]),
                                       registry.schema(avro.schema_id), None)
    assert event["source"]["ts_ms"] == AT_MS and event["ts_ms"] == 99


CLICKS = StreamSpec(name="public.clicks", topic="clicks",
                    columns=columns({"user_id": "string", "url": "string",
                                     "at": "timestamp"}),
                    key_columns=("user_id",), key_format="json", value_format="json",
                    timestamp_column="at")


def test_stream_events_are_stored_and_ordered_by_the_column(tmp_path: Path) -> None:
    rel = open_relation(CLICKS, str(tmp_path / "data"), map_size=1 << 26)
    times = ["2024-01-03T00:00:00Z", "2024-01-01T00:00:00Z", None, "2024-01-02T00:00:00Z"]
    recs = [FakeRecord(b'"u1"', json.dumps({"url": f"/{i}", "at": t}).encode(), i,
                       RECORD_TS + i) for i, t in enumerate(times)]
    recs.append(FakeRecord(b'"u1"', None, 4, 1_000))  # a null value: the record's time
    assert rel.apply({0: recs})[0].fatal is None
    with Store.open(tmp_path / "data") as store:
        clicks = store.stream("clicks")
        # newest first by event time: the null-column event has the record's time (2023)
        assert [e and e["url"] for e in clicks.events("u1", limit=10)] == \
            ["/0", "/3", "/1", "/2", None]
        stamps = [e["timestamp"] for e in clicks.scan()]
        assert stamps == [1_704_240_000_000, 1_704_067_200_000, RECORD_TS + 2,
                          1_704_153_600_000, 1_000]


# ------------------------------------------------------------------------------ on a broker


@pytest.mark.integration
def test_a_ddl_timestamp_column_is_the_event_time_of_change_events(session_broker: Any,
                                                                   tmp_path: Path) -> None:
    from connectors.producer import produce_records
    from tests.support.workers import (
        caught_up,
        read_topic,
        start_worker,
        unique,
        wait_until,
        write_config,
    )

    topic = unique("orders")
    session_broker.create_topic(topic, partitions=1)
    cfg = write_config(tmp_path / "t.yaml", session_broker, f"""\
sql: |
  CREATE TABLE shop.orders (id INT PRIMARY KEY, at TIMESTAMP, note STRING)
    WITH (kafka_topic='{topic}', key_format='JSON', value_format='JSON', TIMESTAMP='at',
          changes_topic='{topic}.changes');
""")
    ends = produce_records(session_broker.kafka_config(), topic, [
        (b"1", json.dumps({"at": AT.isoformat(), "note": "a"}).encode()),
        (b"2", json.dumps({"at": None, "note": "b"}).encode())])
    worker = start_worker(cfg)
    try:
        wait_until(caught_up(tmp_path / "data", "shop.orders", ends), 60, "the table", worker)
        events = read_topic(session_broker, f"{topic}.changes", {0: 2})
    finally:
        worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    by_key = {json.loads(k or b"")["id"]: json.loads(v or b"") for _, _, k, v in events}
    assert by_key[1]["source"]["ts_ms"] == AT_MS
    # a null column: the record's timestamp, which the producer set to about now
    assert abs(by_key[2]["source"]["ts_ms"] - by_key[2]["ts_ms"]) < 600_000


def test_a_clusters_events_are_chosen_as_the_stores(tmp_path: Path) -> None:
    """A cluster worker's events of a key (`cluster.pages.stamped_events`, what it answers
    when asked or forwarded) are those `StreamView.events` answers: the `limit` most
    recently appended of each partition, newest first by event time. It sorted every event
    of the key by event time before, so a stream whose event times go back answered other
    events in a cluster than alone."""
    from materializer.api.keys import ApiRelation
    from materializer.cluster.pages import stamped_events
    from materializer.keytext import key_text_parser

    rel = open_relation(CLICKS, str(tmp_path / "data"), map_size=1 << 26)
    days = [5, 4, 3, 2, 1]  # appended in this order: event times going back
    for p in (0, 1):
        recs = [FakeRecord(b'"u1"', json.dumps({"url": f"/{p}{d}",
                                                "at": f"2024-01-0{d}T0{p}:00:00Z"}).encode(),
                           i, RECORD_TS + i) for i, d in enumerate(days)]
        assert rel.apply({p: recs})[p].fatal is None
    with Store.open(tmp_path / "data") as store:
        clicks = store.stream("clicks")
        api = ApiRelation(clicks, key_text_parser(clicks.key_columns, clicks.key_types))
        for limit in (1, 2, 3, 10):
            want = [e and e["url"] for e in clicks.events("u1", limit=limit, json_form=True)]
            got = [v and v["url"] for _, _, _, v in stamped_events(api, ("u1",), limit)]
            assert got == want, limit
        # the 2 appended last in each partition (days 2 and 1), newest first by time
        assert [e and e["url"] for e in clicks.events("u1", limit=2)] == ["/12", "/02"]

"""A table reading a `debezium-json` change topic (with `schemas: true`: Kafka Connect's
JsonConverter wrapper; without: plain Debezium JSON) declares its source's columns as they
are: unlike `debezium-avro` (`test_avro_adjusted_readback`), JSON names are not restricted,
so the Connect schema's `field` and the payload keep a column that is no valid Avro name
(`a.b`, `1st`) as written, and the reader fills it by that exact name. A `json` table
reading a Connect-wrapped value whose schema names `a.b` fills it the same way."""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
from pathlib import Path

import pytest

from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from materializer.formats.codecs import value_decoder
from tests.support.change_topics import table_rows, wait_for_rows
from tests.support.changes import table
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

COLUMNS = '{id: long, "a.b": string, "1st": "decimal(8,2)", plain: long}'

BODY = """\
tables:
  - name: src
    topic: {topic}
    columns: {columns}
    primary_key: [id]
    key_format: json
    value_format: json
    changes: {{topic: {wrapped}, format: debezium-json, schemas: true}}
  - name: src_plain
    topic: {topic}
    columns: {columns}
    primary_key: [id]
    key_format: json
    value_format: json
    changes: {{topic: {plain}, format: debezium-json}}
  - name: mirror
    topic: {wrapped}
    columns: {columns}
    primary_key: [id]
    key_format: json
    value_format: debezium-json
  - name: mirror_plain
    topic: {plain}
    columns: {columns}
    primary_key: [id]
    key_format: json
    value_format: debezium-json
  - name: connect_value
    topic: {connect}
    columns: {columns}
    primary_key: [id]
    key_format: json
    value_format: json
"""

VALUE_SCHEMA = {"type": "struct", "optional": False, "name": "v", "fields": [
    {"field": "a.b", "type": "string", "optional": True},
    {"field": "1st", "type": "bytes", "optional": True,
     "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
     "parameters": {"scale": "2"}},
    {"field": "plain", "type": "int64", "optional": True}]}


def connect_value(ab: str, first: str, plain: int) -> bytes:
    """A JsonConverter value (schemas.enable=true) of a row; `first` is the base64 of the
    decimal's unscaled value at scale 2."""
    return j({"schema": VALUE_SCHEMA, "payload": {"a.b": ab, "1st": first, "plain": plain}})


def test_debezium_json_events_keep_and_fill_columns_named_as_written(
        session_broker: DevBroker, tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("dot"), partitions=1)
    wrapped = session_broker.create_topic(unique("dot.wrapped"), partitions=1)
    plain = session_broker.create_topic(unique("dot.plain"), partitions=1)
    connect = session_broker.create_topic(unique("dot.connect"), partitions=1)
    records = [(j(1), j({"a.b": "one", "1st": "1.50", "plain": 10})),
               (j(2), j({"a.b": "two", "1st": "-2.25", "plain": 20})),
               (j(3), j({"a.b": None, "1st": "3", "plain": 30})),
               (j(2), j({"a.b": "two'", "1st": "0.01", "plain": 21})),
               (j(3), None)]
    cfg = tmp_path / "c.yaml"
    data = tmp_path / "data"
    write_config(cfg, session_broker, BODY.format(columns=COLUMNS, topic=topic,
                                                  wrapped=wrapped, plain=plain,
                                                  connect=connect))
    ends = produce_records(session_broker.kafka_config(), topic, records)
    # 150 -> AJY= (unscaled 150 at scale 2: 1.50), -1 -> /w== (-0.01)
    connect_ends = produce_records(session_broker.kafka_config(), connect,
                                   [(j(7), connect_value("seven", "AJY=", 70)),
                                    (j(8), connect_value("eight", "/w==", 80))])
    expected = {1: {"id": 1, "a.b": "one", "1st": "1.50", "plain": 10},
                2: {"id": 2, "a.b": "two'", "1st": "0.01", "plain": 21}}
    worker = start_worker(cfg)
    try:
        for name in ("public.src", "public.src_plain"):
            wait_until(caught_up(data, name, ends), 90, f"{name} to catch up", worker)
            assert table_rows(data, name) == expected
        wait_until(caught_up(data, "public.connect_value", connect_ends), 60,
                   "connect_value to catch up", worker)
        assert table_rows(data, "public.connect_value") == {
            7: {"id": 7, "a.b": "seven", "1st": "1.50", "plain": 70},
            8: {"id": 8, "a.b": "eight", "1st": "-0.01", "plain": 80}}

        wait_for_rows(data, ("public.mirror", "public.mirror_plain"), expected, worker)
    finally:
        worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0

    # what the events name the columns: as written, in the schema and in the payload
    events = read_topic(session_broker, wrapped, {0: 1}, timeout=30)
    first = json.loads(events[0][3] or b"")
    after = next(f for f in first["schema"]["fields"] if f["field"] == "after")
    assert [f["field"] for f in after["fields"]] == ["id", "a.b", "1st", "plain"]
    assert set(first["payload"]["after"]) == {"id", "a.b", "1st", "plain"}
    events = read_topic(session_broker, plain, {0: 1}, timeout=30)
    assert set(json.loads(events[0][3] or b"")["after"]) == {"id", "a.b", "1st", "plain"}


@pytest.mark.parametrize("fmt", ["debezium-json", "json"])
def test_a_debezium_avro_adjusted_json_field_fills_no_dotted_column(
        fmt: str, caplog: pytest.LogCaptureFixture) -> None:
    """A Debezium topic written with `field.name.adjustment.mode=avro` and the JsonConverter
    names column `a.b` as `a_b`: JSON names are taken as written (no Avro form is assumed),
    so a relation declaring `a.b` leaves it NULL, and the warning of unfilled columns names
    `a_b` (the README's "Adjusted names")."""
    spec = dataclasses.replace(
        table(None, {"id": "long", "a.b": "string", "plain": "long"}, name=unique("adj_json")),
        value_format=fmt, changes=None)
    row = {"type": "struct", "optional": True, "name": "v", "fields": [
        {"field": "id", "type": "int64", "optional": False},
        {"field": "a_b", "type": "string", "optional": True},
        {"field": "plain", "type": "int64", "optional": True}]}
    payload = {"id": 1, "a_b": "x", "plain": 2}
    if fmt == "json":
        body = {"schema": row, "payload": payload}
    else:
        body = {"schema": {"type": "struct", "fields": [
                    {"field": "before", **row}, {"field": "after", **row},
                    {"field": "op", "type": "string", "optional": False}]},
                "payload": {"before": None, "after": payload, "op": "c"}}
    decode = value_decoder(spec)
    with caplog.at_level(logging.WARNING, "materializer.formats"):
        fields = dict(decode(j(body)))
        dict(decode(j(body)))
    assert "a.b" not in fields and fields["plain"] == 2
    warned = [m for r in caplog.records if "no field for column(s) a.b" in (m := r.getMessage())]
    assert len(warned) == 1 and "a_b" in warned[0]

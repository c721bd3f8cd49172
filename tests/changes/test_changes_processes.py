"""Change events with `run --processes 2` on the real broker: every worker process stages
into the table's one outbox, the supervisor alone sends it. Without faults each applied
change is delivered exactly once and each key's events carry the previous image; a stop
delivers what every worker staged; a kill -9 of either worker loses nothing and reorders
nothing."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from connectors.kafka_admin import create_topic
from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from materializer.status import read_status
from tests.support.change_topics import (
    Message,
    changelog,
    drain_all,
    each_key_in_applied_order,
    expected_events,
    fold,
    in_topic_order,
    table_rows,
)
from tests.support.workers import (
    applied_offsets,
    child_status,
    kafka_yaml,
    past_crash_loop,
    run_cli,
    start_worker,
    unique,
    wait_until,
)

TABLE = """\
workers: 2
tables:
  - name: shop.users
    topic: {source}
    columns: {{id: int, name: string, age: long, born: date, score: "decimal(6,2)"}}
    primary_key: [id]
    key_format: json
    value_format: json
    changes: {{topic: {changes}}}
"""


def _setup(broker: DevBroker, tmp_path: Path) -> tuple[Path, str, str]:
    source = broker.create_topic(unique("users"), partitions=4)
    changes = f"{source}.changes"
    create_topic(broker.bootstrap, changes, 4)
    cfg = tmp_path / "t.yaml"
    cfg.write_text(kafka_yaml(broker) + f"group: {unique('g')}\n"
                   f"store:\n  path: {tmp_path / 'data'}\n"
                   + TABLE.format(source=source, changes=changes))
    return cfg, source, changes


def _both_assigned(store: Path) -> bool:
    return all(child_status(store, i).get("assigned") for i in (0, 1))


@pytest.mark.integration
def test_a_stop_delivers_every_staged_event_once_in_order(
        session_broker: DevBroker, tmp_path: Path) -> None:
    conf = session_broker.kafka_config()
    cfg, source, changes = _setup(session_broker, tmp_path)
    store = tmp_path / "data"
    records = changelog(seed=31, keys=1500, records=60_000, replays=300)
    run = start_worker(cfg)
    try:
        wait_until(lambda: _both_assigned(store), 90, "both workers to hold partitions", run)
        produce_records(conf, source, records)
        # stopped in the middle of the stream (or at its end on a fast machine)
        wait_until(lambda: sum(applied_offsets(store, "shop.users").values()) > 20_000, 120,
                   "a third of the records applied", run)
        wait_until(lambda: all(child_status(store, i).get("metrics", {})
                               .get("records_applied_total") for i in (0, 1)), 30,
                   "both workers to report records applied", run)
    finally:
        run.send_signal(signal.SIGTERM)
        assert run.wait(60) == 0
    applied = applied_offsets(store, "shop.users")
    prefix = [m for m in drain_all(conf, source) if m.offset < applied.get(m.partition, 0)]
    model, want = expected_events(prefix)
    f = fold(in_topic_order(drain_all(conf, changes, idle=1.0)))  # strict: no repeats
    assert f.problems == []
    # every change applied before the stop was delivered (the supervisor drained after the
    # workers stopped), exactly once, nothing invented
    assert sorted(f.events) == sorted(want)
    assert f.table == model == table_rows(store, "shop.users")


@pytest.mark.integration
def test_kill_9_of_either_worker_loses_and_reorders_no_event(
        session_broker: DevBroker, tmp_path: Path) -> None:
    conf = session_broker.kafka_config()
    cfg, source, changes = _setup(session_broker, tmp_path)
    store = tmp_path / "data"
    records = changelog(seed=37, keys=2000, records=90_000, replays=300)
    finished = threading.Event()

    def produce() -> None:  # records keep arriving while the workers are killed
        try:
            for i in range(0, len(records), 3_000):
                produce_records(conf, source, records[i:i + 3_000])
                time.sleep(0.3)  # pacing (not synchronisation): the stream outlasts the kills
        finally:
            finished.set()

    run = start_worker(cfg)
    producer = threading.Thread(target=produce)
    try:
        wait_until(lambda: _both_assigned(store), 90, "both workers to hold partitions", run)
        producer.start()
        for index in (1, 0):
            victim = child_status(store, index)["pid"]
            wait_until(lambda v=victim: past_crash_loop(v), 30, "the victim to be old enough",
                       run)
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda i=index, v=victim: child_status(store, i).get("pid") not in
                       (None, v), 90, f"worker {index} to be started again", run)
        producer.join()
        src = drain_all(conf, source)
        assert len(src) == len(records)
        model, want = expected_events(src)
        deadline = time.monotonic() + 180
        while True:  # until the change topic folds into the model with every event in it
            msgs: list[Message] = drain_all(conf, changes, idle=1.0)
            f = fold(in_topic_order(msgs), strict=False)
            if want <= set(f.events) and f.table == model:
                break
            assert run.poll() is None and time.monotonic() < deadline, (
                f"missing {len(want - set(f.events))} events")
        # the merged status carries the supervisor's outbox figures
        wait_until(lambda: ((read_status(store) or {}).get("metrics") or {}).get(
            "outbox_backlog") == {"shop.users": 0}, 30, "the status to show no backlog", run)
        sent = (read_status(store) or {})["metrics"]["change_events_total"]["shop.users"]
        assert sent >= len(want)
    finally:
        finished.wait(60)
        run.send_signal(signal.SIGTERM)
        assert run.wait(60) == 0
    assert f.problems == []
    assert set(f.events) == want  # repeats only of real events (at least once)
    assert each_key_in_applied_order(in_topic_order(msgs))
    assert table_rows(store, "shop.users") == model
    assert (read_status(store) or {}).get("workers") == 2


def test_a_table_owing_its_rebuild_snapshot_refuses_several_processes(tmp_path: Path) -> None:
    from materializer.catalog.load import load_catalog
    from materializer.ingest.relation import open_relation

    cfg = tmp_path / "t.yaml"
    cfg.write_text("kafka:\n  bootstrap.servers: 127.0.0.1:1\nstore:\n  path: data\n"
                   + TABLE.format(source="users", changes="users.changes"))
    spec = load_catalog(str(cfg)).tables[0]
    rel = open_relation(spec, tmp_path / "data", map_size=1 << 24, registry=None)
    rel.writer.set_snapshot_due(True)  # as an in-place rebuild killed before its snapshot
    rel.writer.env.close()
    done = run_cli("run", str(cfg), "--no-api", timeout=60)
    assert done.returncode == 2, done.stderr
    assert "shop.users: owes its change topic a snapshot of the table (rebuilt in place " \
           "and stopped before it was sent" in done.stderr
    assert "run once with --processes 1" in done.stderr

"""`materializer run --processes N` / `workers: N`: worker processes in one group sharing one
store, on the real broker. The table equals the fold of the changelog, every record is
counted once, a kill -9 of one worker loses nothing, and what cannot work is refused."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from materializer.ingest.status_merge import merge_statuses
from materializer.status import read_status
from materializer.store import StoreLock
from tests.e2e.test_e2e import (
    TABLE,
    assert_each_record_counted_once,
    assert_table_is,
    changelog,
    fold,
)
from tests.support.workers import (
    applied_offsets,
    caught_up,
    child_status,
    past_crash_loop,
    read_topic,
    run_cli,
    start_worker,
    unique,
    wait_until,
    write_config,
)


def _users_topic(broker: DevBroker, tmp_path: Path, records: int, keys: int, seed: int,
                 head: str = "") -> tuple[str, dict[int, int], Path, Path]:
    """A 4-partition topic holding a changelog, and a declaration of its table (`head`
    first): (topic, end offsets, config file, store directory)."""
    topic = broker.create_topic(unique("users"), partitions=4)
    changes, _, _ = changelog(records, keys, seed=seed)
    ends = produce_records(broker.kafka_config(), topic, changes)
    cfg = write_config(tmp_path / "t.yaml", broker, head + TABLE.format(topic=topic))
    return topic, ends, cfg, tmp_path / "data"


@pytest.mark.integration
def test_two_processes_share_the_partitions_and_fold_the_changelog(
        session_broker: DevBroker, tmp_path: Path) -> None:
    topic, ends, cfg, store = _users_topic(session_broker, tmp_path, 40_000, 4_000, 21,
                                           "workers: 2\n")
    run = start_worker(cfg)
    try:
        wait_until(caught_up(store, "shop.users", ends), 120, "the catch-up", run)
        # both workers took partitions; the merged status says caught up, as one worker would
        wait_until(lambda: all(child_status(store, i).get("assigned") for i in (0, 1)), 60,
                   "both workers to hold partitions", run)
        # (the merged file is written every second from the workers' own: wait until it
        # has both workers' partitions, not only until a worker's file has them)
        wait_until(lambda: (m := read_status(store) or {}).get("caught_up") is True
                   and len(m.get("partitions", ())) == 4, 30,
                   "the merged status to say caught up with every partition", run)
        merged = read_status(store) or {}
        assert merged["workers"] == 2 and merged["pid"] == run.pid
        assert len(merged["partitions"]) == 4 and {tuple(a) for a in merged["assigned"]} == {
            (topic, p) for p in range(4)}
        with pytest.raises(Exception, match="in use by"):  # the lock is held for all of them
            StoreLock.acquire(store, "a second writer")
    finally:
        run.send_signal(signal.SIGTERM)
        assert run.wait(60) == 0
    everything = read_topic(session_broker, topic, ends)
    assert_table_is(store, fold(everything, ends), absent=[])
    assert_each_record_counted_once(store)
    StoreLock.acquire(store, "after the run").release()


@pytest.mark.integration
def test_kill_9_of_one_worker_process_loses_and_repeats_nothing(
        session_broker: DevBroker, tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("users"), partitions=4)
    records, _, _ = changelog(60_000, 5_000, seed=23)
    ends: dict[int, int] = {}
    finished = threading.Event()

    def produce() -> None:  # records keep arriving while a worker is killed
        try:
            for i in range(0, len(records), 3_000):
                for p, e in produce_records(session_broker.kafka_config(), topic,
                                            records[i:i + 3_000]).items():
                    ends[p] = max(ends.get(p, 0), e)
        finally:
            finished.set()

    cfg = write_config(tmp_path / "t.yaml", session_broker, TABLE.format(topic=topic))
    store = tmp_path / "data"
    run = start_worker(cfg, "--processes", "2")
    producer = threading.Thread(target=produce)
    try:
        wait_until(lambda: all(child_status(store, i).get("assigned") for i in (0, 1)), 90,
                   "both workers to hold partitions", run)
        producer.start()
        victim = child_status(store, 1)["pid"]
        wait_until(lambda: sum(applied_offsets(store, "shop.users").values()) > 0, 60,
                   "some progress", run)
        # past the crash-loop window, so the supervisor starts it again
        wait_until(lambda: past_crash_loop(victim), 30, "the victim to be 5 s old", run)
        wait_until(lambda: _merged_applied(store) > 0, 30,
                   "the merged status to count applied records", run)
        applied_before = _merged_applied(store)
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: child_status(store, 1).get("pid") not in (None, victim), 90,
                   "worker 1 to be started again", run)
        # the merged counters carry the dead worker's: they do not fall at the restart
        seen = (store / "worker.json").stat().st_mtime_ns
        wait_until(lambda: (store / "worker.json").stat().st_mtime_ns > seen, 10,
                   "a merged status after the restart", run)
        assert _merged_applied(store) >= applied_before > 0
        producer.join()
        wait_until(caught_up(store, "shop.users", ends), 180, "the final catch-up", run)
    finally:
        finished.wait(60)
        run.send_signal(signal.SIGTERM)
        assert run.wait(60) == 0
    everything = read_topic(session_broker, topic, ends)
    assert len(everything) == len(records)
    assert_table_is(store, fold(everything, ends), absent=[])
    assert_each_record_counted_once(store)


@pytest.mark.integration
def test_processes_auto_starts_one_per_cpu_up_to_the_partitions(
        session_broker: DevBroker, tmp_path: Path) -> None:
    from materializer.ingest.processes import usable_cpus

    topic, ends, cfg, store = _users_topic(session_broker, tmp_path, 4_000, 400, 25)
    expected = min(usable_cpus(), 4)
    run = start_worker(cfg, "--processes", "auto")
    try:
        wait_until(caught_up(store, "shop.users", ends), 120, "the catch-up", run)
        if expected > 1:  # a supervisor and its workers, as with --processes N
            wait_until(lambda: (read_status(store) or {}).get("workers") == expected, 30,
                       f"the merged status of {expected} workers", run)
        else:  # one CPU: the one worker itself
            assert (read_status(store) or {}).get("pid") == run.pid
            assert "workers" not in (read_status(store) or {})
    finally:
        run.send_signal(signal.SIGTERM)
        assert run.wait(60) == 0
    assert_table_is(store, fold(read_topic(session_broker, topic, ends), ends), absent=[])


def _merged_applied(store: Path) -> int:
    return int(((read_status(store) or {}).get("metrics") or {}).get(
        "records_applied_total", 0))


def test_a_restarted_workers_counters_are_carried_and_its_gauges_are_not(
        tmp_path: Path) -> None:
    from materializer.ingest.status_merge import RetiredCounters, counters_of

    dead = {"records_applied_total": 70, "records_rejected_total": {"t|skipped:bad": 2},
            "batch_seconds": {"buckets": [[0.01, 3]], "sum": 0.5, "count": 3},
            "outbox_backlog": {"t": 9},
            "process": {"cpu_seconds_total": 1.5, "gc_collections_total": 4,
                        "resident_memory_bytes": 1e8, "start_time_seconds": 5.0}}
    assert counters_of(dead) == {
        "records_applied_total": 70, "records_rejected_total": {"t|skipped:bad": 2},
        "batch_seconds": {"buckets": [[0.01, 3]], "sum": 0.5, "count": 3},
        "process": {"cpu_seconds_total": 1.5, "gc_collections_total": 4}}
    path = tmp_path / "worker.1.json"
    path.write_text(json.dumps({"pid": 7, "metrics": dead}))
    retired = RetiredCounters()
    retired.retire(path)
    assert not path.exists()  # the merge must not count the dead worker twice
    retired.retire(tmp_path / "worker.2.json")  # died before its first status: nothing
    live = {"records_applied_total": 5, "outbox_backlog": {"t": 1},
            "process": {"cpu_seconds_total": 0.5, "resident_memory_bytes": 2e8,
                        "start_time_seconds": 9.0}}
    assert retired.add_to(live) == {
        "records_applied_total": 75, "records_rejected_total": {"t|skipped:bad": 2},
        "batch_seconds": {"buckets": [[0.01, 3]], "sum": 0.5, "count": 3},
        "outbox_backlog": {"t": 1},
        "process": {"cpu_seconds_total": 2.0, "gc_collections_total": 4,
                    "resident_memory_bytes": 2e8, "start_time_seconds": 9.0}}


def test_workers_is_read_from_yaml_and_checked(tmp_path: Path) -> None:
    from materializer.catalog.load import load_catalog
    from materializer.errors import ConfigError

    def catalog(workers: str) -> Any:
        cfg = tmp_path / "t.yaml"
        cfg.write_text(f"kafka:\n  bootstrap.servers: x:1\nworkers: {workers}\n" +
                       TABLE.format(topic="users"))
        return load_catalog(str(cfg))

    assert catalog("3").workers == 3
    assert catalog("auto").workers == "auto"
    with pytest.raises(ConfigError, match="`workers` must be at least 1, not 0"):
        catalog("0")
    with pytest.raises(ConfigError, match=r"t.yaml: line 3, column 10: `workers` must be "
                                          "a number of processes or auto, not `many`"):
        catalog("many")


def _two_topics(tmp_path: Path, second: str = "") -> Any:
    from materializer.catalog.load import load_catalog

    cfg = tmp_path / "t.yaml"
    cfg.write_text("kafka:\n  bootstrap.servers: x:1\n" + TABLE.format(topic="a") +
                   TABLE.format(topic="b").replace("tables:\n", "").replace(
                       "shop.users", "shop.others") + second)
    return load_catalog(str(cfg))


@pytest.mark.parametrize(("cpus", "counts", "chosen"), [
    (8, {"a": 1, "b": 2}, 3),   # no more processes than partitions: the rest would idle
    (2, {"a": 4, "b": 4}, 2),   # one per CPU
    (1, {"a": 4, "b": 4}, 1),
    (4, {"a": 4, "b": 0}, 4),   # topic b does not exist yet: partitions not counted
])
def test_auto_processes_is_one_per_cpu_at_most_one_per_partition(
        tmp_path: Path, cpus: int, counts: dict[str, int], chosen: int) -> None:
    from materializer.ingest.processes import auto_processes

    assert auto_processes(_two_topics(tmp_path), cpus, counts.__getitem__) == chosen


def test_auto_processes_counts_one_per_cpu_when_the_broker_does_not_answer(
        tmp_path: Path) -> None:
    from materializer.errors import InfrastructureError
    from materializer.ingest.processes import auto_processes

    def unreachable(topic: str) -> int:
        raise InfrastructureError(f"cannot read the metadata of topic {topic}")

    assert auto_processes(_two_topics(tmp_path), 3, unreachable) == 3


def test_the_processes_option_takes_a_number_or_auto(tmp_path: Path) -> None:
    cfg = tmp_path / "t.yaml"
    cfg.write_text("kafka:\n  bootstrap.servers: x:1\n" + TABLE.format(topic="users"))
    done = run_cli("run", str(cfg), "--no-api", "--processes", "0")
    assert done.returncode == 2
    assert "--processes: must be a number from 1 to 256 or auto, not '0'" in done.stderr


def test_merged_status_sums_counters_and_needs_every_worker_fresh() -> None:
    now = 1_000_000.0
    a = {"updated_at": now - 1, "started_at": 5.0, "group": "g", "assigned": [["t", 0]],
         "partitions": [{"partition": 0, "lag": 0}],
         "metrics": {"records_applied_total": 10, "records_rejected_total": {"x|skipped:y": 1},
                     "batch_seconds": {"buckets": [[0.001, 2], [0.01, 3]], "sum": 0.5,
                                       "count": 3},
                     "process": {"cpu_seconds_total": 1.5, "start_time_seconds": 100.0}}}
    b = {"updated_at": now - 2, "started_at": 4.0, "group": "g", "assigned": [["t", 1]],
         "partitions": [{"partition": 1, "lag": 0}],
         "metrics": {"records_applied_total": 5, "records_rejected_total": {"x|skipped:y": 2},
                     "batch_seconds": {"buckets": [[0.001, 1], [0.01, 1]], "sum": 0.25,
                                       "count": 1},
                     "process": {"cpu_seconds_total": 0.5, "start_time_seconds": 90.0}}}
    m = merge_statuses([a, b], 42, False, now=now)
    assert m["caught_up"] and m["pid"] == 42 and m["updated_at"] == now - 2
    assert m["assigned"] == [["t", 0], ["t", 1]] and len(m["partitions"]) == 2
    assert m["metrics"]["records_applied_total"] == 15
    assert m["metrics"]["records_rejected_total"] == {"x|skipped:y": 3}
    assert m["metrics"]["batch_seconds"] == {"buckets": [[0.001, 3], [0.01, 4]], "sum": 0.75,
                                             "count": 4}
    assert m["metrics"]["process"] == {"cpu_seconds_total": 2.0, "start_time_seconds": 90.0}
    assert not merge_statuses([a, None], 42, False, now=now)["caught_up"]  # one not reporting
    assert not merge_statuses([a, {**b, "updated_at": now - 60}], 42, False, now=now)["caught_up"]
    lagging = {**b, "partitions": [{"partition": 1, "lag": 7}]}
    assert not merge_statuses([a, lagging], 42, False, now=now)["caught_up"]
    assert not merge_statuses([a, b], 42, True, now=now)["caught_up"]  # stopping


@pytest.mark.integration
def test_a_worker_stopping_on_a_bad_record_stops_run_with_its_code(
        session_broker: DevBroker, tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("users"), partitions=2)
    good = [(i.to_bytes(8, "big", signed=True), json.dumps({"name": f"n{i}"}).encode())
            for i in range(20)]
    ends = produce_records(session_broker.kafka_config(), topic,
                           [*good, ((99).to_bytes(8, "big", signed=True), b"{not json")])
    cfg = write_config(tmp_path / "t.yaml", session_broker, TABLE.format(topic=topic) +
                       "    on_error: fail\n")
    run = start_worker(cfg, "--processes", "2")
    assert run.wait(120) == 1
    log = next(tmp_path.glob("worker-*.log")).read_text()
    assert "bad record at topic" in log and "exited with code 1" in log, log[-2000:]
    assert sum(applied_offsets(tmp_path / "data", "shop.users").values()) < sum(ends.values())


def _worker_pid(run_pid: int, index: int) -> int | None:
    """The pid of `run`'s worker process `index` (None until started)."""
    try:
        kids = Path(f"/proc/{run_pid}/task/{run_pid}/children").read_text().split()
    except OSError:
        return None
    for kid in kids:
        try:
            argv = Path(f"/proc/{kid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--worker-index" in argv and argv[argv.index(b"--worker-index") + 1] == b"%d" % index:
            return int(kid)
    return None


@pytest.mark.integration
def test_a_worker_killed_again_soon_after_its_start_stops_run_naming_the_crash_loop(
        session_broker: DevBroker, tmp_path: Path) -> None:
    """A worker process killed by a signal within CRASH_LOOP of its start is not started again:
    run stops (exit 1) and says so, naming the signal (the killed worker said nothing)."""
    _, _, cfg, _ = _users_topic(session_broker, tmp_path, 200, 40, seed=11)
    run = start_worker(cfg, "--processes", "2")
    try:
        first = wait_until(lambda: _worker_pid(run.pid, 1), 30, "worker 1's process", run)
        os.kill(first, signal.SIGKILL)  # at once: well within CRASH_LOOP of its start
        assert run.wait(60) == 1
    finally:
        if run.poll() is None:
            run.kill()
    log = next(tmp_path.glob("worker-*.log")).read_text()
    assert ("worker process 1 was killed by signal 9 (SIGKILL) within 5 s of its start and "
            "not started again (a crash loop)") in log, log[-2000:]
    assert "see its message above" not in log and "Traceback" not in log, log[-2000:]


@pytest.mark.integration
def test_a_worker_started_again_refuses_a_declaration_edited_since_run_started(
        session_broker: DevBroker, tmp_path: Path) -> None:
    """A worker process started again after a kill reads the declaration file anew. With a
    column added to the file meanwhile it applied the new declaration while the other worker
    kept the old one: the other's partitions stored NULL in the new column for records holding
    it (served with /readyz 200). It refuses instead (exit 2), and run stops saying why."""
    _, _, cfg, store = _users_topic(session_broker, tmp_path, 200, 40, seed=12)
    run = start_worker(cfg, "--processes", "2")
    try:
        wait_until(lambda: all(child_status(store, i).get("assigned") for i in (0, 1)), 90,
                   "both workers to hold partitions", run)
        victim = child_status(store, 1)["pid"]
        wait_until(lambda: past_crash_loop(victim), 30, "worker 1 to be past the crash loop",
                   run)
        text = cfg.read_text()
        cfg.write_text(text.replace("vip: boolean}", "vip: boolean, age: long}"))
        os.kill(victim, signal.SIGKILL)
        assert run.wait(60) == 2
    finally:
        if run.poll() is None:
            run.kill()
    log = next(tmp_path.glob("worker-*.log")).read_text()
    assert "changed since `materializer run` started" in log, log[-2000:]
    assert "worker process 1 exited with code 2" in log and "Traceback" not in log, log[-2000:]

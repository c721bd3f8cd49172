"""A schema id the registry answers 404 for is taken for a replica behind, not for an
unknown id, for `schema_registry.unknown.id.wait.ms` (default 15 s) after the first 404:
the batch waits (its consumer held) and asks again; only then is each record of that id
`unknown_schema`. Before: `unknown_schema` at once, and under `on_error: skip` the records
of a schema registered a moment ago on the registry's leader were lost (counted).

One wait per id (when it began is kept), not per record; the 10 s memo of unknown ids
starts only after the wait, so an id known meanwhile is read as soon as it is asked."""

from __future__ import annotations

import struct
import threading
import time
from pathlib import Path

import pytest

import connectors.rest_registry as rest_registry
from connectors.producer import produce_records
from connectors.registry import RestRegistry
from materializer.devbroker import DevBroker
from materializer.errors import InfrastructureError, RecordError
from materializer.formats.wire import avro_encoder
from materializer.status import read_status
from materializer.store import Store
from tests.support.registry_server import Interference, RegistryServer, avro_users
from tests.support.workers import run_cli, start_worker, unique, wait_until, write_config

USER = {"type": "record", "name": "U",
        "fields": [{"name": "id", "type": "int"}, {"name": "name", "type": "string"}]}
QUICK = {"retries.wait.ms": "1", "max.retries": "0"}


class Lagging:
    """An `interfere` hook: the registry's 404 for `/schemas/ids/{sid}` (and the reference
    `path`) until `seconds` after the first time it is asked, as a replica behind."""

    def __init__(self, sid: int, seconds: float, path: str | None = None) -> None:
        self.paths = {f"/schemas/ids/{sid}", *([path] if path else [])}
        self.seconds = seconds
        self.first: float | None = None
        self.answered_404 = 0
        self.lock = threading.Lock()

    def __call__(self, method: str, path: str) -> Interference:
        if path.split("?")[0] not in self.paths:
            return None
        with self.lock:
            now = time.monotonic()
            if self.first is None:
                self.first = now
            if now - self.first < self.seconds:
                self.answered_404 += 1
                return (404, b'{"error_code": 40403, "message": "Schema not found"}')
        return None


def config(tmp_path: Path, broker: DevBroker, srv: RegistryServer, topic: str
           ) -> tuple[Path, Path]:
    """A declaration of table `users` (avro values, `on_error: skip`); the store's path."""
    cfg = write_config(tmp_path / "tables.yaml", broker,
                       avro_users(srv.url, topic,
                                  registry="  retries.wait.ms: '10'\n  max.retries: '0'\n"))
    store = tmp_path / "data"
    return cfg, store


def test_an_id_a_replica_has_not_read_yet_is_waited_for_and_every_row_applied(
        tmp_path: Path, session_broker: DevBroker) -> None:
    with RegistryServer() as srv:
        topic = unique("t")
        session_broker.create_topic(topic, 1)
        enc = avro_encoder(RestRegistry(srv.url), f"{topic}-value", USER)
        sid = next(iter(srv.schemas))
        lag = srv.interfere = Lagging(sid, 3.0)
        produce_records(session_broker.kafka_config(), topic,
                        [(struct.pack(">i", i), enc({"id": i, "name": f"n{i}"}))
                         for i in range(8)])
        cfg, store = config(tmp_path, session_broker, srv, topic)
        worker = start_worker(cfg)
        seen: list[str] = []

        def done() -> bool:
            s = read_status(store) or {}
            if s.get("retrying"):
                seen.append(s["retrying"])
            m = s.get("metrics") or {}
            rejected = sum((m.get("records_rejected_total") or {}).values())
            return (m.get("records_applied_total") or 0) + rejected >= 8
        wait_until(done, 60, "every record to be applied or rejected", worker)
        s = read_status(store) or {}
        assert not s["metrics"]["records_rejected_total"], s["metrics"]
        assert s["metrics"]["records_applied_total"] == 8
        assert lag.answered_404 >= 2  # asked again while it waited, not once
        assert any("unknown to the registry (yet)" in r for r in seen), seen
        worker.terminate()
        assert worker.wait(30) == 0


def test_rebuild_waits_for_an_id_a_replica_has_not_read_yet(
        tmp_path: Path, session_broker: DevBroker) -> None:
    """`materializer rebuild` replays the topic with the same wait (before the wait existed
    it skipped the records; with the wait but without a retry the replay failed)."""
    with RegistryServer() as srv:
        topic = unique("t")
        session_broker.create_topic(topic, 1)
        enc = avro_encoder(RestRegistry(srv.url), f"{topic}-value", USER)
        lag = srv.interfere = Lagging(next(iter(srv.schemas)), 2.0)
        produce_records(session_broker.kafka_config(), topic,
                        [(struct.pack(">i", i), enc({"id": i, "name": f"n{i}"}))
                         for i in range(5)])
        cfg, store = config(tmp_path, session_broker, srv, topic)
        done = run_cli("rebuild", str(cfg), "users", timeout=120)
        assert done.returncode == 0, done.stderr
        assert lag.answered_404 >= 2, done.stderr
        with Store.open(store) as st:
            users = st.table("users")
            assert [users.get(i) for i in range(5)] == [
                {"id": i, "name": f"n{i}"} for i in range(5)]


class Clock:
    """The registry client's monotonic clock, moved by the test: the wait (0.6 s) and the
    memo (0.3 s) are checked just before and just after they end, whatever a loaded machine
    does between two asks (with the real clock, a pause of 0.3 s between two asks made the
    memo expire before it was checked)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_a_truly_unknown_id_costs_one_wait_then_is_unknown_schema(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rest_registry, "_NEGATIVE_TTL", 0.3)
    clock = Clock()
    monkeypatch.setattr(rest_registry, "time", clock)
    with RegistryServer() as srv:
        reg = RestRegistry(srv.url, {**QUICK, "unknown.id.wait.ms": "600"})
        with pytest.raises(InfrastructureError) as e:
            reg.schema(999)
        assert e.value.retry_in is not None and 0 < e.value.retry_in <= 0.6
        asked = srv.requests
        clock.now += 0.59
        with pytest.raises(InfrastructureError):  # asked again: no memo during the wait
            reg.schema(999)
        assert srv.requests == asked + 1
        clock.now += 0.02  # the wait is over: unknown
        with pytest.raises(RecordError) as r:
            reg.schema(999)
        assert r.value.reason == "unknown_schema"
        asked = srv.requests
        clock.now += 0.29
        with pytest.raises(RecordError):  # remembered: not asked for every record
            reg.schema(999)
        assert srv.requests == asked
        # past the (shortened) memo: asked again, and unknown at once (no second wait)
        clock.now += 0.02
        with pytest.raises(RecordError) as r:
            reg.schema(999)
        assert r.value.reason == "unknown_schema" and srv.requests == asked + 1


def test_an_id_known_during_its_wait_is_read_at_the_next_ask() -> None:
    with RegistryServer() as srv:
        sid = srv.add("s", USER)
        ref_sid = srv.add("r", {"type": "record", "name": "com.x.R", "fields": []})
        outer = srv.add("o", {"type": "record", "name": "O", "fields": [
            {"name": "r", "type": "com.x.R"}]},
            references=[{"name": "com.x.R", "subject": "r", "version": 1}])
        assert ref_sid != outer
        lag = srv.interfere = Lagging(sid, 3600, "/subjects/r/versions/1")  # until it ends below
        reg = RestRegistry(srv.url, {**QUICK, "unknown.id.wait.ms": "30000"})
        with pytest.raises(InfrastructureError, match=r"unknown to the registry \(yet\)"):
            reg.schema(sid)
        with pytest.raises(InfrastructureError, match=r"reference 'r' version 1"):
            reg.schema(outer)  # a reference the replica lacks: waited for as well
        lag.seconds = 0  # the replica has read them: the next ask of each reads it
        assert reg.schema(sid)["name"] == "U"
        assert reg.schema(outer)["name"] == "O"


def test_unknown_id_wait_must_be_a_number_of_ms() -> None:
    from materializer.errors import ConfigError

    with pytest.raises(ConfigError):
        RestRegistry("http://localhost:8081", {"unknown.id.wait.ms": "-1"})
    with pytest.raises(ConfigError):
        RestRegistry("http://localhost:8081", {"unknown.id.wait.ms": "soon"})



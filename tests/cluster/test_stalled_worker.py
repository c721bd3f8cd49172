"""A cluster worker whose process was stopped (SIGSTOP) past the group session timeout, but
not past the member timeout, kept answering its partitions' older rows as current (200, no
marker) while the group had given them to another worker applying newer rows: its API took
the worker for running (`cluster.json` younger than the member timeout), and after SIGCONT
the worker published and wrote its old assignment again before librdkafka told it the
session was lost. Measured (probe h52: session.timeout.ms 3000, member timeout 10 s, two
workers): 833 such answers, from 5.4 s after the stop (the other worker answered newer
versions) to 10 s, and again right after SIGCONT.

Now the API takes a file older than the session timeout for a worker owning nothing, and
the worker, after a gap in its membership records past the session timeout (its process
was frozen), says it owns nothing until the group answers (a rebalance callback) or two
consumer heartbeat intervals passed without one. A worker loop that is only slow keeps
its heartbeats and its session: nothing is doubted."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from materializer.cluster import agent as agent_module
from materializer.cluster.agent import ClusterAgent
from materializer.cluster.membership import now_ms, write_members_file
from materializer.cluster.view import ClusterView
from tests.cluster.helpers import OWN_USERS, Clock, member_record

USERS = OWN_USERS
_member = member_record


@pytest.mark.parametrize(("age_ms", "owned"), [(4_000, {}), (1_000, {0: "a"})])
def test_a_file_older_than_the_session_timeout_owns_nothing(tmp_path: Path, age_ms: int,
                                                             owned: dict[int, str]) -> None:
    written = now_ms() - age_ms  # the worker process stopped then (SIGSTOP)
    write_members_file(tmp_path, {
        "self": "a", "written_at": written, "timeout_ms": 10_000, "heartbeat_ms": 1000,
        "session_timeout_ms": 3000, "stopped": False,
        "members": [_member("a", (0,), written).to_json(),
                    _member("b", (1,), now_ms()).to_json()]})
    routing = ClusterView(tmp_path).routing()
    assert routing is not None
    assert {p: m.id for p, m in routing.owners(USERS.name).items() if m.id == "a"} == owned
    assert routing.owner(USERS.name, 1).id == "b"  # type: ignore[union-attr]



def _agent(tmp_path: Path, source: Any, clock: Clock,
           monkeypatch: pytest.MonkeyPatch) -> ClusterAgent:
    monkeypatch.setattr(agent_module, "time", clock)
    catalog = SimpleNamespace(
        relations=[USERS], api=SimpleNamespace(advertise="http://127.0.0.1:9"),
        cluster=SimpleNamespace(worker_id="a", heartbeat_ms=1000, member_timeout_ms=10_000,
                                forward_timeout_ms=5000),
        kafka_config={"bootstrap.servers": "127.0.0.1:9", "session.timeout.ms": "3000"},
        group="g", store_path=str(tmp_path))
    worker = SimpleNamespace(catalog=catalog, grouped=SimpleNamespace(by_topic={},
                                                                      source=source))
    agent = ClusterAgent(worker)  # type: ignore[arg-type]
    agent.counts.due = {USERS.topic: 1e18}  # no count asked of a broker
    return agent


def _owns(agent: ClusterAgent) -> tuple[int, ...]:
    return agent.local().relations[USERS.name].assigned


def test_a_worker_frozen_past_the_session_owns_nothing_until_the_group_says(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = SimpleNamespace(assigned={("users", 0)}, group_generation=lambda: 3)
    clock = Clock()
    agent = _agent(tmp_path, source, clock, monkeypatch)
    agent.ownership_changed([("users", 0)], False)  # the assignment as it stands
    assert _owns(agent) == (0,)
    clock.now += 2.9  # a heartbeat came late, within the session timeout: nothing doubted
    assert _owns(agent) == (0,)
    clock.now += 5  # the process was frozen for 5 s (SIGSTOP, then SIGCONT)
    assert _owns(agent) == ()  # the membership thread runs first after SIGCONT
    clock.now += 1
    assert _owns(agent) == ()  # no rebalance callback yet
    source.assigned = set()  # the group's verdict: the session was lost
    agent.ownership_changed([("users", 0)], False)
    assert _owns(agent) == ()
    source.assigned = {("users", 0)}  # and a new assignment
    agent.ownership_changed([("users", 0)], False)
    assert _owns(agent) == (0,)


def test_a_worker_whose_session_held_owns_again_after_two_heartbeat_intervals(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """session.timeout.ms 3000, heartbeat.interval.ms 3000 (the default): the wait is the
    smaller of two intervals and the session timeout, 3 s."""
    source = SimpleNamespace(assigned={("users", 0)}, group_generation=lambda: 3)
    clock = Clock()
    agent = _agent(tmp_path, source, clock, monkeypatch)
    agent.ownership_changed([("users", 0)], False)
    assert _owns(agent) == (0,)
    clock.now += 5
    assert _owns(agent) == ()
    for step in range(31):  # records every 0.1 s for 3.1 s, no rebalance callback
        clock.now += 0.1
        if step == 20:
            assert _owns(agent) == ()
        owned = _owns(agent)
    assert owned == (0,)


def test_a_slow_worker_loop_alone_doubts_nothing(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker loop retrying a batch for a minute (a registry outage) does not poll, but
    its consumer's heartbeats go on and the session holds: its records keep coming every
    second, and it owns what it owns."""
    source = SimpleNamespace(assigned={("users", 0)}, group_generation=lambda: 3)
    clock = Clock()
    agent = _agent(tmp_path, source, clock, monkeypatch)
    agent.ownership_changed([("users", 0)], False)
    for _ in range(60):
        clock.now += 1.0
        assert _owns(agent) == (0,)


def test_a_forwarded_read_of_a_partition_no_longer_owned_is_not_answered(
        tmp_path: Path) -> None:
    """A member whose view lags still forwards a key to this worker, which owns nothing
    now (frozen past its session: its record says so) though its store still holds the
    partition's rows unrevoked: it answered them (200), older than the new owner's. Now
    503, so the forwarding member asks elsewhere."""
    import httpx

    from materializer.cluster.forward import FORWARDED
    from tests.support.api import SpecWriter, api_process

    data = tmp_path / "data"
    writer = SpecWriter(str(data), USERS)
    writer.write([(i, {"name": f"v1-{i}"}) for i in range(4)], partition=0)
    writer.write([(i, {"name": f"v1-{i}"}) for i in range(4, 8)], partition=1)
    write_members_file(data, {
        "self": "a", "written_at": now_ms(), "timeout_ms": 60_000, "heartbeat_ms": 300,
        "session_timeout_ms": 60_000, "stopped": False,
        "members": [_member("a", (), now_ms()).to_json(),  # what a doubted worker publishes
                    _member("b", (0, 1), now_ms()).to_json()]})
    with api_process(data) as url:
        got = [httpx.get(f"{url}/tables/{USERS.name}/rows/{i}", headers={FORWARDED: "b"})
               for i in range(8)]
    assert {r.status_code for r in got} == {503}, [(r.status_code, r.text) for r in got]
    assert "not this worker's now" in got[0].json()["detail"]

"""How often a worker asks its topics' partition counts (cluster.partition_counts), on a
clock the test moves and a broker it scripts: an unknown count soon (0.5 s, doubling up to
5 s: a topic that never appears is not asked more than once per 5 s), a known one every
30 s, either at once when the group assigns a partition of a topic whose count is unknown
or smaller; never two askings at once.

Before, every count was asked every 30 s, known or not: a topic created just after the
start stayed without a count (misses and scans 503) for up to 30 s
(tests/cluster/test_partition_count_prompt.py measures it with real workers)."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import connectors.kafka_admin as kafka_admin
from materializer.cluster import partition_counts as counts_module
from materializer.cluster.agent import ClusterAgent
from materializer.errors import InfrastructureError
from tests.cluster.helpers import OWN_USERS, Clock


class Broker:
    """`partition_count` as the test scripts it: the count (0: no such topic) or an error,
    and when it was asked."""

    def __init__(self, clock: Clock) -> None:
        self.clock, self.count, self.down = clock, 0, False
        self.asked: list[float] = []

    def partition_count(self, conf: dict[str, str], topic: str, timeout: float = 5.0) -> int:
        self.asked.append(self.clock.now)
        if self.down:
            raise InfrastructureError("cannot reach the broker")
        return self.count


class InlineThread:
    """The counting thread, run at `start` (the test's clock stands still meanwhile)."""

    def __init__(self, target: Any, args: tuple[Any, ...] = (), **_: Any) -> None:
        self.target, self.args = target, args

    def start(self) -> None:
        self.target(*self.args)


@pytest.fixture
def scripted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
             ) -> tuple[ClusterAgent, Clock, Broker]:
    clock = Clock()
    broker = Broker(clock)
    monkeypatch.setattr(counts_module, "time", clock)
    monkeypatch.setattr(counts_module, "threading",
                        SimpleNamespace(Lock=threading.Lock, Thread=InlineThread))
    monkeypatch.setattr(kafka_admin, "partition_count", broker.partition_count)
    catalog = SimpleNamespace(
        relations=[OWN_USERS], api=SimpleNamespace(advertise="http://127.0.0.1:9"),
        cluster=SimpleNamespace(worker_id="a", heartbeat_ms=1000, member_timeout_ms=10_000,
                                forward_timeout_ms=5000),
        kafka_config={"bootstrap.servers": "127.0.0.1:9"}, group="g",
        store_path=str(tmp_path))
    source = SimpleNamespace(assigned=set(), group_generation=lambda: 3,
                             committed=lambda pairs: {})
    worker = SimpleNamespace(catalog=catalog, grouped=SimpleNamespace(by_topic={},
                                                                      source=source))
    return ClusterAgent(worker), clock, broker  # type: ignore[arg-type]


def _beats(agent: ClusterAgent, clock: Clock, seconds: float) -> int | None:
    """Heartbeats (`local`, as the membership thread calls it) every 100 ms for `seconds`;
    the count the last record carried."""
    count = None
    for _ in range(round(seconds * 10)):
        count = agent.local().relations[OWN_USERS.name].partitions
        clock.now = round(clock.now + 0.1, 1)  # no drift: due times are met exactly
    return count


def _gaps(asked: list[float]) -> list[float]:
    return [round(b - a, 1) for a, b in zip(asked, asked[1:], strict=False)]


def test_an_unknown_count_is_asked_soon_then_every_5_s_a_known_one_every_30_s(
        scripted: tuple[ClusterAgent, Clock, Broker]) -> None:
    agent, clock, broker = scripted
    assert _beats(agent, clock, 60) is None  # the topic does not exist
    assert _gaps(broker.asked)[:5] == [0.5, 1.0, 2.0, 4.0, 5.0]
    assert set(_gaps(broker.asked)[4:]) == {5.0}  # a missing topic: once per 5 s
    broker.asked.clear()
    broker.count = 2  # created (by the worker, or by anyone)
    assert _beats(agent, clock, 5.1) == 2
    assert len(broker.asked) == 1
    broker.asked.clear()
    assert _beats(agent, clock, 65) == 2
    assert _gaps(broker.asked) == [30.0]  # a known count: every 30 s


def test_an_assignment_asks_an_unknown_or_smaller_count_at_once(
        scripted: tuple[ClusterAgent, Clock, Broker]) -> None:
    agent, clock, broker = scripted
    _beats(agent, clock, 30)  # the back-off is at 5 s
    broker.count = 2
    broker.asked.clear()
    agent.ownership_changed([(OWN_USERS.topic, 0), (OWN_USERS.topic, 1)], True)
    assert agent.local().relations[OWN_USERS.name].partitions == 2
    assert broker.asked == [clock.now]  # at once, not when the back-off came round
    _beats(agent, clock, 10)
    broker.asked.clear()
    agent.ownership_changed([(OWN_USERS.topic, 1)], True)  # within the count: not asked
    _beats(agent, clock, 1)
    assert broker.asked == []
    broker.count = 3  # a partition was added and assigned
    agent.ownership_changed([(OWN_USERS.topic, 2)], True)
    assert agent.local().relations[OWN_USERS.name].partitions == 3
    assert len(broker.asked) == 1


def test_a_broker_not_answering_keeps_a_known_count_and_is_not_hammered(
        scripted: tuple[ClusterAgent, Clock, Broker]) -> None:
    agent, clock, broker = scripted
    broker.down = True
    assert _beats(agent, clock, 30) is None
    assert max(_gaps(broker.asked)) == 5.0 and min(_gaps(broker.asked)) == 0.5
    broker.down, broker.count = False, 4
    assert _beats(agent, clock, 5.1) == 4
    broker.down = True
    broker.asked.clear()
    assert _beats(agent, clock, 65) == 4  # a known count is not dropped for an error
    assert _gaps(broker.asked) == [30.0]


def test_one_asking_at_a_time(scripted: tuple[ClusterAgent, Clock, Broker],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow broker (an asking that has not returned yet) starts no second one."""
    agent, clock, broker = scripted
    started: list[InlineThread] = []

    class Held(InlineThread):
        def start(self) -> None:
            started.append(self)
    monkeypatch.setattr(counts_module, "threading",
                        SimpleNamespace(Lock=threading.Lock, Thread=Held))
    _beats(agent, clock, 20)
    assert len(started) == 1 and broker.asked == []
    broker.count = 2
    started[0].start = InlineThread.start.__get__(started[0])  # type: ignore[method-assign]
    started[0].start()
    assert agent.local().relations[OWN_USERS.name].partitions == 2

"""The worker's topic check (`TopicWatch`, every 10 s, through `describe_topics`) must not
leave anything behind: confluent-kafka leaks a reference to every TopicDescription's
`topic_id` Uuid, so each check kept one object per source topic for ever (probe h98:
+18 objects a minute per worker process with 3 topics, without bound)."""

from __future__ import annotations

import gc
import sys

import pytest
from confluent_kafka import Uuid
from confluent_kafka.admin import TopicDescription

from connectors.kafka_admin import describe_topics, release_leaked_topic_id
from materializer.devbroker import DevBroker

pytestmark = [pytest.mark.integration]

CHECKS = 40


def _uuids() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is Uuid)


def test_repeated_topic_checks_keep_no_topic_ids(session_broker: DevBroker) -> None:
    topics = [session_broker.create_topic(partitions=2) for _ in range(3)]
    conf = session_broker.kafka_config()
    first = describe_topics(conf, topics)  # the first client's one-time allocations
    assert all(first[t] is not None for t in topics)
    del first
    before = _uuids()
    for _ in range(CHECKS):
        found = describe_topics(conf, topics)
        assert {t: s.partitions for t, s in found.items() if s is not None} == \
            dict.fromkeys(topics, 2)
    del found
    grown = _uuids() - before
    # leaking, this is CHECKS * 3 = 120; a few are allowed for objects in flight
    assert grown <= 3, f"{grown} topic-id objects left behind by {CHECKS} checks"


def test_release_leaves_a_well_counted_uuid_alone() -> None:
    """A description whose Uuid is not over-referenced (from a confluent-kafka that does not
    leak: built in Python, the description alone holds it) is not touched: its Uuid stays
    alive and readable, however often it is released."""
    described = TopicDescription("t", Uuid(1, 2), False, [])
    for _ in range(3):
        release_leaked_topic_id(described)
    held = sys.getrefcount(described.topic_id)  # outside `assert`: pytest's rewrite holds one
    assert held == 2  # the description's and getrefcount's argument
    assert str(described.topic_id) == str(Uuid(1, 2))
    release_leaked_topic_id(TopicDescription("t", None, False, []))
    release_leaked_topic_id(object())

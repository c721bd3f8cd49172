"""`rebuild` replays a topic to the end offset seen at start and finishes while a producer
keeps writing it (a plain one, and one writing transactions back to back); before, it
waited for a poll that came back empty and the end of now, so it ran to its one-hour timeout
and failed with the local state unchanged. Real broker, producers and CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from materializer.devbroker import DevBroker
from tests.support.busy_producer import STRING_TABLE, writing
from tests.support.workers import applied_offsets, run_cli, unique, write_config


@pytest.mark.parametrize("transactions", [False, True], ids=["plain", "transactional"])
def test_rebuild_finishes_while_the_topic_is_written(session_broker: DevBroker, tmp_path: Path,
                                                     transactions: bool) -> None:
    topic = session_broker.create_topic(unique("busy"), partitions=1)
    cfg = write_config(tmp_path / "t.yaml", session_broker, STRING_TABLE.format(topic=topic))
    with writing(session_broker, topic, transactions) as writer:
        rebuilt = run_cli("rebuild", str(cfg), "t", timeout=60)
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert writer.is_alive(), "the topic was not written during the whole replay"
    replayed = int(rebuilt.stdout.split(" records replayed")[0].split()[-1])
    assert replayed >= 25
    (next_offset,) = applied_offsets(tmp_path / "data", "t").values()
    assert next_offset >= replayed

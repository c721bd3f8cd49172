"""`Sink.produce_many` (the outbox's one loop over a chunk of change events): messages go to
the producer in order, each to its partition (-1: the partitioner's), and a message the
producer refuses as too large stops the loop, saying how many went before it."""

from __future__ import annotations

import pytest

from connectors.producer import MessageTooLarge, Sink
from materializer.changes.placement import PRODUCER_HASH, SAME, ChangePlacement
from materializer.devbroker import free_port


def _sink(**extra: str) -> Sink:
    """A producer that nobody answers: produced messages wait in its queue."""
    return Sink({"bootstrap.servers": f"127.0.0.1:{free_port()}"},
                {"log_level": 0, **extra})


def test_a_message_too_large_says_how_many_went_before_it() -> None:
    sink = _sink(**{"message.max.bytes": "2000"})
    msgs = [(b"a", b"x", 0), (b"b", b"y" * 10, -1), (b"c", b"z" * 3000, 0), (b"d", b"w", 0)]
    with pytest.raises(MessageTooLarge) as info:
        sink.produce_many("t", msgs)
    assert info.value.produced == 2  # the two before it


def test_the_first_message_too_large_went_after_none() -> None:
    sink = _sink(**{"message.max.bytes": "2000"})
    with pytest.raises(MessageTooLarge) as info:
        sink.produce_many("t", [(b"c", b"z" * 3000, 0), (b"d", b"w", 0)])
    assert info.value.produced == 0


def test_placed_messages_keep_their_order_and_pins() -> None:
    msgs = [(0, b"k0", b"v"), (3, b"k1", None), (-1 - 2, b"k2", b"v")]  # the last pinned to 2
    same = ChangePlacement("t", "s", None, 4)
    same.partitions = SAME
    assert same.placed(msgs) == [(b"k0", b"v", 0), (b"k1", None, 3), (b"k2", b"v", 2)]
    by_producer = ChangePlacement("t", "s", None, 4)
    by_producer.partitions = PRODUCER_HASH
    assert by_producer.placed(msgs) == [(b"k0", b"v", -1), (b"k1", None, -1),
                                        (b"k2", b"v", 2)]
    hashed = ChangePlacement("t", "s", None, 4)
    hashed.partitions = 5
    assert [m[2] for m in hashed.placed(msgs)] == [hashed.target(0, b"k0"),
                                                   hashed.target(3, b"k1"), 2]

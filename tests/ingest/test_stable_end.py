"""A partition's end while a transaction is open in it: the last stable offset librdkafka's
statistics show, as long as the high watermark is the one they show with it (the last stable
offset moves only with a commit or abort marker, which moves the high watermark too); never
an end below a record the consumer could read (`connectors.kafka_reach.Reach.stable_end`)."""

from __future__ import annotations

import json

from connectors.kafka_reach import Reach


def _stats(hi: int, ls: int) -> str:
    return json.dumps({
        "brokers": {"127.0.0.1:9092/111": {"nodeid": 111, "state": "UP", "rxidle": 1000}},
        "topics": {"t": {"partitions": {
            "0": {"leader": 111, "fetchq_cnt": 0, "hi_offset": hi, "ls_offset": ls},
            "-1": {"leader": -1, "fetchq_cnt": 0, "hi_offset": -1001, "ls_offset": -1001}}}}})


def test_an_open_transaction_ends_the_partition_at_its_first_record() -> None:
    reach = Reach(fetch_wait_ms=100)
    assert reach.stable_end("t", 0, 8) == 8  # no statistics yet: the high watermark
    reach.on_stats(_stats(8, 7))  # a transaction open at offset 7
    assert reach.stable_end("t", 0, 8) == 7
    assert reach.stable_end("t", 1, 8) == 8  # another partition: not shown


def test_a_high_watermark_moved_since_the_statistics_is_the_end() -> None:
    """The transaction committed (or more records came) since: the statistics' last stable
    offset may be behind records now readable, so the high watermark counts."""
    reach = Reach(fetch_wait_ms=100)
    reach.on_stats(_stats(8, 7))
    assert reach.stable_end("t", 0, 10) == 10


def test_no_transaction_open_or_no_figure_reads_the_high_watermark() -> None:
    reach = Reach(fetch_wait_ms=100)
    for hi, ls in ((8, 8), (8, -1001), (8, 9)):
        reach.on_stats(_stats(hi, ls))
        assert reach.stable_end("t", 0, 8) == 8
    reach.on_stats('{"topics": {"t": {"partitions": {"0": {"hi_offset": "x", "ls_offset": 1}}}}}')
    assert reach.stable_end("t", 0, 8) == 8  # unreadable statistics: the last ones kept
    reach.on_stats(json.dumps({"topics": {"t": {"partitions": {"0": {"leader": 1}}}}}))
    assert reach.stable_end("t", 0, 8) == 8  # statistics without the figures

"""`run --processes N`: a partition that moved between worker processes is listed by both
status files until the one it left writes again (up to a second); the merged status listed
it twice and `/metrics` exported two samples of one series (`materializer_partition_lag`,
`_end_offset`, `_applied_offset` with the same labels), which a Prometheus scrape refuses."""

from __future__ import annotations

from typing import Any

from materializer.api.metrics import Exposition, add_worker_metrics
from materializer.ingest.status_merge import merge_statuses


def _worker(parts: dict[int, int], updated: float) -> dict[str, Any]:
    return {"pid": 1, "updated_at": updated, "started_at": updated - 10,
            "assigned": [["t", p] for p in parts],
            "partitions": [{"relation": "public.t", "topic": "t", "partition": p,
                            "next_offset": 5, "end_offset": end, "lag": end - 5}
                           for p, end in parts.items()],
            "caught_up": all(end == 5 for end in parts.values()), "metrics": {}}


def _series(text: str) -> list[str]:
    return [line.rsplit(" ", 1)[0] for line in text.splitlines() if not line.startswith("#")]


def test_a_partition_two_workers_list_is_one_series_from_the_newer_status() -> None:
    now = 1_800_000_000.0
    left = _worker({0: 5, 1: 5}, now - 0.9)  # written before partition 1 was revoked
    took = _worker({1: 9, 2: 5}, now - 0.1)  # the worker partition 1 moved to
    merged = merge_statuses([left, took], 9, False, now=now)
    keys = [(p["relation"], p["partition"]) for p in merged["partitions"]]
    assert sorted(keys) == [("public.t", 0), ("public.t", 1), ("public.t", 2)]
    assert merged["caught_up"] is False  # still read from every entry
    exp = Exposition()
    add_worker_metrics(exp, merged, now)
    series = _series(exp.text())
    assert len(series) == len(set(series)), series
    text = exp.text()
    assert 'materializer_partition_lag{relation="public.t",topic="t",partition="1"} 4' in text
    # the order of a worker's own partitions is kept
    merged = merge_statuses([took, left], 9, False, now=now)
    assert [p["partition"] for p in merged["partitions"]] == [0, 1, 2]

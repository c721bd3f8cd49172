"""What a worker publishes in its status file (`<store>/worker.json`, read by `status`,
/readyz, /metrics and the supervisor of `run --processes N`): identity, assignment,
partition progress, readiness and the counters."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from materializer import gc_tuning
from materializer.procstats import process_stats
from materializer.status import is_dropped

if TYPE_CHECKING:
    from materializer.ingest.worker import Worker


def worker_status(worker: Worker, parts: list[dict[str, Any]], caught_up: bool,
                  stopping: bool) -> dict[str, Any]:
    """The status of `worker` now, with its `parts` (`Worker.partition_progress`)."""
    return {
        **worker.identity, "updated_at": time.time(), "started_at": worker.started_at,
        "group": worker.group, "stopping": stopping,
        "assigned": sorted({tp for f in worker.feeds if f.source is not None
                            for tp in f.source.assigned}),
        "partitions": parts, "caught_up": caught_up, "retrying": worker.retrying,
        "change_events_stuck": {r.spec.name: r.outbox.stuck for r in worker.relations
                                if r.outbox is not None and r.outbox.drains
                                and r.outbox.stuck is not None},
        "metrics": {"records_applied_total": worker.applied_total,
                    "records_dropped_total": {k: v for k, v in worker.counters.items()
                                              if is_dropped(k.split("|", 1)[1])},
                    "records_rejected_total": {k: v for k, v in worker.counters.items()
                                               if not is_dropped(k.split("|", 1)[1])},
                    "batch_seconds": worker.batch_hist.as_dict(),
                    "outbox_backlog": {r.spec.name: r.outbox.backlog()
                                       for r in worker.relations
                                       if r.outbox is not None and r.outbox.drains},
                    "change_events_total": {r.spec.name: r.outbox.drained_total
                                            for r in worker.relations
                                            if r.outbox is not None and r.outbox.drains},
                    "dead_letters_total": worker.dead_letters.sent,
                    "rebalances_total": sum(getattr(f.source, "generation", 0)
                                            for f in worker.feeds if f.source is not None),
                    "registry_retries_total": getattr(worker.registry, "retries", 0),
                    "process": {**process_stats(),
                                "gc_collections_total": gc_tuning.collections()}},
    }

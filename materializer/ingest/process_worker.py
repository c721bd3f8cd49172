"""One worker process of `materializer run --processes N` (`materializer run CONFIG
--worker-index I`, started by `ingest.processes.Supervisor`): its one job is to run a
`Worker` that shares the store with the others: on the declaration `run` started with,
its partitions starting at the offset stored (not where this process last was), its
status written to its own `worker.<I>.json` for the supervisor to merge.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from materializer import gc_tuning
from materializer.children import die_with_parent
from materializer.errors import ConfigError
from materializer.ingest.opening import Feed
from materializer.ingest.resets import not_current
from materializer.ingest.topics import TopicReset
from materializer.ingest.worker import Worker
from materializer.specs import Catalog
from materializer.store import StoreLock


def child_status_path(store_path: str | os.PathLike[str], index: int) -> Path:
    return Path(store_path) / f"worker.{index}.json"


def config_digest(path: str | os.PathLike[str]) -> str:
    """A digest of the declaration file's bytes ('' if it cannot be read: loading it says
    why)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def check_same_config(path: str | os.PathLike[str], expected: str | None, digest: str) -> None:
    """In a worker process: ConfigError (exit 2) unless the declaration file holds what it
    held when `run` started (`expected`, its digest). A worker started again after a kill
    reads the file anew; had it applied an edited declaration, the workers of one run would
    apply two (a column added: the partitions of the others stored NULL in it)."""
    if expected is not None and digest != expected:
        raise ConfigError(
            f"{path} changed since `materializer run` started; its worker processes all apply "
            "the declaration it started with, so this one does not start: restart `materializer "
            "run` to apply the new declaration")


def for_worker(catalog: Catalog, index: int) -> Catalog:
    """What worker `index` runs: worker 0 everything, the others no `replicated: true`
    tables (every worker would read all their partitions) and no scheduled snapshots."""
    if index == 0:
        return catalog
    return dataclasses.replace(
        catalog, snapshots=None,
        tables=tuple(t for t in catalog.tables if not getattr(t, "replicated", False)))


class StoreFeed(Feed):
    """A feed whose partitions start where the store says, not where this process last
    was: another worker process may have applied them since."""

    def start_offset(self, topic: str, partition: int) -> int | None:
        for rel in self.by_topic.get(topic, []):
            stored = rel.writer.next_offsets().get(partition)
            if stored is not None and stored > rel.next_offsets.get(partition, -1):
                rel.next_offsets[partition] = stored
        return super().start_offset(topic, partition)


class ProcessWorker(Worker):
    """One of `run --processes N`'s workers (see this module's doc and `ingest.processes`)."""

    cluster_member = False
    # the supervisor recorded the whole declaration; this catalog may lack the replicated
    # tables (`for_worker`), which readers would then refuse as no longer declared
    declares = False

    def __init__(self, catalog: Catalog, index: int, **kwargs: Any) -> None:
        super().__init__(catalog, **kwargs)
        self.index = index
        for rel in self.relations:  # decided before the write transaction (ingest.relation),
            rel.shared = True         # change events sent by the supervisor (changes.drainer)
        self.grouped = StoreFeed(self.grouped.by_topic)

    def _rebuild_in_place(self, rel: Any, topic_id: str | None) -> None:
        not_current(rel)
        raise TopicReset(
            f"{rel.spec.kind} {rel.spec.name}: its local state must be rebuilt (topic "
            f"{rel.spec.topic} was recreated, or its offsets are gone), which several worker "
            f"processes do not do in place: run `materializer rebuild CONFIG {rel.spec.name}`, "
            "then start again")

    def _publish_status(self, status: dict[str, Any]) -> None:
        path = child_status_path(self.catalog.store_path, self.index)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**status, "worker_index": self.index}))
        os.replace(tmp, path)


def run_worker(catalog: Catalog, index: int, lock_fd: int, parent: int, batch_size: int,
               stop: threading.Event, progress: Any) -> int:
    """The body of `materializer run CONFIG --worker-index I` (started by `Supervisor`)."""
    die_with_parent()
    if os.getppid() != parent:
        return 0  # the supervisor is gone already
    lock = StoreLock.inherit(catalog.store_path, lock_fd)
    try:
        worker = ProcessWorker(for_worker(catalog, index), index, batch_size=batch_size,
                               progress=progress, stop_event=stop)
        gc_tuning.settle()
        worker.run()
    finally:
        lock.release()
    return 0

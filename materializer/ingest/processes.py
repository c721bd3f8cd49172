"""`materializer run --processes N` (or `workers: N`): N worker processes, one machine, one store.

The `run` process becomes a supervisor: it holds the store lock, opens every relation
once (so no two processes ever create the same relation's files), then starts N
workers, `materializer run CONFIG --worker-index I` each, in the same consumer group.
The group spreads the partitions over them; every worker writes the one store (LMDB
lets one write transaction in at a time, across processes), so the API and any
`Store` on the machine read every partition locally.

Guarantees:
- One lock for all: each worker holds the supervisor's store lock descriptor
  (`StoreLock.inherit`), so the lock stays held while any of them still writes, even if
  the supervisor died first; workers die with the supervisor (SIGTERM from the kernel,
  then their batch commits as on any SIGTERM).
- Crash safety is the single worker's: each batch commits rows and next offsets in one
  transaction. A partition that moves to another worker (a rebalance, a worker killed)
  starts from the offset committed in the store, and a batch skips records below the
  stored offset read inside its own transaction: no record is applied twice, even by a
  worker that has not yet noticed it lost the partition.
- A worker killed by a signal (kill -9, a crash) is started again; one that stops with
  an error (a bad record under `fail`, a recreated topic) stops the others and `run`
  exits with its code. SIGTERM/SIGINT to `run` (or Ctrl-C, which reaches every process)
  stop every worker cleanly (exit 0); a worker that stops cleanly on its own stops `run`.
- Status: each worker writes `<store>/worker.<I>.json`; the supervisor merges them into
  `worker.json` every second (materializer.ingest.status_merge: counters summed and carried
  over a worker started again, caught up when every worker is), so `status`, `/readyz` and
  `/metrics` read one status as before.

- Change events: every worker stages a batch's events in the batch's transaction, into the
  table's one outbox; the supervisor alone sends them (materializer.changes.drainer), in
  the order the batches committed, and drains once more after every worker has stopped.
  Batches of tables that read stored rows (before images, merges) are decided on a read
  transaction before the write transaction and kept if the partition's stored offset has
  not moved (ingest.relation), so the workers queue only for the writes.

What runs inside each worker process: materializer.ingest.process_worker.

`workers: auto` (`--processes auto`) is one process per usable CPU, at most one per partition
of the topics the group shares (`auto_processes`); 1 runs the single worker, not this.

Refused (exit 2): a table with change events that still owes its change topic the snapshot
of an in-place rebuild (run once with one process). Scheduled snapshots and
`replicated: true` tables are left to worker 0. The workers take no part in cluster
routing (they are one member's store; see README "A cluster of workers"). A topic
recreated under a relation stops `run` with the command to rebuild it, instead of
rebuilding in place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import lmdb

from materializer.changes.drainer import OutboxDrainer
from materializer.children import die_with_parent, signal_name
from materializer.errors import ConfigError, MaterializerError
from materializer.ingest.opening import open_registry, open_relations

# one worker process's side (`materializer run CONFIG --worker-index I`), importable from here
from materializer.ingest.process_worker import ProcessWorker as ProcessWorker
from materializer.ingest.process_worker import StoreFeed as StoreFeed
from materializer.ingest.process_worker import check_same_config as check_same_config
from materializer.ingest.process_worker import child_status_path
from materializer.ingest.process_worker import config_digest as config_digest
from materializer.ingest.process_worker import for_worker as for_worker
from materializer.ingest.process_worker import run_worker as run_worker
from materializer.ingest.status_merge import RetiredCounters, merge_statuses, read_status_file
from materializer.specs import Catalog, TableSpec
from materializer.status import write_status, writer_identity
from materializer.store import StoreLock

log = logging.getLogger("materializer.worker")

RESTART_AFTER = 1.0
"""Seconds before a worker killed by a signal is started again."""
CRASH_LOOP = 5.0
"""A worker killed again within this many seconds of its start is not restarted."""
STOP_GRACE = 30.0
"""Seconds the workers have to finish their batch and leave the group after SIGTERM."""


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def auto_processes(catalog: Catalog, cpus: int | None = None,
                   partitions: Callable[[str], int] | None = None) -> int:
    """`workers: auto` (`--processes auto`): one worker process per usable CPU, and no more
    than the partitions of the topics the group shares (the group would leave the others
    idle). A topic that does not exist yet, or a broker that does not answer, leaves the
    partitions uncounted: one per CPU. Decided once, at start; logged."""
    cpus = usable_cpus() if cpus is None else cpus
    topics = sorted({r.topic for r in catalog.relations if not getattr(r, "replicated", False)})
    if partitions is None:
        from connectors.kafka_admin import partition_count  # noqa: PLC0415

        def partitions(topic: str) -> int:
            return partition_count(catalog.kafka_config, topic)
    total: int | None = 0
    why = ""
    for topic in topics:
        try:
            n = partitions(topic)
        except MaterializerError as e:
            total, why = None, f"; partitions not counted: {e}"
            break
        if n == 0:
            total, why = None, f"; partitions not counted: topic {topic} does not exist yet"
            break
        total = (total or 0) + n
    if not topics:  # only replicated tables: worker 0 would read them all
        chosen, why = 1, "; every table is replicated"
    else:
        chosen = max(1, cpus if total is None else min(cpus, total))
    if total:
        why = f", {total} partition(s) shared by the group"
    log.info("workers: auto -> %d worker process(es) (%d usable CPU(s)%s)", chosen, cpus, why)
    return chosen


def check_processes(catalog: Catalog, n: int) -> None:
    """ConfigError (exit 2) for what several worker processes cannot do."""
    if n < 1:
        raise ConfigError(f"--processes must be at least 1, not {n}")


# --------------------------------------------------------------------------- the supervisor


@dataclasses.dataclass
class _Child:
    index: int
    proc: subprocess.Popen[bytes]
    started: float


class Supervisor:
    """Runs N `ProcessWorker`s until `stop` is set (see the module doc). Quacks like a
    `Worker` for `cmd_run`: `run()`, `applied_total`, `clean_shutdown`."""

    def __init__(self, catalog: Catalog, n: int, lock: StoreLock, argv: Sequence[str],
                 stop: threading.Event) -> None:
        check_processes(catalog, n)
        self.catalog = catalog
        self.n = n
        self.lock = lock
        self.argv = list(argv)  # `materializer run CONFIG [options]`, without --worker-index
        self.stop_event = stop
        self.applied_total = 0
        self.retired = RetiredCounters()  # of workers killed and started again
        # (relation, partition) pairs any worker held: caught up needs all of them held again
        self.known_partitions: set[tuple[str, int]] = set()
        self.clean_shutdown = True
        # every relation's files exist before any worker opens them (and orphaned
        # generations are removed by the lock holder)
        registry = open_registry(catalog)
        relations = open_relations(catalog, registry)
        owing = [rel.spec.name for rel in relations
                 if isinstance(rel.spec, TableSpec) and rel.spec.changes is not None
                 and rel.writer.snapshot_due()]
        if owing:
            raise ConfigError(
                f"{', '.join(owing)}: owes its change topic a snapshot of the table (rebuilt "
                "in place and stopped before it was sent, `changes:` declared on a table "
                "that already held rows, or state an older materializer wrote), which several "
                "worker processes do not emit: run "
                "once with --processes 1 (workers: 1) until it has caught up, then start "
                "again with more")
        for i in range(64):
            with contextlib.suppress(OSError):
                child_status_path(catalog.store_path, i).unlink()
        self.relations = relations
        self.marked: dict[str, set[int]] = {}  # by _revoke_held, cleared at the stop
        self.drainer = OutboxDrainer.for_relations(catalog, relations, registry,
                                                   on_failure=stop.set)

    def _start(self, index: int) -> _Child:
        args = [sys.executable, "-m", "materializer", *self.argv,
                "--worker-index", str(index), "--lock-fd", str(self.lock.fd),
                "--parent-pid", str(os.getpid())]
        proc = subprocess.Popen(args, pass_fds=self.lock.pass_fds(),
                                preexec_fn=die_with_parent)  # noqa: PLW1509
        log.info("worker process %d started (pid %d)", index, proc.pid)
        return _Child(index, proc, time.monotonic())

    def run(self) -> None:
        if self.drainer is not None:
            self.drainer.start()
        children = [self._start(i) for i in range(self.n)]
        failure: tuple[int, int] | None = None
        next_status = 0.0
        try:
            while not self.stop_event.is_set():
                for i, c in enumerate(children):
                    code = c.proc.poll()
                    if code is None:
                        continue
                    if code == 0:  # stopped by a signal of its own (Ctrl-C reaches all)
                        log.info("worker process %d stopped; stopping the others", c.index)
                        self.stop_event.set()
                        break
                    if code < 0 and time.monotonic() - c.started > CRASH_LOOP:
                        log.warning("worker process %d (pid %d) was killed by signal %d; "
                                    "starting it again (its batch in flight was not "
                                    "committed: nothing is lost)", c.index, c.proc.pid, -code)
                        self._worker_killed(c, children)
                        if self.stop_event.wait(RESTART_AFTER):
                            break  # stopped meanwhile: nothing to start again
                        children[i] = self._start(c.index)
                    else:
                        failure = (c.index, code)
                        if code < 0:  # killed again within CRASH_LOOP of its start
                            log.error("worker process %d (pid %d) was killed by %s %.1f s "
                                      "after its start (within %.0f s: a crash loop); not "
                                      "starting it again", c.index, c.proc.pid,
                                      signal_name(-code), time.monotonic() - c.started,
                                      CRASH_LOOP)
                        self.stop_event.set()
                        break
                now = time.monotonic()
                if now >= next_status:
                    next_status = now + 1.0
                    self._merge_status(children)
                self.stop_event.wait(0.2)
        finally:
            _stop(children)
            self._unmark()
            if self.drainer is not None:  # what the workers staged up to their last batch
                self.drainer.finish(time.monotonic() + STOP_GRACE)
            self._merge_status(children, stopping=True)
        if self.drainer is not None and self.drainer.failure is not None:
            raise self.drainer.failure
        if failure is not None:
            index, code = failure
            how = (f"was killed by {signal_name(-code)} within {CRASH_LOOP:.0f} s of its start "
                   "and not started again (a crash loop)" if code < 0 else
                   f"exited with code {code} (see its message above)")
            err = MaterializerError(
                f"worker process {index} {how}; the other worker processes stopped with it")
            err.exit_code = code if code > 0 else 1
            raise err

    def _worker_killed(self, child: _Child, children: Sequence[_Child]) -> None:
        """What a worker killed by a signal leaves: its last status (caught up, fresh for
        seconds) no longer counts, its counters are carried, its partitions are marked as not
        held, and stay known (`known_partitions`) until a worker holds them again: a worker
        killed less than a merge (a second) after it was given them has listed them in no
        merged status, and its status file goes here, so the merge would not know them."""
        path = child_status_path(self.catalog.store_path, child.index)
        last = read_status_file(path)
        self._learn_partitions([last])
        self._revoke_held(last)
        self.retired.retire(path)
        self._merge_status(children)

    def _learn_partitions(self, statuses: Sequence[dict[str, Any] | None]) -> None:
        """Add to `known_partitions` every (relation, partition) of the relations' topics
        (the partition count a worker recorded in the store on its start, before it joined
        the group: see ingest.topics.TopicWatch) and every one `statuses` list: merged
        caught up needs each held by a worker. Without the counts, a merge of a worker not
        yet given its partitions (or whose status predates them) and one caught up on its
        own said caught up from the second's partitions alone."""
        for rel in self.relations:
            try:
                count = rel.writer.source_partitions()
            except (MaterializerError, lmdb.Error, ValueError) as e:
                log.warning("%s: cannot read the partition count of topic %s recorded in the "
                            "store: %s", rel.spec.name, rel.spec.topic, e)
                continue
            if count is not None:
                self.known_partitions.update((rel.spec.name, p) for p in range(count))
        for status in statuses:
            for p in (status or {}).get("partitions") or ():
                if isinstance(p, dict) and isinstance(p.get("relation"), str) \
                        and isinstance(p.get("partition"), int):
                    self.known_partitions.add((p["relation"], p["partition"]))

    def _revoke_held(self, status: dict[str, Any] | None) -> None:
        """Mark the partitions a worker killed by a signal held as revoked in the store: no
        worker reads them until the group gives them to one (after the dead member's session
        expires: 45 s by default), which clears the mark; meanwhile a miss of theirs is not
        "absent" (the API answers 503, as for any partition not held). So are worker 0's
        `replicated: true` tables until it is started again and reads them
        (`Worker._replicated_held` clears the mark). Each relation's own partitions (its
        status rows): a topic may feed a replicated table and a grouped one. A worker that
        was stopping when it died left the group and marked them itself."""
        if status is None or status.get("stopping"):
            return
        held: dict[str, set[int]] = {}  # by relation: a topic may feed a replicated table
        for p in status.get("partitions") or ():  # and a grouped one (others hold some)
            if isinstance(p, dict) and isinstance(p.get("relation"), str) \
                    and isinstance(p.get("partition"), int):
                held.setdefault(p["relation"], set()).add(p["partition"])
        for rel in self.relations:
            parts = sorted(held.get(rel.spec.name, ()))
            if not parts:
                continue
            try:
                rel.writer.set_revoked(parts, True)
            except MaterializerError as e:  # readers then answer those rows as before
                log.warning("%s: cannot mark partitions %s of a killed worker as not held: %s",
                            rel.spec.name, parts, e)
            else:
                self.marked.setdefault(rel.spec.name, set()).update(parts)

    def _unmark(self) -> None:
        """At the stop (every worker gone): the marks `_revoke_held` made that no worker
        cleared go, as a clean stop keeps a worker's partitions current (connectors.kafka)."""
        for rel in self.relations:
            parts = self.marked.pop(rel.spec.name, None)
            if parts:
                with contextlib.suppress(MaterializerError):
                    rel.writer.set_revoked(parts, False)

    def _merge_status(self, children: Sequence[_Child], stopping: bool = False) -> None:
        statuses = [read_status_file(child_status_path(self.catalog.store_path, c.index))
                    for c in children]
        self._learn_partitions(statuses)
        merged = merge_statuses(statuses, os.getpid(), stopping, known=self.known_partitions)
        merged.update(writer_identity())  # the supervisor wrote it: gone with it
        merged["metrics"] = self.retired.add_to(merged["metrics"])
        if self.drainer is not None:
            merged["metrics"].update(self.drainer.metrics())
            merged["change_events_stuck"] = self.drainer.stuck()
        applied = (merged.get("metrics") or {}).get("records_applied_total")
        if isinstance(applied, int):
            self.applied_total = applied
        try:
            write_status(self.catalog.store_path, merged)
        except OSError as e:
            log.warning("cannot write the status file in %s: %s", self.catalog.store_path, e)


def _stop(children: Sequence[_Child]) -> None:
    """SIGTERM to `children`, then wait up to `STOP_GRACE` for all of them (then kill)."""
    for c in children:
        if c.proc.poll() is None:
            with contextlib.suppress(OSError):
                c.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    for c in children:
        try:
            c.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("worker process %d did not stop in %.0f s: killed (committed "
                        "state is safe)", c.index, STOP_GRACE)
            c.proc.kill()
            c.proc.wait()

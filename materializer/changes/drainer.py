"""`run --processes N`: the supervisor sends the change events every worker process stages.

Guarantees:
- One sender per outbox. The worker processes only stage (`ChangeOutbox(shared=True,
  drains=False)`); this drainer, in the supervisor, is the only process that reads,
  produces and deletes events, in outbox key order, which is the order the batches
  committed (see materializer.changes.outbox), so each key's events reach the change topic
  in the order they were applied, as with one process.
- A stop delivers everything: `finish` runs after every worker process has exited, so its
  last drain sends what they staged (bounded by a deadline; what is left stays in the
  outbox for the next run: at least once, order kept).
- A failure a retry cannot fix (a store failure, a bug) is kept in `failure` and
  `on_failure` is called (the supervisor then stops the workers and raises it); broker
  trouble is the outbox's own back-off.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from materializer.changes.outbox import ChangeOutbox
from materializer.protocols import SchemaRegistry
from materializer.shutdown import bounded
from materializer.specs import Catalog, TableSpec

if TYPE_CHECKING:
    from materializer.ingest.relation import Relation

log = logging.getLogger("materializer.changes")

IDLE_WAIT = 0.01
"""Seconds between looks at the outboxes while they are empty."""


class OutboxDrainer:
    """Drains the shared outboxes of a store's tables with `changes` from one thread."""

    def __init__(self, outboxes: Sequence[ChangeOutbox], on_failure: Callable[[], None]
                 ) -> None:
        self.outboxes = list(outboxes)
        self.failure: BaseException | None = None
        self._on_failure = on_failure
        self._halt = threading.Event()
        # read by the drainer's thread only (LMDB adopts a grown map only while this
        # process has no other transaction open): `metrics` hands out the last figures
        self._backlog: dict[str, int] = {o.spec.name: 0 for o in self.outboxes}
        self._thread = threading.Thread(target=self._loop, name="outbox-drainer", daemon=True)

    @classmethod
    def for_relations(cls, catalog: Catalog, relations: Sequence[Relation],
                      registry: SchemaRegistry | None, on_failure: Callable[[], None]
                      ) -> OutboxDrainer | None:
        """The drainer of every relation declaring `changes`, or None if none does."""
        emitting = [r for r in relations if isinstance(r.spec, TableSpec) and r.spec.changes]
        if not emitting:
            return None
        from connectors.producer import Sink  # noqa: PLC0415

        sink = Sink(catalog.kafka_config)
        return cls([ChangeOutbox(r.spec, r.writer, r.applier.layout, sink, None,  # type: ignore[arg-type,union-attr]
                                 registry, kafka_conf=catalog.kafka_config, shared=True)
                    for r in emitting], on_failure)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        try:
            while not self._halt.is_set():
                # a chunk per outbox per round: the figures stay fresh under load
                sent = sum(o.drain(max_chunks=1) for o in self.outboxes)
                self._note_backlog()
                if not sent:
                    self._halt.wait(IDLE_WAIT)
        except Exception as e:  # noqa: BLE001 - kept and raised by the supervisor
            self.failure = e
            self._on_failure()

    def finish(self, deadline: float) -> None:
        """Stop the loop, then drain once more (call after every worker process has
        exited), giving up at `deadline` (time.monotonic())."""
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join(max(0.0, deadline - time.monotonic()))
        if self.failure is not None:
            return
        bounded(self._last_round, "delivering change events", deadline, log)

    def _last_round(self) -> None:
        for o in self.outboxes:
            o.drain()
        self._note_backlog()

    def _note_backlog(self) -> None:
        self._backlog = {o.spec.name: o.backlog() for o in self.outboxes}

    def stuck(self) -> dict[str, str]:
        """Per table whose outbox cannot deliver (`ChangeOutbox.stuck`), why."""
        return {o.spec.name: why for o in self.outboxes if (why := o.stuck) is not None}

    def metrics(self) -> dict[str, Any]:
        """The outbox figures of the status (`worker.json`), per table, as the drainer's
        thread last saw them."""
        return {"outbox_backlog": dict(self._backlog),
                "change_events_total": {o.spec.name: o.drained_total for o in self.outboxes}}

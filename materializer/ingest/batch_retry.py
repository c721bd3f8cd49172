"""A batch applied again while what it needs is away (the schema registry, the broker):
`apply_with_retry`, and `back_off`, the wait that keeps the group's consumer a member.

Guarantees: the same batch is applied again, the wait doubling from 0.5 s up to 30 s,
until it is applied, fails in a way that is not retriable, or the worker stops (then
that failure is raised). Safe: a failed relation's transaction was aborted, and a
relation that did commit skips the records below its new next offset. Meanwhile the
group's consumer is held (`Source.hold`: its partitions paused, the consumer polled), so
a wait longer than `max.poll.interval.ms` does not make it leave the group; a partition
the group takes from it meanwhile is dropped from the batch (it is read again from where
the store says, if it comes back). The status is written at least every `status_every`
seconds of the wait (lag, registry retries, what it waits on), so readers see a worker
held up, not a stale file.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from materializer.errors import MaterializerError

if TYPE_CHECKING:
    from connectors.kafka import Source

log = logging.getLogger("materializer.worker")

HOLD_SLICE = 0.25  # a batch retried polls its group's consumer this often (stop: as soon)

Ends = dict[tuple[str, int], int]


def back_off(group: Source | None, stop: threading.Event, seconds: float) -> None:
    """Wait `seconds` (less once `stop` is set), the group's consumer held
    (`Source.hold`): still a member after `max.poll.interval.ms`."""
    if group is None:
        stop.wait(seconds)
    else:
        group.hold(seconds)


def apply_with_retry(apply: Callable[[list[Any], Ends | None], None], msgs: list[Any],
                     ends: Ends | None, *, group: Source | None, of_group: bool,
                     stop: threading.Event, waiting_on: Callable[[str | None], None],
                     write_status: Callable[[float], None], status_every: float) -> None:
    """`apply(msgs, ends)` until it is done (see this module's doc). `of_group`: the batch
    is the `group` consumer's (its revoked partitions are dropped from it); `waiting_on`
    is told what the batch waits on (None once applied); `write_status(now)` writes the
    status."""
    delay = 0.5
    while True:
        try:
            apply(msgs, ends)
            waiting_on(None)
            return
        except MaterializerError as e:
            if not e.retriable or stop.is_set():
                raise
            # retry_in: an unknown schema id, asked again every 2 s at most until its
            # wait ends (`unknown.id.wait.ms`), whatever the backoff has grown to
            retry_in = getattr(e, "retry_in", None)
            wait = delay if retry_in is None else max(0.05, min(delay, 2.0, retry_in))
            log.warning("batch failed, retrying in %.1f s: %s", wait, e)
            waiting_on(str(e))
            until = time.monotonic() + wait
            written = 0.0
            while (left := until - time.monotonic()) > 0 and not stop.is_set():
                if time.monotonic() - written >= status_every:
                    written = time.monotonic()
                    write_status(written)
                back_off(group, stop, min(left, status_every if group is None else HOLD_SLICE))
            if group is not None and of_group:  # revoked meanwhile: not ours
                msgs = [m for m in msgs if (m.topic(), m.partition()) in group.assigned]
                if ends:
                    ends = {tp: o for tp, o in ends.items() if tp in group.assigned}
            delay = min(delay * 2, 30.0)

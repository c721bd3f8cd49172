"""The cyclic garbage collector of a long ingest loop (`run`, its worker processes, `rebuild`).

CPython collects its youngest generation every 700 container allocations by default
(2000 from Python 3.13). A
batch allocates a few containers per record (rows, change events, messages), nearly all
freed by reference counting the moment they are done with, so the default ran a
collection every hundred records or so, for nothing: with change events on 30 columns
that was 7-16 us of CPU per record, 20-40% of the worker's time (bench/apply_only.py
with a collector callback; `python bench/matrix.py` shows the change-event runs 20% less
CPU per record). `settle()` is called once, after start-up and before the loop: it
collects once, then the youngest generation is collected every `YOUNG_THRESHOLD`
allocations (so the older ones every 10 and 100 times that, CPython's ratios).

Garbage with reference cycles is still collected, later; memory stays bounded (at most
`YOUNG_THRESHOLD` young containers, a few MB, wait for a collection). Nothing is frozen
(`gc.freeze`): it saved about 1 us per record more in process, but an object of the
start-up that later becomes cyclic garbage (a relation's replaced generation, its LMDB
environment and mapped file) would then never be freed.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
"""Container allocations (net of frees) between collections of the youngest generation."""


def settle() -> None:
    """Collect once and raise the youngest generation's threshold (the older generations
    keep CPython's thresholds). For a process's ingest loop only: it is process-wide and
    not undone."""
    gc.collect()
    gc.set_threshold(YOUNG_THRESHOLD)


def collections() -> int:
    """Collections this process has run, every generation (the worker's
    `materializer_worker_process_gc_collections_total`)."""
    return sum(g["collections"] for g in gc.get_stats())

"""A clean stop: the signals that ask for one (SIGTERM, SIGINT), and each of its steps
(leave the group, deliver change events, flush a producer) bounded by a deadline: the
broker may not answer, and a stop must not wait for it."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from materializer.errors import MaterializerError


def bounded(step: Callable[[], None], what: str, deadline: float,
            log: logging.Logger) -> bool:
    """Run `step` in a daemon thread; True if it finished by `deadline` (time.monotonic()),
    else False, logged. A MaterializerError it raises is logged, not raised (shutting down:
    committed state is safe, and what was not delivered stays for the next run); anything
    else reaches the thread's excepthook with its traceback."""
    done = threading.Event()

    def run() -> None:
        try:
            step()
        except MaterializerError as e:
            log.warning("%s at shutdown: %s", what, e)
        finally:
            done.set()

    threading.Thread(target=run, name=f"shutdown-{what}", daemon=True).start()
    if done.wait(max(0.0, deadline - time.monotonic())):
        return True
    log.warning("%s did not finish within the shutdown grace; exiting anyway (committed "
                "state is safe)", what)
    return False


def install_signal_handlers(stop: threading.Event) -> None:
    """SIGTERM and SIGINT ask the loop to finish its batch, commit and return."""
    def handler(signum: int, frame: Any) -> None:
        stop.set()
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def ignore_stop_signals() -> None:
    """After a clean stop: SIGTERM and SIGINT are ignored (Python restores the default,
    deadly action for its own handlers when the interpreter finalizes; an ignored signal
    stays ignored)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

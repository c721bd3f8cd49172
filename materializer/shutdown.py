"""A clean stop: the signals that ask for one (SIGTERM, SIGINT), and each of its steps
(leave the group, deliver change events, flush a producer) bounded by a deadline: the
broker may not answer, and a stop must not wait for it."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from materializer.errors import MaterializerError, Stopped


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


class StopRequest:
    """SIGTERM and SIGINT asking a command that stops between its steps (`rebuild`) to stop
    at the next one (`check`), as `run` finishes its batch; a second one ends the process
    at once, by the signal (what the command leaves then is safe too, only not said)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._before: list[tuple[int, Any]] = []

    def __enter__(self) -> StopRequest:
        """Asked by SIGTERM and SIGINT until the block ends (their handlers restored)."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._before.append((signum, signal.signal(signum, self._asked)))
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._before:
            signal.signal(signum, handler)
        self._before.clear()

    def _asked(self, signum: int, frame: Any) -> None:
        if self.signum is not None:  # asked again: now
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signum = signum

    def check(self, say: Callable[[str], str]) -> None:
        """Stopped (exit 128 + the signal) with `say(signal name)` if a stop was asked."""
        if self.signum is not None:
            raise Stopped(say(signal.Signals(self.signum).name), self.signum)


def ignore_stop_signals() -> None:
    """After a clean stop: SIGTERM and SIGINT are ignored (Python restores the default,
    deadly action for its own handlers when the interpreter finalizes; an ignored signal
    stays ignored)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

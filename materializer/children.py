"""The lookup API as a child process of `materializer run`, tied to its parent's life.

Guarantees:
- The child never outlives `run`: it reads its stdin, a pipe only the parent holds
  open, and stops when the pipe closes (the parent exited, however it died, `kill -9`
  included); on Linux the kernel also sends it SIGTERM when the parent dies.
- `run` does not go on without its API: when the child exits on its own (the port is
  taken, a bad token setting, a crash), `on_exit` is called with its exit code.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence

EXIT_WITH_PARENT = "--exit-with-parent"
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Linux: ask the kernel for SIGTERM when this process's parent dies (elsewhere,
    nothing). Call it first thing in a child; then check that the parent is still the
    one expected (`os.getppid()`), in case it died before the call."""
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def signal_name(signum: int) -> str:
    """'signal 9 (SIGKILL)', or 'signal N' for a number Python does not name."""
    try:
        return f"signal {signum} ({signal.Signals(signum).name})"
    except ValueError:
        return f"signal {signum}"


_die_with_parent = die_with_parent  # runs in the API child before exec


class ApiChild:
    """`materializer serve CONFIG [extra...]` tied to this process; `on_exit(code)` runs (in a
    watcher thread) if the child exits before `stop()` is called."""

    def __init__(self, config: str, on_exit: Callable[[int], None],
                 extra: Sequence[str] = ()) -> None:
        self._stopping = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "materializer", "serve", config, EXIT_WITH_PARENT, *extra],
            stdin=subprocess.PIPE,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None)  # noqa: PLW1509
        self._on_exit = on_exit
        threading.Thread(target=self._watch, name="api-child-watch", daemon=True).start()

    def _watch(self) -> None:
        code = self.proc.wait()
        if not self._stopping.is_set():
            self._on_exit(code)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the child to stop (SIGTERM), kill it after `timeout` seconds."""
        self._stopping.set()
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def exit_when_parent_exits(grace: float = 5.0) -> None:
    """In the child: SIGTERM ourselves when stdin (the parent's pipe) reaches EOF, and
    exit hard if the graceful stop takes longer than `grace` seconds."""

    def watch() -> None:
        try:  # the raw descriptor: a daemon thread blocked in a buffered read would hold
            # the buffer's lock at interpreter shutdown ("Fatal Python error:
            # _enter_buffered_busy") when the child stops for another reason
            while os.read(sys.stdin.fileno(), 65536):
                pass
        except (OSError, ValueError):
            pass
        os.kill(os.getpid(), signal.SIGTERM)
        threading.Event().wait(grace)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()

"""librdkafka's own log lines and errors, through Python logging, without the flood.

Every client the connectors build gets `logger=` (librdkafka's lines go to the
`materializer.kafka.librdkafka` logger instead of stderr) and `error_cb=`. Both are
rate-limited per kind of message (digits ignored, so "after 3ms" and "after 7ms" are one
kind): the first of a kind is logged at once, repeats at most once a minute with how
many were left out. An unreachable broker is named by one line of our own:
`cannot reach the Kafka broker(s) at <bootstrap.servers>: ...; retrying`.
Neither shows a secret: the client's secret settings are remembered
(`materializer.redact.remember`) and every line is scrubbed before anything else sees it
(librdkafka quotes URLs with their password, e.g. `sasl.oauthbearer.token.endpoint.url`
in an OIDC failure, and a part of `sasl.oauthbearer.config` it cannot read).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from materializer.redact import ScrubFilter, remember, secret_values

log = logging.getLogger("materializer.kafka")
LIBRDKAFKA = logging.getLogger("materializer.kafka.librdkafka")
REPEAT_EVERY = 60.0
_DIGITS = re.compile(r"\d+")
_UNREACHABLE = ("_TRANSPORT", "_ALL_BROKERS_DOWN", "_RESOLVE", "_AUTHENTICATION")


class RateLimit(logging.Filter):
    """Passes the first record of each kind, then one per `every` seconds with the count
    of those left out."""

    def __init__(self, every: float = REPEAT_EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every = every
        self.clock = clock
        self._seen: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        kind = _DIGITS.sub("#", record.getMessage())[:300]
        now = self.clock()
        with self._lock:
            last, skipped = self._seen.get(kind, (None, 0))
            if last is not None and now - last < self.every:
                self._seen[kind] = (last, skipped + 1)
                return False
            self._seen[kind] = (now, 0)
            if len(self._seen) > 1000:
                self._seen.clear()
        if skipped:
            record.msg = f"{record.getMessage()} ({skipped} more like it in the last minute)"
            record.args = None
        return True


for _logger in (LIBRDKAFKA, log):
    _logger.addFilter(ScrubFilter())  # first: the rate limit sees the scrubbed text
    _logger.addFilter(RateLimit())


def error_callback(bootstrap: str) -> Callable[[Any], None]:
    """An `error_cb` that names the bootstrap servers when they cannot be reached."""

    def on_error(err: Any) -> None:
        name = err.name() if hasattr(err, "name") else ""
        if name in _UNREACHABLE:
            log.warning("cannot reach the Kafka broker(s) at %s: %s; retrying", bootstrap,
                        err.str() if hasattr(err, "str") else err)
        else:
            log.warning("Kafka client error: %s", err)

    return on_error


def with_logging(settings: dict[str, Any]) -> dict[str, Any]:
    """Client settings with librdkafka's logs and errors routed as described above (the
    secret settings remembered, so that no line shows them)."""
    remember(secret_values(settings))
    bootstrap = str(settings.get("bootstrap.servers", "?"))
    return {"logger": LIBRDKAFKA, "error_cb": error_callback(bootstrap), **settings}

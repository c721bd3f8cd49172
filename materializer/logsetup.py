"""Logging of every command: the levels and formats (`--log-level`, `--log-format`, or
the environment), one JSON object per line for `json`, exported to the environment so
child processes (`run`'s API process, snapshot children) log the same way."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from materializer.redact import scrub

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
LOG_LEVEL_ENV = "MATERIALIZER_LOG_LEVEL"
LOG_FORMAT_ENV = "MATERIALIZER_LOG_FORMAT"


class TextLogFormatter(logging.Formatter):
    """`time LEVEL logger: message` lines, the message and any traceback scrubbed
    (`materializer.redact.scrub`: no client secret or URL password, whatever logged it)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = scrub(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        return scrub(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging's name
        return scrub(super().formatStack(stack_info))


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC, ISO 8601, milliseconds), level, logger,
    message, and exc (the traceback) when there is one; message and traceback scrubbed
    as `TextLogFormatter` does."""

    def format(self, record: logging.LogRecord) -> str:
        import datetime  # noqa: PLC0415

        ts = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        out: dict[str, Any] = {"ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                               "level": record.levelname.lower(), "logger": record.name,
                               "message": scrub(record.getMessage())}
        if record.exc_info:
            out["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False)


def setup_logging(args: argparse.Namespace) -> str | None:
    """Configure logging from the options (else the environment); return a problem, if
    any. The choice is exported to the environment, so child processes (`run`'s API
    process) log the same way."""
    if getattr(args, "verbose", False):
        level = "debug"
    else:
        level = getattr(args, "log_level", None) or os.environ.get(LOG_LEVEL_ENV) or "info"
    fmt = getattr(args, "log_format", None) or os.environ.get(LOG_FORMAT_ENV) or "text"
    for value, valid, var in ((level, LOG_LEVELS, LOG_LEVEL_ENV),
                              (fmt, LOG_FORMATS, LOG_FORMAT_ENV)):
        if value.lower() not in valid:
            return f"{var}={value!r} is not one of {', '.join(valid)}"
    level, fmt = level.lower(), fmt.lower()
    for var, value, default in ((LOG_LEVEL_ENV, level, "info"), (LOG_FORMAT_ENV, fmt, "text")):
        if os.environ.get(var, default).lower() != value:
            os.environ[var] = value
    logging.basicConfig(level=level.upper(), handlers=[stderr_handler(fmt)])
    quiet_http_clients(level)
    return None


HTTP_CLIENT_LOGGERS = ("httpx", "httpcore")
"""Loggers of the HTTP client (`get/scan --url`, `Client`, a worker forwarding lookups to
another): httpx logs every request at INFO, three lines per `get --url`."""


def quiet_http_clients(level: str) -> None:
    """The HTTP client's loggers at WARNING unless `level` is debug (`-v` shows each
    request): its failures still show, each request's line does not."""
    for name in HTTP_CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if level == "debug" else
                                         logging.WARNING)


def stderr_handler(fmt: str) -> logging.Handler:
    """A handler to stderr in format `fmt` (text or json)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter() if fmt == "json" else TextLogFormatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


def say(line: str, level: int = logging.ERROR) -> None:
    """A command's own word on stderr beside its output (`status`'s notes and why it exits
    1, `get`'s miss): a plain line, or with `--log-format json` a JSON log line of logger
    `materializer` at `level`, as the messages of a command that fails; scrubbed."""
    if os.environ.get(LOG_FORMAT_ENV, "text").lower() == "json":
        logging.getLogger("materializer").log(level, "%s", line)  # the formatter scrubs
    else:
        print(scrub(line), file=sys.stderr)


def log_like_the_parent() -> None:
    """Log as the process that started this one does (it exported its choice)."""
    level = os.environ.get(LOG_LEVEL_ENV, "info").lower()
    fmt = os.environ.get(LOG_FORMAT_ENV, "text").lower()
    logging.basicConfig(level=level.upper() if level in LOG_LEVELS else "INFO",
                        handlers=[stderr_handler(fmt)])
    quiet_http_clients(level)

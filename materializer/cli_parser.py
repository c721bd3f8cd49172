"""The `materializer` command line's arguments: every command, its options and their help.

`build_parser` is given the function of each command (materializer.cli), so this module
holds the surface (names, options, defaults) and nothing that runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping

from materializer.logsetup import LOG_FORMAT_ENV, LOG_FORMATS, LOG_LEVEL_ENV, LOG_LEVELS
from materializer.specs import BATCH_SIZE, MAX_PROCESSES

DESCRIPTION = "`materializer` command line (SPEC §6)."
Command = Callable[[argparse.Namespace], int]


def _whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` (to `high`), else a usage error."""
    bounds = f"of at least {low}" if high is None else f"from {low} to {high:,}"

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            n = low - 1
        if n < low or (high is not None and n > high):
            raise argparse.ArgumentTypeError(f"must be a number {bounds}, not {text!r}")
        return n
    return parse


def _processes(text: str) -> int | str:
    """`--processes`: a number from 1 to MAX_PROCESSES, or auto."""
    if text == "auto":
        return text
    try:
        return _whole_number(1, MAX_PROCESSES)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be a number from 1 to {MAX_PROCESSES} or auto, not {text!r}") from None


MAX_BATCH_SIZE = 1_000_000  # librdkafka's consume() takes at most this many messages
_batch_size = _whole_number(1, MAX_BATCH_SIZE)
"""`--batch-size`: records per poll (0 polled nothing, for ever; a negative or larger number
stopped the worker with librdkafka's ValueError)."""
_records = _whole_number(1)
"""`demo --records`: at least 1."""


def _log_options(p: argparse.ArgumentParser) -> None:
    """The logging options, accepted before and after the command (`materializer
    --log-format json run CFG` and `materializer run CFG --log-format json`)."""
    p.add_argument("--log-level", choices=LOG_LEVELS, default=argparse.SUPPRESS,
                   help=f"what to log (default: ${LOG_LEVEL_ENV}, else info)")
    p.add_argument("--log-format", choices=LOG_FORMATS, default=argparse.SUPPRESS,
                   help="text lines, or one JSON object per line with ts, level, logger, "
                        f"message (default: ${LOG_FORMAT_ENV}, else text)")
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="same as --log-level debug")


def _worker_options(p: argparse.ArgumentParser) -> None:
    """What differs per worker of one declaration file (see materializer.cluster.settings)."""
    p.add_argument("--store", metavar="DIR", help="data directory (instead of store.path)")
    p.add_argument("--listen", metavar="HOST:PORT", help="API address (instead of api.listen)")
    p.add_argument("--advertise", metavar="URL", help="URL other workers and clients reach "
                   "this API at (instead of api.advertise; default http://<listen>)")


def _lookup_options(p: argparse.ArgumentParser) -> None:
    """Where `get` and `scan` read: a snapshot, or the cluster instead of the local store."""
    p.add_argument("--as-of", metavar="SNAPSHOT", help="as snapshot SNAPSHOT holds it")
    p.add_argument("--url", action="append",
                   help="ask the cluster through this worker's API (materializer.Client) "
                   "instead of reading the local store; give it again for more workers "
                   "to start from (any one answering is enough)")


def build_parser(commands: Mapping[str, Command]) -> argparse.ArgumentParser:
    """The parser of every command; `commands` gives each command's function (by the
    command's name; `versions` runs snapshot, snapshots and diff)."""
    from materializer import __version__  # noqa: PLC0415

    p = argparse.ArgumentParser(prog="materializer", description=DESCRIPTION)
    p.add_argument("--version", action="version", version=f"materializer {__version__}")
    _log_options(p)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("run", help="the worker: ingest, emit, serve the API")
    s.add_argument("config")
    s.add_argument("--no-api", action="store_true", help="do not start the lookup API process")
    s.add_argument("--batch-size", type=_batch_size, default=BATCH_SIZE, metavar="N",
                   help=f"records per poll, 1 to {MAX_BATCH_SIZE:,} (default {BATCH_SIZE:,})")
    s.add_argument("--processes", type=_processes, default=None, metavar="N|auto",
                   help=f"worker processes sharing the store (1 to {MAX_PROCESSES}), or auto: "
                        "one per CPU, at most one per source partition (default: `workers:` "
                        "in the file, else 1)")
    for hidden in ("--worker-index", "--lock-fd", "--parent-pid"):  # run --processes' workers
        s.add_argument(hidden, type=int, default=None, help=argparse.SUPPRESS)
    s.add_argument("--config-digest", default=None, help=argparse.SUPPRESS)
    _worker_options(s)
    s.set_defaults(func=commands["run"])

    s = sub.add_parser("check", help="validate; print the resolved tables; exit 2 on errors")
    s.add_argument("config")
    s.set_defaults(func=commands["check"])

    s = sub.add_parser("get", help="one row as JSON; exit 1 if absent")
    s.add_argument("config")
    s.add_argument("table")
    s.add_argument("key", nargs="+")
    s.add_argument("--limit", type=int, default=None,
                   help="streams only: the newest events to print (default 10); a table's "
                        "key has one row")
    _lookup_options(s)
    s.set_defaults(func=commands["get"])

    s = sub.add_parser("scan", help="rows as JSON lines, key order")
    s.add_argument("config")
    s.add_argument("table")
    s.add_argument("--prefix", nargs="+", metavar="V", action="extend")
    s.add_argument("--limit", type=int, default=None)
    _lookup_options(s)
    s.set_defaults(func=commands["scan"])

    s = sub.add_parser("status", help="per table and partition: rows, offsets, lag")
    s.add_argument("config")
    s.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    s.set_defaults(func=commands["status"])

    s = sub.add_parser("serve", help="the lookup API alone, read-only, beside a running worker")
    s.add_argument("config", help="the declaration file, or a data directory to serve as it "
                                  "is (faust tables kept by lmdb://)")
    s.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)
    _worker_options(s)
    s.set_defaults(func=commands["serve"])

    s = sub.add_parser("rebuild", help="drop local state of a table and replay its topic")
    s.add_argument("config")
    s.add_argument("table")
    s.set_defaults(func=commands["rebuild"])

    s = sub.add_parser("add-columns", help="take nullable columns added to a table's "
                       "declaration without a replay: the rows held read null in them "
                       "(takes the store lock: stop the worker first)")
    s.add_argument("config")
    s.add_argument("table")
    s.set_defaults(func=commands["add-columns"])

    s = sub.add_parser("resnapshot", help="emit an op r change event for every row of a "
                       "table (takes the store lock: stop the worker first)")
    s.add_argument("config")
    s.add_argument("table")
    s.set_defaults(func=commands["resnapshot"])

    s = sub.add_parser("demo", help="the whole thing on an embedded local broker")
    s.add_argument("--records", type=_records, default=20_000, metavar="N",
                   help="changelog records to produce (at least 1; default 20,000)")
    s.set_defaults(func=commands["demo"])

    from materializer.versions.commands import add_commands  # noqa: PLC0415

    add_commands(sub, commands["versions"])  # snapshot, snapshots, diff
    for command in sub.choices.values():
        _log_options(command)
    return p



"""`materializer` command line (SPEC §6).

Exit codes: 0 success, 1 not found or runtime failure, 2 bad configuration or usage, 3 not
known here (partitions not held, a cluster member's worker not running, no worker of the
cluster answering `--url` in time), 4 a key held by two partitions, 141 output cut short by
its reader (1 for output that cannot be written otherwise: `cli_common.Output`). Environment
variables are read by the command line only (here and in `cli_common`). The read commands
(`get`, `scan`) are in `cli_read`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO, cast

from materializer.cli_common import (
    Output,
    OutputError,
    api_token,
    load_config,
    print_json,
    relation_of,
    served_directory,
)
from materializer.cli_parser import Command, build_parser
from materializer.cli_read import cmd_get, cmd_scan
from materializer.errors import (
    ConfigError,
    MaterializerError,
)
from materializer.logsetup import (
    say,
    setup_logging,
)
from materializer.specs import Catalog, TableSpec

log = logging.getLogger("materializer")


def _load_worker(args: argparse.Namespace) -> Catalog:
    """The catalog with this worker's `--store`, `--listen`, `--advertise` (run, serve)."""
    from materializer.cluster.settings import with_overrides  # noqa: PLC0415

    return with_overrides(load_config(args.config), store=args.store, listen=args.listen,
                          advertise=args.advertise)


def _worker_flags(args: argparse.Namespace) -> list[str]:
    """The per-worker flags as given, for `run`'s API child (`serve`)."""
    return [x for flag, v in (("--store", args.store), ("--listen", args.listen),
                              ("--advertise", args.advertise)) if v is not None
            for x in (flag, v)]


# --------------------------------------------------------------------------- commands


def cmd_check(args: argparse.Namespace) -> int:
    from materializer.catalog import describe  # noqa: PLC0415

    catalog = load_config(args.config)
    print(describe(catalog))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    catalog = load_config(args.config)
    from materializer.report import (  # noqa: PLC0415
        flag_problems,
        format_status,
        status_rows,
        unapplied_lag,
        worker_state,
    )

    problems: list[str] = []
    missing: list[str] = []
    rows = status_rows(catalog, problems, missing)
    from materializer.cluster.report import annotate, cluster_routing, format_cluster  # noqa: PLC0415

    routing = None if problems else cluster_routing(catalog, problems)
    annotate(rows, routing)
    if args.json:
        for r in rows:
            print_json(r)
    else:
        print(format_status(rows))
        if routing is not None:
            print("\n" + format_cluster(catalog, routing))
    note, idle = worker_state(catalog.store_path)
    if note is not None:  # said; an error only with records nobody applies (below)
        say(f"materializer: {note}", logging.WARNING)
    if problems:
        bootstrap = catalog.kafka_config.get("bootstrap.servers", "?")
        say(f"materializer: cannot reach the Kafka broker(s) at {bootstrap}: END and LAG "
            f"are unknown ({problems[0]})")
        return 1
    flagged = flag_problems(rows) + missing
    behind = unapplied_lag(rows) if idle else None
    for line in flagged + ([behind] if behind is not None else []):
        say(f"materializer: {line}")
    return 1 if flagged else 0  # records no worker applies are said, not a failure (SPEC)


def cmd_serve(args: argparse.Namespace) -> int:
    from materializer.api.serve import serve  # noqa: PLC0415

    if args.exit_with_parent:
        from materializer.children import exit_when_parent_exits  # noqa: PLC0415

        exit_when_parent_exits()
    if os.path.isdir(args.config):  # a data directory alone (e.g. faust tables, lmdb://)
        from materializer.cluster.settings import with_overrides  # noqa: PLC0415

        served_directory(args.store or args.config)
        catalog = with_overrides(Catalog(source=args.config, store_path=args.config),
                                 store=args.store, listen=args.listen, advertise=args.advertise)
    else:
        catalog = _load_worker(args)
    serve(catalog, api_token(catalog))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import threading  # noqa: PLC0415

    from materializer.ingest.progress import Progress  # noqa: PLC0415
    from materializer.ingest.worker import Worker  # noqa: PLC0415
    from materializer.shutdown import ignore_stop_signals, install_signal_handlers  # noqa: PLC0415

    stop = threading.Event()
    install_signal_handlers(stop)  # before anything slow: a SIGTERM at start still exits 0
    from materializer.ingest.processes import config_digest  # noqa: PLC0415

    digest = config_digest(args.config)  # of the declaration this process applies
    catalog = _load_worker(args)
    from connectors.kafka_admin import check_settings  # noqa: PLC0415

    check_settings(catalog.kafka_config)  # before any thread builds a client
    if not args.no_api:  # refused before anything starts: no store, no membership record
        from materializer.api.serve import check_listen  # noqa: PLC0415

        check_listen(catalog, api_token(catalog))
    from materializer.store import StoreLock  # noqa: PLC0415

    if args.worker_index is not None:  # one of `run --processes N`'s workers
        from materializer.ingest.processes import check_same_config, run_worker  # noqa: PLC0415

        check_same_config(args.config, args.config_digest, digest)

        return run_worker(catalog, args.worker_index, args.lock_fd, args.parent_pid,
                          args.batch_size, stop, Progress())
    processes = args.processes or catalog.workers
    if processes == "auto":
        from materializer.ingest.processes import auto_processes  # noqa: PLC0415

        processes = auto_processes(catalog)
    # one writer per store: held until this process (and any worker child) exits
    lock = StoreLock.acquire(catalog.store_path, f"materializer run {args.config}")
    os.umask(os.umask(0o077) | 0o077)  # what the worker writes (worker.json) is the owner's
    worker: Any
    if processes > 1:
        from materializer.ingest.processes import Supervisor  # noqa: PLC0415

        worker = Supervisor(catalog, processes, lock, ["run", args.config, "--no-api",
                                                       "--batch-size", str(args.batch_size),
                                                       "--config-digest", digest,
                                                       *_worker_flags(args)], stop)
    else:
        worker = Worker(catalog, batch_size=args.batch_size, progress=Progress(),
                        stop_event=stop)
    worker.api_token = api_token(catalog)  # cluster: copies of partitions from other workers
    if isinstance(worker, Worker):
        worker.join_cluster()  # before the API: it routes by this run's membership only
    api_proc = None
    api_failed: list[int] = []
    if not args.no_api and not stop.is_set():  # stopped meanwhile: no API to start
        from materializer.children import ApiChild  # noqa: PLC0415

        def api_exited(code: int) -> None:
            api_failed.append(code)
            stop.set()

        api_proc = ApiChild(args.config, api_exited, _worker_flags(args))
    from materializer import gc_tuning  # noqa: PLC0415

    gc_tuning.settle()  # started: the ingest loop's collector settings
    try:
        worker.run()
    finally:
        if api_proc is not None:
            api_proc.stop()
        if sys.stderr.isatty():
            sys.stderr.write("\n")
    if api_failed:
        code = api_failed[0]
        if code < 0:  # killed (kill -9, the OOM killer): it said nothing
            from materializer.children import signal_name  # noqa: PLC0415

            why = f"was killed by {signal_name(-code)}"
        else:
            why = (f"exited with code {code} (is {catalog.api.listen} already in use? see its "
                   "message above)")
        raise MaterializerError(
            f"the lookup API process {why}; the worker stopped with it. Start again, "
            "or run with --no-api")
    lock.release()
    log.info("stopped after applying %d records", worker.applied_total)
    if not worker.clean_shutdown:  # the broker hangs: do not wait for librdkafka's teardown
        logging.shutdown()
        os._exit(0)
    ignore_stop_signals()  # stopped cleanly: a second SIGTERM during teardown must not turn
    return 0               # exit 0 into death by signal (Python's own handlers are gone then)


def cmd_rebuild(args: argparse.Namespace) -> int:
    from materializer.ingest.rebuild import rebuild  # noqa: PLC0415
    from materializer.shutdown import StopRequest  # noqa: PLC0415

    catalog = load_config(args.config)
    spec = relation_of(catalog, args.table)
    from materializer import gc_tuning  # noqa: PLC0415

    gc_tuning.settle()
    with StopRequest() as stop:  # SIGTERM, SIGINT: stop between batches, said (Stopped)
        done = rebuild(catalog, spec, what=f"materializer rebuild {args.config} {args.table}",
                       stop=stop)
    print(f"{spec.name}: local state dropped and rebuilt from {spec.topic}: {done.summary()}")
    return 0


def cmd_add_columns(args: argparse.Namespace) -> int:
    from materializer.ingest.add_columns import add_columns  # noqa: PLC0415

    catalog = load_config(args.config)
    spec = relation_of(catalog, args.table)
    added = add_columns(catalog, spec,
                        what=f"materializer add-columns {args.config} {args.table}")
    if added:
        print(f"{spec.name}: column(s) {', '.join(added)} added; the rows held read null in "
              "them")
    else:
        print(f"{spec.name}: no column to add (the local state has every declared column)")
    return 0


def cmd_resnapshot(args: argparse.Namespace) -> int:
    from materializer.ingest.snapshot import resnapshot  # noqa: PLC0415

    catalog = load_config(args.config)
    spec = relation_of(catalog, args.table)
    n = resnapshot(catalog, spec, what=f"materializer resnapshot {args.config} {args.table}")
    topic = spec.changes.topic if isinstance(spec, TableSpec) and spec.changes else "?"
    print(f"{spec.name}: {n} snapshot event(s) (op r) delivered to {topic}")
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    """`snapshot`, `snapshots`, `diff`: see `materializer.versions.commands`."""
    from materializer.versions.commands import run  # noqa: PLC0415

    return run(args, load_config(args.config))


def cmd_demo(args: argparse.Namespace) -> int:
    import signal  # noqa: PLC0415

    from materializer.demo import run_demo  # noqa: PLC0415

    def stop(signum: int, frame: object) -> None:
        # Python's default for SIGTERM ends the process at once, leaving the embedded broker
        # (a session of its own) and the demo's worker running for ever: unwind instead, so
        # the demo stops its worker and broker on its way out, as it does for Ctrl-C
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: the clean-up must finish
        raise SystemExit(128 + signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    return run_demo(records=args.records)


def _report(lines: list[str]) -> None:
    """An error that ends the command, on stderr: plain lines, or JSON log lines."""
    for line in lines:
        say(line)


def commands() -> dict[str, Command]:
    """Each command's function, looked up when the parser is built."""
    return {"run": cmd_run, "check": cmd_check, "get": cmd_get, "scan": cmd_scan,
            "status": cmd_status, "serve": cmd_serve, "rebuild": cmd_rebuild,
            "add-columns": cmd_add_columns,
            "resnapshot": cmd_resnapshot, "demo": cmd_demo, "versions": cmd_versions}


def main(argv: Sequence[str] | None = None) -> int:
    real = sys.stdout
    sys.stdout = cast(TextIO, Output(real))  # a write that fails: OutputError, said below
    try:
        code = _main(argv)
        sys.stdout.flush()  # what is still buffered is written now, its failure said
        return code
    except OutputError as e:  # `scan ... > /dev/full`, stdout closed (`>&-`): exit 1
        _report([f"materializer: {e}"])
        _quiet_stdout()
        return 1
    except BrokenPipeError:  # the last buffered lines' reader went away (see _main)
        _quiet_stdout()
        return 141
    finally:
        sys.stdout = real


def _quiet_stdout() -> None:
    """Standard output's descriptor onto /dev/null: the interpreter's own flush at exit
    raises no more (nothing to do for a stream without one: closed, or a test's capture)."""
    try:
        fd = sys.stdout.fileno() if sys.stdout is not None else -1
    except (AttributeError, OSError, ValueError):
        fd = -1
    if fd >= 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser(commands())
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on usage errors already
        return int(e.code or 0)
    problem = setup_logging(args)
    if problem is not None:
        parser.print_usage(sys.stderr)
        print(f"materializer: error: {problem}", file=sys.stderr)
        return 2
    try:
        code: int = args.func(args)
        return code
    except ConfigError as e:
        _report([str(d) for d in e.diagnostics] or [str(e)])
        return 2
    except MaterializerError as e:
        _report([f"materializer: {e}"])
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `materializer scan ... | head`: the reader has what it wanted
        _quiet_stdout()  # so the exit's flush raises no more
        return 141  # as a shell reports a process ended by SIGPIPE (128 + 13)
    except Exception as e:  # librdkafka refusing a client setting (a bad ssl.key.pem, ...)
        kafka = sys.modules.get("confluent_kafka")
        if kafka is None or not isinstance(e, kafka.KafkaException):
            raise
        err = e.args[0] if e.args else None
        invalid = err is not None and getattr(err, "code", lambda: None)() == \
            kafka.KafkaError._INVALID_ARG
        what = err.str() if err is not None and hasattr(err, "str") else str(e)
        _report([f"materializer: the Kafka client refused its settings (`kafka:`): {what}"
                 if invalid else f"materializer: Kafka client error: {what}"])
        return 2 if invalid else 1


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()

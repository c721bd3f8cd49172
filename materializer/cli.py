"""`materializer` command line (SPEC §6).

Exit codes: 0 success, 1 not found or runtime failure, 2 bad configuration or usage.
Environment variables are read here and nowhere else.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from materializer.cli_parser import Command, build_parser
from materializer.columns import key_signature
from materializer.errors import (
    ConfigError,
    MaterializerError,
    MemberNotRunning,
    NotFound,
    SchemaChangedError,
    UsageError,
)
from materializer.keytext import key_from_text
from materializer.logsetup import (
    LOG_FORMAT_ENV,
    setup_logging,
)
from materializer.specs import Catalog, RelationSpec, TableSpec

log = logging.getLogger("materializer")


def _load(path: str) -> Catalog:
    from materializer.catalog import load_catalog  # noqa: PLC0415

    return load_catalog(path, env=os.environ)


def _load_worker(args: argparse.Namespace) -> Catalog:
    """The catalog with this worker's `--store`, `--listen`, `--advertise` (run, serve)."""
    from materializer.cluster.settings import with_overrides  # noqa: PLC0415

    return with_overrides(_load(args.config), store=args.store, listen=args.listen,
                          advertise=args.advertise)


def _worker_flags(args: argparse.Namespace) -> list[str]:
    """The per-worker flags as given, for `run`'s API child (`serve`)."""
    return [x for flag, v in (("--store", args.store), ("--listen", args.listen),
                              ("--advertise", args.advertise)) if v is not None
            for x in (flag, v)]


def _store(catalog: Catalog) -> Any:
    from materializer.store import Store  # noqa: PLC0415

    return Store.open(catalog.store_path, catalog.default_schema)


def _relation(catalog: Catalog, name: str) -> RelationSpec:
    try:
        return catalog.relation(name)
    except KeyError:
        names = ", ".join(r.name for r in catalog.relations) or "none"
        raise NotFound(f"no table or stream named {name!r} in the catalog (declared: {names})") \
            from None


def _view(store: Any, spec: RelationSpec, as_of: str | None) -> Any:
    """The store's view of `spec`, refusing one whose key is not the declared one: the key
    values given are read in the declared key's order and types, so a key reordered or
    retyped since (`run` refuses it until a rebuild) would look up another row."""
    if as_of is None:
        from materializer.cluster.view import member_not_running  # noqa: PLC0415

        if (why := member_not_running(store.data_dir)) is not None:
            raise MemberNotRunning(f"{spec.name}: {why}")
    view = store.stream(spec.name, as_of) if spec.kind == "stream" \
        else store.table(spec.name, as_of)
    _same_key(spec, view.key_columns, view.key_types, "the local state",
              f"Run `materializer rebuild CONFIG {spec.name}` (or read with the declaration "
              "the state was built with)")
    return view


def _remote(client: Any, spec: RelationSpec, url: str) -> Any:
    """The cluster's `spec` (`--url`), refusing one whose key is not the declared one (the
    key values given would be sent as another key: the workers run another declaration)."""
    rel = client.stream(spec.name) if spec.kind == "stream" else client.table(spec.name)
    _same_key(spec, rel.schema.key, rel.schema.key_types(), f"what the workers at {url} serve",
              "Read with the declaration the workers run")
    return rel


def _same_key(spec: RelationSpec, columns: Sequence[str], types: Sequence[Any], where: str,
              fix: str) -> None:
    held = key_signature(columns, types)
    declared = key_signature(spec.key_columns, spec.key_types)
    if held != declared:
        raise SchemaChangedError(
            f"{spec.name}: the declaration no longer matches {where}: key "
            f"({', '.join(held)}) is declared as ({', '.join(declared)}). {fix}")


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")


# --------------------------------------------------------------------------- commands


def cmd_check(args: argparse.Namespace) -> int:
    from materializer.catalog import describe  # noqa: PLC0415

    catalog = _load(args.config)
    print(describe(catalog))
    return 0


def _key_texts(texts: Sequence[str], what: str) -> Sequence[str]:
    """Key values as given on the command line; UsageError for one that is not UTF-8 (its
    bytes reach Python as lone surrogates, which no key holds): the same answer locally
    and with --url, before anything is read."""
    for s in texts:
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError(f"{what} {s[:40]!r} is not UTF-8 text") from None
    return texts


def _limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be 1 or more, got {limit}")


def cmd_get(args: argparse.Namespace) -> int:
    catalog = _load(args.config)
    spec = _relation(catalog, args.table)
    if len(args.key) != len(spec.key_columns):
        raise UsageError(f"{spec.name} has key ({', '.join(spec.key_columns)}): give "
                         f"{len(spec.key_columns)} value(s), got {len(args.key)}")
    _limit(args.limit)
    key = key_from_text(spec.key_columns, spec.key_types, _key_texts(args.key, "key value"))
    if args.url:
        return _remote_get(args, catalog, spec, key)
    with _store(catalog) as store:
        view = _view(store, spec, args.as_of)
        if spec.kind == "stream":
            events = view.events(key, args.limit, json_form=True)
            for e in events:
                _print_json(e)
            return 0 if events else 1
        row = view.get(key, json_form=True)
    if row is None:
        when = f" as of snapshot {args.as_of}" if args.as_of else ""
        print(f"{spec.name}: no row for key {list(key)}{when}", file=sys.stderr)
        return 1
    _print_json(row)
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    catalog = _load(args.config)
    spec = _relation(catalog, args.table)
    if len(args.prefix or []) > len(spec.key_columns):
        raise UsageError(f"--prefix has more values than the key ({', '.join(spec.key_columns)})")
    _limit(args.limit)
    prefix = key_from_text(spec.key_columns, spec.key_types,
                           _key_texts(args.prefix or [], "--prefix value"))
    if args.url:
        if spec.kind == "stream":
            raise UsageError(f"scan --url reads tables; {spec.name} is a stream: read a key's "
                             "events with get --url")
        with _client(args, catalog) as client:
            for row in _remote(client, spec, args.url).scan(prefix, args.limit, json_form=True):
                _print_json(row)
        return 0
    with _store(catalog) as store:
        for row in _view(store, spec, args.as_of).scan(prefix, args.limit, json_form=True):
            _print_json(row)
    return 0


def _client(args: argparse.Namespace, catalog: Catalog) -> Any:
    """`materializer.Client` for `--url` (the token from `api.token_env`)."""
    if args.as_of:
        raise UsageError("--as-of reads a snapshot of the local store: drop --url")
    from materializer.client import Client  # noqa: PLC0415

    return Client(args.url, token=_token(catalog))


def _remote_get(args: argparse.Namespace, catalog: Catalog, spec: RelationSpec,
                key: tuple[Any, ...]) -> int:
    """`get --url`: the key through the cluster (any worker, routed by the client)."""
    with _client(args, catalog) as client:
        rel = _remote(client, spec, args.url)
        if spec.kind == "stream":
            events = rel.events(key, args.limit, json_form=True)
            for e in events:
                _print_json(e)
            return 0 if events else 1
        row = rel.get(key, json_form=True)
    if row is None:
        print(f"{spec.name}: no row for key {list(key)}", file=sys.stderr)
        return 1
    _print_json(row)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    catalog = _load(args.config)
    from materializer.report import flag_problems, format_status, status_rows  # noqa: PLC0415

    problems: list[str] = []
    missing: list[str] = []
    rows = status_rows(catalog, problems, missing)
    from materializer.cluster.report import annotate, cluster_routing, format_cluster  # noqa: PLC0415

    routing = None if problems else cluster_routing(catalog, problems)
    annotate(rows, routing)
    if args.json:
        for r in rows:
            _print_json(r)
    else:
        print(format_status(rows))
        if routing is not None:
            print("\n" + format_cluster(catalog, routing))
    if problems:
        bootstrap = catalog.kafka_config.get("bootstrap.servers", "?")
        print(f"materializer: cannot reach the Kafka broker(s) at {bootstrap}: END and LAG "
              f"are unknown ({problems[0]})", file=sys.stderr)
        return 1
    flagged = flag_problems(rows) + missing
    for line in flagged:
        print(f"materializer: {line}", file=sys.stderr)
    return 1 if flagged else 0


def _token(catalog: Catalog) -> str | None:
    env = catalog.api.token_env
    return os.environ.get(env) or None if env else None


def cmd_serve(args: argparse.Namespace) -> int:
    from materializer.api.serve import serve  # noqa: PLC0415

    if args.exit_with_parent:
        from materializer.children import exit_when_parent_exits  # noqa: PLC0415

        exit_when_parent_exits()
    if os.path.isdir(args.config):  # a data directory alone (e.g. faust tables, lmdb://)
        from materializer.cluster.settings import with_overrides  # noqa: PLC0415

        catalog = with_overrides(Catalog(source=args.config, store_path=args.config),
                                 store=args.store, listen=args.listen, advertise=args.advertise)
    else:
        catalog = _load_worker(args)
    serve(catalog, _token(catalog))
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
    worker.api_token = _token(catalog)  # cluster: copies of partitions from other workers
    if isinstance(worker, Worker):
        worker.join_cluster()  # before the API: it routes by this run's membership only
    api_proc = None
    api_failed: list[int] = []
    if not args.no_api:
        from materializer.api.serve import check_listen  # noqa: PLC0415
        from materializer.children import ApiChild  # noqa: PLC0415

        def api_exited(code: int) -> None:
            api_failed.append(code)
            stop.set()

        check_listen(catalog, _token(catalog))
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

    catalog = _load(args.config)
    spec = _relation(catalog, args.table)
    from materializer import gc_tuning  # noqa: PLC0415

    gc_tuning.settle()
    done = rebuild(catalog, spec, what=f"materializer rebuild {args.config} {args.table}")
    print(f"{spec.name}: local state dropped and rebuilt from {spec.topic}: {done.summary()}")
    return 0


def cmd_resnapshot(args: argparse.Namespace) -> int:
    from materializer.ingest.snapshot import resnapshot  # noqa: PLC0415

    catalog = _load(args.config)
    spec = _relation(catalog, args.table)
    n = resnapshot(catalog, spec, what=f"materializer resnapshot {args.config} {args.table}")
    topic = spec.changes.topic if isinstance(spec, TableSpec) and spec.changes else "?"
    print(f"{spec.name}: {n} snapshot event(s) (op r) delivered to {topic}")
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    """`snapshot`, `snapshots`, `diff`: see `materializer.versions.commands`."""
    from materializer.versions.commands import run  # noqa: PLC0415

    return run(args, _load(args.config))


def cmd_demo(args: argparse.Namespace) -> int:
    from materializer.demo import run_demo  # noqa: PLC0415

    return run_demo(records=args.records)


def _report(lines: list[str], fmt: str) -> None:
    """An error that ends the command, on stderr: plain lines, or JSON log lines."""
    for line in lines:
        if fmt == "json":
            log.error("%s", line)
        else:
            print(line, file=sys.stderr)


def commands() -> dict[str, Command]:
    """Each command's function, looked up when the parser is built."""
    return {"run": cmd_run, "check": cmd_check, "get": cmd_get, "scan": cmd_scan,
            "status": cmd_status, "serve": cmd_serve, "rebuild": cmd_rebuild,
            "resnapshot": cmd_resnapshot, "demo": cmd_demo, "versions": cmd_versions}


def main(argv: Sequence[str] | None = None) -> int:
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
    fmt = os.environ.get(LOG_FORMAT_ENV, "text").lower()
    try:
        code: int = args.func(args)
        return code
    except ConfigError as e:
        _report([str(d) for d in e.diagnostics] or [str(e)], fmt)
        return 2
    except MaterializerError as e:
        _report([f"materializer: {e}"], fmt)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `materializer scan ... | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)  # so the exit's flush raises no more
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # as a shell reports a process ended by SIGPIPE (128 + 13)


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()

"""The read commands: `get` and `scan`, from the local store (or one of its snapshots,
`--as-of`) or through a cluster (`--url`), refusing a declaration whose key is not the
one the rows were stored with."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from materializer.cli_common import api_token, load_config, open_store, print_json, relation_of
from materializer.columns import key_signature
from materializer.errors import MemberNotRunning, SchemaChangedError, UsageError
from materializer.keytext import key_from_text
from materializer.logsetup import say
from materializer.specs import Catalog, RelationSpec

GET_EVENTS = 10
"""The newest events `get` prints of a stream key without --limit."""


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


def _remote(client: Any, spec: RelationSpec, urls: Sequence[str]) -> Any:
    """The cluster's `spec` (`--url`), refusing one whose key is not the declared one (the
    key values given would be sent as another key: the workers run another declaration)."""
    rel = client.stream(spec.name) if spec.kind == "stream" else client.table(spec.name)
    _same_key(spec, rel.schema.key, rel.schema.key_types(),
              f"what the workers at {', '.join(urls)} serve",
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
    catalog = load_config(args.config)
    spec = relation_of(catalog, args.table)
    if len(args.key) != len(spec.key_columns):
        raise UsageError(f"{spec.name} has key ({', '.join(spec.key_columns)}): give "
                         f"{len(spec.key_columns)} value(s), got {len(args.key)}")
    _limit(args.limit)
    if args.limit is not None and spec.kind != "stream":  # said, never ignored
        raise UsageError(f"--limit counts a stream key's events; {spec.name} is a table, whose "
                         "key has one row: drop --limit (scan --limit N lists rows)")
    if args.limit is None:
        args.limit = GET_EVENTS
    key = key_from_text(spec.key_columns, spec.key_types, _key_texts(args.key, "key value"))
    if args.url:
        return _remote_get(args, catalog, spec, key)
    when = f" as of snapshot {args.as_of}" if args.as_of else ""
    with open_store(catalog) as store:
        return _print_answer(spec, _view(store, spec, args.as_of), key, args.limit, when)


def _print_answer(spec: RelationSpec, source: Any, key: tuple[Any, ...], limit: int,
                  when: str = "") -> int:
    """`get`'s answer from a store view or a cluster relation (`source`): a stream key's
    events (exit 1 when none), or a table row (exit 1, said on stderr, when none)."""
    if spec.kind == "stream":
        events = source.events(key, limit, json_form=True)
        for e in events:
            print_json(e)
        if not events:
            say(f"{spec.name}: no events for key {list(key)}{when}")
            return 1
        return 0
    row = source.get(key, json_form=True)
    if row is None:
        say(f"{spec.name}: no row for key {list(key)}{when}")
        return 1
    print_json(row)
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    catalog = load_config(args.config)
    spec = relation_of(catalog, args.table)
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
                print_json(row)
        return 0
    with open_store(catalog) as store:
        for row in _view(store, spec, args.as_of).scan(prefix, args.limit, json_form=True):
            print_json(row)
    return 0


URL_RETRY_FOR = 30.0  # seconds `--url` tries while no worker answers (`Client(retry_for=)`)


def _client(args: argparse.Namespace, catalog: Catalog) -> Any:
    """`materializer.Client` for `--url` (the token from `api.token_env`)."""
    if args.as_of:
        raise UsageError("--as-of reads a snapshot of the local store: drop --url")
    from materializer.client import Client  # noqa: PLC0415

    return Client(args.url, token=api_token(catalog), retry_for=URL_RETRY_FOR)


def _remote_get(args: argparse.Namespace, catalog: Catalog, spec: RelationSpec,
                key: tuple[Any, ...]) -> int:
    """`get --url`: the key through the cluster (any worker, routed by the client)."""
    with _client(args, catalog) as client:
        return _print_answer(spec, _remote(client, spec, args.url), key, args.limit)

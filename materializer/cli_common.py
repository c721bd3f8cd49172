"""What the commands share: the declaration file read (with the environment: `${VAR}`),
a relation of it, the store, the API token (from the environment variable
`api.token_env` names), and JSON lines on stdout. Environment variables are read by the
command line only (here and in `materializer.cli`)."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

from materializer.errors import NotFound
from materializer.redact import remember, secret_values
from materializer.specs import Catalog, RelationSpec


def load_config(path: str) -> Catalog:
    from materializer.catalog import load_catalog  # noqa: PLC0415

    catalog = load_catalog(path, env=os.environ)
    # whatever this process logs or prints from now on masks them (`redact.scrub`)
    remember(secret_values(catalog.kafka))
    reg = catalog.schema_registry
    if reg is not None:
        remember(secret_values([*reg.config, ("url", reg.url or "")]))
    return catalog


def open_store(catalog: Catalog) -> Any:
    from materializer.store import Store  # noqa: PLC0415

    return Store.open(catalog.store_path, catalog.default_schema)


def served_directory(path: str) -> None:
    """`serve DIR`: NotFound (exit 1) for a directory that holds no data directory's files
    (a typo, the wrong folder: it would serve an API with no tables, silently); a warning
    for one that is a store but holds no table or stream yet (the writer has not made
    them: they are served once it does)."""
    from materializer.store.layout import RELATIONS, names  # noqa: PLC0415
    from materializer.store.lock import FORMAT_FILE  # noqa: PLC0415

    if names(path):
        return
    root = os.path.abspath(path)
    if not os.path.isdir(os.path.join(root, RELATIONS)) \
            and not os.path.exists(os.path.join(root, FORMAT_FILE)):
        raise NotFound(f"{root} is not a materializer data directory (no {RELATIONS}/ or "
                       f"{FORMAT_FILE} file in it): serve the directory a worker (store.path) "
                       "or a faust app (lmdb://) writes, or give the declaration file")
    logging.getLogger("materializer.api").warning(
        "%s holds no table or stream yet: the API serves them once a writer makes them", root)


def relation_of(catalog: Catalog, name: str) -> RelationSpec:
    try:
        return catalog.relation(name)
    except KeyError:
        names = ", ".join(r.name for r in catalog.relations) or "none"
        raise NotFound(f"no table or stream named {name!r} in the catalog (declared: {names})") \
            from None


class OutputError(Exception):
    """Standard output cannot be written (a full disk, a closed descriptor): the command
    ends with exit 1 and one line saying so (`materializer.cli.main`)."""


class Output:
    """`sys.stdout` while a command runs: a write that fails other than by a reader gone
    (BrokenPipeError: exit 141) raises OutputError, never a traceback or, for output still
    buffered at exit, a silent exit 0."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream  # None: Python's stdout when descriptor 1 was closed

    def write(self, text: str) -> int:
        if self.stream is None:
            raise OutputError("standard output is closed")
        try:
            return int(self.stream.write(text))
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputError(f"cannot write to standard output: {e.strerror or e}") from None

    def flush(self) -> None:
        if self.stream is None:
            return
        try:
            self.stream.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputError(f"cannot write to standard output: {e.strerror or e}") from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")


def api_token(catalog: Catalog) -> str | None:
    env = catalog.api.token_env
    token = os.environ.get(env) or None if env else None
    if token is not None:
        remember([token])
    return token

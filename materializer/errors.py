"""One error tree. The worker decides what to do by type and by `retriable`.

Bad records are *data* (see `apply.Rejected`), not exceptions; the exceptions here
are for configuration, infrastructure and the record-level `RecordError` that a
decoder raises and the applier turns into a rejection routed by policy.
"""

from __future__ import annotations

from dataclasses import dataclass


class MaterializerError(Exception):
    """Base of every error the project raises on purpose."""

    retriable: bool = False
    exit_code: int = 1


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem in a declaration file, at a 1-based line and column."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}: line {self.line}, column {self.column}: {self.message}"


class ConfigError(MaterializerError):
    """The declaration file is invalid; carries every problem found, not just the first."""

    exit_code = 2

    def __init__(self, diagnostics: list[Diagnostic] | str) -> None:
        if isinstance(diagnostics, str):
            self.diagnostics: list[Diagnostic] = []
            text = diagnostics
        else:
            self.diagnostics = list(diagnostics)
            text = "\n".join(str(d) for d in self.diagnostics)
        super().__init__(text)


class UsageError(MaterializerError):
    """A command was called with arguments that do not fit (bad key, unknown table)."""

    exit_code = 2


class RecordError(MaterializerError):
    """A record cannot be decoded or does not fit the declared columns.

    Raised by decoders; the applier catches it and routes the record by the
    table's `on_error` policy. `reason` is a short machine-friendly tag.
    """

    def __init__(self, message: str, reason: str = "decode") -> None:
        super().__init__(message)
        self.reason = reason


class RecordRejectedFatal(MaterializerError):
    """A bad record under policy `fail`: the worker stops with this message, exit 1."""


class SchemaChangedError(MaterializerError):
    """A declaration no longer matches the local state; `materializer rebuild` fixes it."""

    exit_code = 2


class InfrastructureError(MaterializerError):
    """The broker, registry or disk failed; worth retrying with backoff."""

    retriable = True
    retry_in: float | None = None  # set: a retry later than this many seconds is too late


class AmbiguousKeyError(MaterializerError):
    """A table's key is held by more than one of its partitions: its records went to more
    than one partition of the topic, so which row is the latest cannot be told. Readers
    raise it instead of answering with one of the rows (HTTP 409, CLI exit 4: not 1, which
    a script reads as "no row")."""

    exit_code = 4


class PartitionsNotHeld(MaterializerError):
    """A read missed while partitions of the relation are marked revoked from this store's
    worker (a rebalance gave them to another worker, or the group session was lost with the
    broker): a key of theirs is not known to be absent. Readers raise it instead of
    answering "no row" (HTTP 503, CLI exit 3); a cluster is asked with `materializer.Client`
    or `--url`."""

    exit_code = 3

    def __init__(self, relation: str, partitions: frozenset[int],
                 version: str | None = None) -> None:
        """`version`: where they were not held, when not in the live store (`snapshot
        'daily'`, a diff's versions): a snapshot never holds them later."""
        self.relation = relation
        self.partitions = partitions
        which = ", ".join(map(str, sorted(partitions)))
        if version is None:
            text = (f"partitions {which} of {relation} are not held by a worker of this store "
                    "(moved to another worker, or lost with the broker): a key of theirs is not "
                    "known to be absent; ask the cluster (materializer.Client, --url) or again "
                    "once a worker holds them")
        else:
            text = (f"partitions {which} of {relation} were not held by this store's worker "
                    f"in {version} (another worker held them, or the group session was lost): "
                    "their rows are not known there; read them where they were held")
        super().__init__(text)


class MemberNotRunning(MaterializerError):
    """A read of the live store of a cluster member whose worker does not run (`Store`
    views, `materializer get`/`scan`): the partitions it held may have moved to a worker
    that applied newer rows since, so its files are not answered from as current (CLI exit
    3, HTTP 503, as PartitionsNotHeld); a cluster is asked with `materializer.Client` or
    `--url`."""

    exit_code = 3


class StoreError(MaterializerError):
    """LMDB failed (translated where the `lmdb` module is called)."""


class ForkedError(StoreError):
    """An LMDB file used in a process forked from the one that opened it (the message names
    both processes and what to do instead)."""


NO_ROW = "no row with that key in "
"""How the HTTP API's 404 for an absent row starts (`no_row_detail`): a client tells it
from a 404 for a table or stream the worker does not serve (another declaration)."""


def no_row_detail(relation: str) -> str:
    """The `detail` of the HTTP API's 404 for a key `relation` holds no row for."""
    return NO_ROW + relation


class NotFound(MaterializerError):
    """A table, stream or row that does not exist."""

    exit_code = 1


class Stopped(MaterializerError):
    """A command asked to stop (SIGTERM, SIGINT) stopped between two of its steps, leaving
    the store as its message says: exit 128 + the signal's number (143, 130), as a shell
    reports a process the signal ended, but with that message (`shutdown.StopRequest`)."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum

"""Immutable, validated declarations: what the catalog builds and everything else reads.

Built once by `materializer.catalog` and passed down; never mutated.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from materializer.columns import ColumnType
from materializer.errors import ConfigError

KeyFormat = Literal["int", "long", "string", "json", "bytes", "avro", "kafka", "json_sr"]
ValueFormat = Literal["json", "avro", "string", "int", "long", "bytes", "debezium-json",
                      "debezium-avro", "json_sr", "protobuf"]
OnExisting = Literal["overwrite", "ignore", "versioned"]
NullKeyPolicy = Literal["drop", "dead_letter", "fail"]
OnErrorPolicy = Literal["fail", "skip", "dead_letter"]
OnResetPolicy = Literal["fail", "rebuild"]
"""What a relation does when its topic no longer holds the offsets it applied (recreated)."""
ChangeFormat = Literal["debezium-json", "debezium-avro"]
Partitioner = Literal["murmur2", "consistent_random", "unknown"]
"""How producers spread a relation's keys over partitions (cluster routing, see
`materializer.cluster.partitioning`): Java clients' murmur2, librdkafka's CRC-32, or unknown."""

KEY_FORMATS: tuple[KeyFormat, ...] = get_args(KeyFormat)
VALUE_FORMATS: tuple[ValueFormat, ...] = get_args(ValueFormat)
ON_EXISTING: tuple[OnExisting, ...] = get_args(OnExisting)
NULL_KEY_POLICIES: tuple[NullKeyPolicy, ...] = get_args(NullKeyPolicy)
ON_ERROR_POLICIES: tuple[OnErrorPolicy, ...] = get_args(OnErrorPolicy)
ON_RESET_POLICIES: tuple[OnResetPolicy, ...] = get_args(OnResetPolicy)
CHANGE_FORMATS: tuple[ChangeFormat, ...] = get_args(ChangeFormat)
PARTITIONERS: tuple[Partitioner, ...] = get_args(Partitioner)
DEFAULT_MAP_SIZE = 1 << 36
"""`store.map_size` when the file names none: the most a relation's LMDB file may hold,
which its writer maps whole at open (address space, not memory nor disk)."""
BATCH_SIZE = 20_000
"""Records polled and applied per batch (`materializer run --batch-size`)."""
MAX_PROCESSES = 256
"""The most worker processes `run --processes N` (`workers: N`) starts: the partition
count is not known before the broker is asked, and each process is a consumer, an LMDB
reader slot per relation and about 60 MB; past this a typo (`--processes 99999999`) would
fork until the machine ran out of memory or process slots. `auto` stays at or below the
CPU count."""
DEBEZIUM_PLACEHOLDER = "__debezium_unavailable_value"
"""What Debezium writes for a value it does not have: `unavailable.value.placeholder`'s
default, recognised by `debezium-json` and `debezium-avro` relations that declare no
`unavailable_value_placeholder`."""
DEBEZIUM_VALUE_FORMATS = frozenset(("debezium-json", "debezium-avro"))
PLACEHOLDER_FORMATS = frozenset(("debezium-json", "debezium-avro", "json", "json_sr", "avro"))
"""The value formats that may declare `unavailable_value_placeholder`: Debezium's envelopes,
and the rows ExtractNewRecordState unwraps from them."""


@dataclass(frozen=True, slots=True)
class Location:
    """Where a declaration starts in its file (1-based)."""

    file: str = "<memory>"
    line: int = 0
    column: int = 0


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: ColumnType
    not_null: bool = False


@dataclass(frozen=True, slots=True)
class ChangesSpec:
    """Where and how a table's change events go (SPEC §5)."""

    topic: str
    format: ChangeFormat = "debezium-json"
    columns: bool = False  # add the list of changed column names to `u` events
    schemas: bool = False  # debezium-json: JsonConverter's {"schema", "payload"} wrapper


@dataclass(frozen=True, slots=True)
class RelationSpec:
    """What tables and streams share: a name, a topic, columns, formats, policies."""

    name: str  # qualified: schema.name
    topic: str
    columns: tuple[Column, ...]
    key_columns: tuple[str, ...]
    key_format: KeyFormat = "json"
    value_format: ValueFormat = "json"
    on_error: OnErrorPolicy = "fail"
    dead_letter_topic: str | None = None
    partitions: int | None = None  # for creating a missing topic (ksqlDB PARTITIONS)
    replicas: int | None = None  # its replication factor (ksqlDB REPLICAS)
    timestamp_column: str | None = None  # the event time (ksqlDB TIMESTAMP)
    key_format_default: bool = field(default=False, compare=False)
    """Whether `key_format` is ksqlDB's default (KAFKA: DDL that names no KEY_FORMAT)."""
    on_reset: OnResetPolicy = "fail"
    partitioner: Partitioner = "murmur2"  # how producers partition the topic (routing)
    standby_replicas: int = 0  # other workers keeping each partition warm (failover)
    unavailable_value_placeholder: str | None = None
    """Debezium's `unavailable.value.placeholder` as declared (None: not declared); see
    `unavailable_placeholder`."""
    location: Location = field(default_factory=Location, compare=False)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def unavailable_placeholder(self) -> str | None:
        """The text that stands for a value Debezium did not have
        (`materializer.ingest.unavailable`): the declared one, else Debezium's default
        for `debezium-json` / `debezium-avro`, else None (nothing is recognised)."""
        declared = self.unavailable_value_placeholder
        if declared is not None:
            return declared
        return DEBEZIUM_PLACEHOLDER if self.value_format in DEBEZIUM_VALUE_FORMATS else None

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def key_types(self) -> tuple[ColumnType, ...]:
        return tuple(self.column(n).type for n in self.key_columns)

    def event_time_slot(self, layout: Sequence[str]) -> tuple[int, int] | None:
        """Where a stored row (in `layout` order) holds its event time, and the units of its
        stored form per millisecond: (slot, 1000) for a timestamp column (microseconds),
        (slot, 1) for a long column (epoch milliseconds); None without a `timestamp_column`
        (ksqlDB TIMESTAMP), when the Kafka record's timestamp is the event time."""
        col = self.timestamp_column
        if col is None or col not in layout:
            return None
        return list(layout).index(col), 1000 if self.column(col).type.kind == "timestamp" else 1

    @property
    def kind(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class TableSpec(RelationSpec):
    """A TABLE: one row per primary key, upserted (SPEC §2-§4)."""

    soft_primary_key: bool = False
    on_existing: OnExisting = "overwrite"
    version_column: str | None = None
    partial_update: tuple[str, ...] | None = None
    shard_key: tuple[str, ...] = ()
    replicated: bool = False
    null_key: NullKeyPolicy = "drop"
    changes: ChangesSpec | None = None

    @property
    def kind(self) -> str:
        return "table"

    @property
    def primary_key(self) -> tuple[str, ...]:
        return self.key_columns


@dataclass(frozen=True, slots=True)
class StreamSpec(RelationSpec):
    """A STREAM: append-only events looked up by key, newest first."""

    max_events_per_key: int = 1000

    @property
    def kind(self) -> str:
        return "stream"


@dataclass(frozen=True, slots=True)
class RegistrySpec:
    url: str | None = None
    path: str | None = None
    config: tuple[tuple[str, str], ...] = ()  # extra client settings (basic.auth.user.info, ...)


REGISTRY_CLIENT_KEYS = frozenset({
    "basic.auth.user.info", "basic.auth.credentials.source", "bearer.auth.token",
    "bearer.auth.logical.cluster", "bearer.auth.identity.pool.id", "ssl.ca.location",
    "ssl.certificate.location", "ssl.key.location", "ssl.key.password",
    "ssl.endpoint.identification.algorithm", "timeout", "max.retries", "retries.wait.ms",
    "retries.max.wait.ms", "unknown.id.wait.ms",
})
"""The settings of a `schema_registry.url` client (`RegistrySpec.config`): the catalog
refuses any other at its line, `connectors.registry_http` when built from Python."""

REGISTRY_IGNORED_KEYS = frozenset({"cache.capacity", "cache.latest.ttl.sec"})
"""Confluent client settings this client has no use for (its caches hold what the
registry's ids name, each once; it never reads a subject's latest version to decode):
refused, not silently ignored."""


def is_loopback(host: str) -> bool:
    """Whether `host` names only this machine (127.0.0.0/8, ::1 or localhost).

    The one rule for "loopback" (the catalog's check of `api.listen`, `materializer
    check` and the API's refusal to listen elsewhere without a token all use it).
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class ApiSpec:
    listen: str = "127.0.0.1:8080"
    token_env: str | None = None
    max_lookup_keys: int = 1000
    processes: int = 1  # serving processes on the one port (SO_REUSEPORT), see api.serve
    advertise: str | None = None
    """The URL other workers and clients reach this API at (default: from `listen`)."""

    @property
    def host(self) -> str:
        """The host part of `listen` (brackets of `[v6]` removed; an empty host is
        0.0.0.0, every address)."""
        return self.listen.rpartition(":")[0].strip("[]") or "0.0.0.0"

    def host_port(self) -> tuple[str, int]:
        """`listen` (`host:port` or `[v6]:port`) as (host, port); ConfigError if it is
        neither."""
        _, sep, port = self.listen.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigError(f"api.listen {self.listen!r} is not host:port "
                              "(e.g. 127.0.0.1:8080)")
        return self.host, int(port)

    def is_loopback(self) -> bool:
        """Whether `listen` is on a loopback address only (see `is_loopback`)."""
        return is_loopback(self.host)


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """Settings of this worker as a member of its group (`cluster:`; see materializer.cluster)."""

    worker_id: str | None = None  # default: host name and a hash of the store path
    heartbeat_ms: int = 1000  # how often a worker publishes its membership record
    member_timeout_ms: int = 10_000  # a member silent this long is dropped from routing
    forward_timeout_ms: int = 5000  # a lookup forwarded to another worker waits this long


@dataclass(frozen=True, slots=True)
class SnapshotSchedule:
    """Snapshots the running worker takes on its own (`snapshots:`; materializer.versions)."""

    every: float  # seconds; taken at each multiple of it since the epoch (1h: on the hour)
    keep: int | None = None  # the newest scheduled snapshots kept (None: every one)
    tables: tuple[str, ...] | None = None  # qualified names (None: every table and stream)


@dataclass(frozen=True, slots=True)
class Catalog:
    """A whole declaration file, resolved."""

    source: str
    kafka: tuple[tuple[str, str], ...] = ()
    group: str = "materializer"
    store_path: str = "./data"
    map_size: int = DEFAULT_MAP_SIZE
    schema_registry: RegistrySpec | None = None
    api: ApiSpec = field(default_factory=ApiSpec)
    cluster: ClusterSpec = field(default_factory=ClusterSpec)
    default_schema: str = "public"
    tables: tuple[TableSpec, ...] = ()
    streams: tuple[StreamSpec, ...] = ()
    snapshots: SnapshotSchedule | None = None
    workers: int | Literal["auto"] = 1  # `run`'s worker processes (`--processes`, ingest.processes)

    @property
    def kafka_config(self) -> dict[str, str]:
        return dict(self.kafka)

    @property
    def relations(self) -> tuple[RelationSpec, ...]:
        return (*self.tables, *self.streams)

    def relation(self, name: str) -> RelationSpec:
        """Find by qualified or unqualified (default schema) name."""
        want = name if "." in name else f"{self.default_schema}.{name}"
        for r in self.relations:
            if r.name in (name, want):
                return r
        raise KeyError(name)


def storage_identity(spec: RelationSpec) -> dict[str, Any]:
    """What the local state depends on; a change in any of it needs `rebuild`.

    Columns are compared by name and type; adding a nullable column is allowed
    (see `identity_difference`).
    """
    ident: dict[str, Any] = {
        "kind": spec.kind,
        "name": spec.name,
        "topic": spec.topic,
        "columns": [[c.name, str(c.type), c.not_null] for c in spec.columns],
        "key": list(spec.key_columns),
        "key_format": spec.key_format,
        "value_format": spec.value_format,
        # how input becomes rows: a change would leave rows no replay under it gives
        "rules": _row_rules(spec),
    }
    return ident


def _row_rules(spec: RelationSpec) -> dict[str, Any]:
    """The declared rules that decide which row a key holds, beyond columns and formats:
    a table's merge rules, a stream's event time (`timestamp_column`: its events are
    stored with their event time, read newest first and trimmed by it), and every column's
    input encoding (a timestamp read in microseconds instead of milliseconds is another
    instant)."""
    rules: dict[str, Any] = {}
    if isinstance(spec, TableSpec):
        rules["on_existing"] = spec.on_existing
        rules["version_column"] = spec.version_column
        rules["partial_update"] = (None if spec.partial_update is None
                                   else list(spec.partial_update))
    else:  # a stream stores each event with its event time and keeps the newest by it
        rules["timestamp_column"] = spec.timestamp_column
    encodings = {c.name: _encodings(c.type) for c in spec.columns}
    rules["encodings"] = {n: e for n, e in encodings.items() if e}
    return rules


def _encodings(t: ColumnType) -> str:
    """A column type's input encodings, its items' included (`` when all default)."""
    inner = _encodings(t.item) if t.item is not None else ""
    own = t.encoding or ""
    return f"{own}<{inner}>" if inner else own


def identity_difference(stored: dict[str, Any], current: dict[str, Any]) -> str | None:
    """Describe why `current` cannot use state built for `stored`, or None if it can."""
    for field_name in ("kind", "topic", "key", "key_format", "value_format"):
        if stored.get(field_name) != current.get(field_name):
            return (f"{field_name} changed from {json.dumps(stored.get(field_name))} "
                    f"to {json.dumps(current.get(field_name))}")
    old = {c[0]: c for c in stored.get("columns", [])}
    new = {c[0]: c for c in current.get("columns", [])}
    for name, col in old.items():
        if name not in new:
            return f"column {name!r} was removed"
        if new[name][1] != col[1]:
            return f"column {name!r} changed from {col[1]} to {new[name][1]}"
        if new[name][2] and not col[2]:  # dropping NOT NULL is fine: rows hold values
            return f"column {name!r} was made NOT NULL (rows may hold nulls)"
    for name, col in new.items():
        if name not in old and col[2]:
            return f"column {name!r} was added as NOT NULL"
    was, now = stored.get("rules"), current.get("rules") or {}
    if isinstance(was, dict):  # recorded since 2026-12; older state: recorded now
        for rule in ("on_existing", "version_column", "partial_update"):
            if was.get(rule) != now.get(rule):
                return (f"{rule} changed from {json.dumps(was.get(rule))} to "
                        f"{json.dumps(now.get(rule))} (the rows held were merged by the "
                        "old rule)")
        if "timestamp_column" in was and was.get("timestamp_column") != now.get(
                "timestamp_column"):  # recorded since 2026-12: older state takes it now
            return (f"timestamp_column changed from {json.dumps(was.get('timestamp_column'))} "
                    f"to {json.dumps(now.get('timestamp_column'))} (the events held were "
                    "stored and ordered by the old event time)")
        old_enc, new_enc = was.get("encodings") or {}, now.get("encodings") or {}
        for name in sorted(set(old_enc) | set(new_enc)):
            if name in old and old_enc.get(name) != new_enc.get(name):
                return (f"column {name!r} changed its encoding from "
                        f"{old_enc.get(name) or 'the default'} to "
                        f"{new_enc.get(name) or 'the default'} (its values were read "
                        "the old way)")
    return None

"""What `materializer check` prints: the resolved settings and every relation.

Guarantees: secrets in client settings are shown as `materializer.redact` says,
never in clear.
"""

from __future__ import annotations

from materializer.catalog.snapshots import format_duration
from materializer.redact import redact
from materializer.specs import Catalog, RelationSpec, StreamSpec, TableSpec


def describe(catalog: Catalog) -> str:
    """What `materializer check` prints: the resolved settings and every relation;
    secrets in client settings shown as `materializer.redact` says."""
    lines = [f"config: {catalog.source}"]
    kafka = ", ".join(f"{k}={redact(k, v)}" for k, v in catalog.kafka) or "(none)"
    lines.append(f"kafka: {kafka}")
    lines.append(f"group: {catalog.group}")
    lines.append(f"store: {catalog.store_path} (map_size {catalog.map_size})")
    reg = catalog.schema_registry
    if reg is not None:
        where = f"url {redact('url', reg.url)}" if reg.url else f"path {reg.path}"
        extra = "".join(f", {k}={redact(k, v)}" for k, v in reg.config)
        lines.append(f"schema_registry: {where}{extra}")
    api = catalog.api
    token = f", token from ${api.token_env}" if api.token_env else ", no token"
    lines.append(f"api: {api.listen}{token}, max_lookup_keys {api.max_lookup_keys}"
                 + (f", advertised as {api.advertise}" if api.advertise else ""))
    cl = catalog.cluster
    lines.append(f"cluster: worker_id {cl.worker_id or '(host name and store path)'}, "
                 f"heartbeat {cl.heartbeat_ms} ms, member timeout {cl.member_timeout_ms} ms, "
                 f"forward timeout {cl.forward_timeout_ms} ms")
    lines.append(f"default_schema: {catalog.default_schema}")
    snap = catalog.snapshots
    if snap is not None:
        keep = f"keep the newest {snap.keep}" if snap.keep else "keep all"
        which = ", ".join(snap.tables) if snap.tables else "every table and stream"
        lines.append(f"snapshots: every {format_duration(snap.every)} ({keep}) of {which}, "
                     "taken by the worker")
    for spec in catalog.relations:
        lines.append("")
        lines.extend(_describe_relation(spec))
    lines.append("")
    lines.append(f"{len(catalog.tables)} table(s), {len(catalog.streams)} stream(s): OK")
    return "\n".join(lines)


def _describe_relation(spec: RelationSpec) -> list[str]:
    where = f" ({spec.location.file}: line {spec.location.line})" if spec.location.line else ""
    create = [f"{spec.partitions} partitions"] if spec.partitions else []
    create += [f"replication factor {spec.replicas}"] if spec.replicas else []
    topic = f" (if missing, created with {', '.join(create)})" if create else ""
    out = [f"{spec.kind} {spec.name}{where}", f"  topic: {spec.topic}{topic}", "  columns:"]
    width = max(len(c.name) for c in spec.columns)
    key_word = "PRIMARY KEY" if spec.kind == "table" else "KEY"
    for c in spec.columns:
        flags = " NOT NULL" if c.not_null else ""
        if c.name in spec.key_columns:
            flags += f" {key_word}"
        if c.type.encoding is not None:
            flags += f" encoding {c.type.encoding}"
        out.append(f"    {c.name.ljust(width)}  {c.type}{flags}")
    default = (" (ksqlDB's default when KEY_FORMAT is not named)"
               if spec.key_format_default else "")
    out.append(f"  formats: key {spec.key_format}{default}, value {spec.value_format}")
    placeholder = spec.unavailable_placeholder
    if placeholder is not None:
        how = ("" if spec.unavailable_value_placeholder is not None
               else " (Debezium's default)")
        out.append(f"  unavailable_value_placeholder: {placeholder!r}{how}: keeps the stored "
                   "value")
    out.append(f"  timestamp: {spec.timestamp_column} (event time)" if spec.timestamp_column
               else "  timestamp: the Kafka record's timestamp")
    if isinstance(spec, TableSpec):
        kind = "soft primary key" if spec.soft_primary_key else "primary key"
        out.append(f"  {kind}: ({', '.join(spec.key_columns)})")
        out.append(f"  shard_key: ({', '.join(spec.shard_key or spec.key_columns)})"
                   + ("" if spec.shard_key else " (the whole primary key)"))
        version = f", version_column {spec.version_column}" if spec.version_column else ""
        out.append(f"  on_existing: {spec.on_existing}{version}")
        partial = ", ".join(spec.partial_update) if spec.partial_update is not None else "no"
        out.append(f"  partial_update: {partial}")
        out.append(f"  replicated: {'yes' if spec.replicated else 'no'}")
        out.append(f"  null_key: {spec.null_key}")
    else:
        out.append(f"  key: ({', '.join(spec.key_columns)})")
    unbounded = [c for c in spec.key_columns if spec.column(c).type.kind in ("string", "bytes")]
    if unbounded:
        limit = 511 if isinstance(spec, TableSpec) else 503
        out.append(f"  note: key column(s) {', '.join(unbounded)} are unbounded: a record whose "
                   f"stored key exceeds LMDB's {limit} bytes is rejected (key_too_long)")
    out.append(f"  partitioner: {spec.partitioner}, standby_replicas: {spec.standby_replicas}")
    out.append(f"  on_error: {spec.on_error}")
    out.append(f"  on_reset: {spec.on_reset}")
    out.append(f"  dead_letter_topic: {spec.dead_letter_topic or '(none)'}")
    if isinstance(spec, TableSpec):
        ch = spec.changes
        changes = "(none)" if ch is None else (
            f"{ch.topic} ({ch.format}{', changed columns' if ch.columns else ''}"
            f"{', Connect schemas' if ch.schemas else ''})")
        out.append(f"  changes: {changes}")
    else:
        assert isinstance(spec, StreamSpec)
        out.append(f"  retention: {spec.max_events_per_key} events per key")
    return out

"""The SPEC §3 rules: `RelationDecl`s (from YAML or DDL) to `TableSpec` / `StreamSpec`.

Guarantees:
- Every problem is reported as a `Diagnostic` at the line and column of the
  offending key or value, with how to fix it; nothing stops at the first problem.
- A relation with any problem produces no spec; the caller raises `ConfigError`.
- Specs that pass are safe for the applier: key columns are declared, keyable and
  NOT NULL (tables), formats fit the columns they fill, and no two settings
  contradict each other (e.g. a soft primary key never needs a read).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from materializer.catalog.decl import (
    STREAM_FIELDS,
    TABLE_FIELDS,
    ChangesDecl,
    ColumnDecl,
    Context,
    RelationDecl,
    misplaced_message,
)
from materializer.catalog.format_checks import as_written, formats
from materializer.catalog.rules import TIMESTAMP_KINDS, Rules
from materializer.catalog.table_rules import stream, table
from materializer.cluster.membership import members_topic
from materializer.columns import ENCODINGS, ColumnType
from materializer.specs import (
    DEBEZIUM_PLACEHOLDER,
    NULL_KEY_POLICIES,
    ON_ERROR_POLICIES,
    ON_RESET_POLICIES,
    PARTITIONERS,
    PLACEHOLDER_FORMATS,
    Column,
    Location,
    NullKeyPolicy,
    OnErrorPolicy,
    StreamSpec,
    TableSpec,
)


def _key(r: Rules, cols: dict[str, ColumnDecl]) -> tuple[tuple[str, ...], bool]:
    """The key columns (and whether the primary key is soft), with their rules checked."""
    d = r.d
    if d.kind == "stream":
        if "key" not in d.fields:
            if not ({"primary_key", "soft_primary_key"} & d.fields.keys()):
                fix = ("mark a column `KEY` (`user_id STRING KEY`)" if d.syntax == "sql"
                       else "add `key: [column, ...]`")
                r.error(d.loc, f"{r.what} has no `key`: streams are looked up by key; {fix}")
            return (), False
        names = r.column_list("key", cols, "key") or ()
        r.key_types_ok("key", names, cols)
        return names, False
    hard, soft = d.fields.get("primary_key"), d.fields.get("soft_primary_key")
    if hard is not None and soft is not None:
        r.error(soft.key_loc, f"{r.what} has both `primary_key` and `soft_primary_key`: keep "
                "one (`soft_primary_key` when producers already keep keys unique)")
        return (), False
    which = "primary_key" if hard is not None else "soft_primary_key"
    if hard is None and soft is None:
        if "key" not in d.fields:
            fix = ("add `PRIMARY KEY (column, ...)`, or use CREATE STREAM with a `KEY` column"
                   if d.syntax == "sql" else "add `primary_key: [column, ...]`, or declare it "
                   "under `streams:` with `key:`")
            r.error(d.loc, f"{r.what} has no primary key: a table keeps one row per primary "
                    f"key; {fix} to keep every event")
        return (), False
    names = r.column_list(which, cols, "primary key") or ()
    r.key_types_ok(which, names, cols)
    return names, soft is not None


def _topic_settings(r: Rules, cols: dict[str, ColumnDecl]) -> dict[str, Any]:
    """partitions and replicas (for creating a missing topic) and the timestamp column
    (ksqlDB PARTITIONS, REPLICAS, TIMESTAMP)."""
    out: dict[str, Any] = {}
    for key, bits in (("partitions", 32), ("replicas", 16)):
        f = r.get(key)
        if f is None:
            continue
        n = int(f.value.value)
        if n < 1:
            r.error(f.value.loc, f"`{key}` must be at least 1, not {n}")
        elif n >= 2 ** (bits - 1):  # the Kafka protocol's field (the client cannot send it)
            r.error(f.value.loc, f"`{key}` must be at most {2 ** (bits - 1) - 1} (Kafka "
                    f"counts {key} in a {bits}-bit integer), not {n}")
        out[key] = n
    f = r.get("timestamp_column")
    if f is not None:
        name = str(f.value.value)
        spelled = "TIMESTAMP" if r.d.syntax == "sql" else "timestamp_column"
        if name not in cols:
            r.error(f.value.loc, f"timestamp column `{name}` is not declared in {r.what}: "
                    f"declare it, or remove `{spelled}` (declared: {', '.join(cols)})")
        elif cols[name].type.kind not in TIMESTAMP_KINDS:
            r.error(f.value.loc, f"timestamp column `{name}` has type {cols[name].type}: "
                    f"`{spelled}` names a timestamp or long (epoch milliseconds) column")
        out["timestamp_column"] = name
    return out


def _placeholder(r: Rules, vf: str) -> dict[str, Any]:
    """`unavailable_value_placeholder`: Debezium's `unavailable.value.placeholder` when the
    connector sets another than its default (`debezium-json`, `debezium-avro`), or the one
    unwrapped Debezium rows hold (`json`, `json_sr`, `avro`: none is recognised without
    it). Refused where no Debezium row can carry it, and empty."""
    f = r.get("unavailable_value_placeholder")
    if f is None:
        return {}
    text = str(f.value.value)
    spelled = ("UNAVAILABLE_VALUE_PLACEHOLDER" if r.d.syntax == "sql"
               else "unavailable_value_placeholder")
    if not text:
        r.error(f.value.loc, f"`{spelled}` is empty: Debezium never writes an empty "
                "placeholder (an empty string would mark every empty text as unavailable); "
                f"write the connector's `unavailable.value.placeholder` (default "
                f"{DEBEZIUM_PLACEHOLDER}), or remove `{spelled}`")
    elif vf not in PLACEHOLDER_FORMATS:
        why = ("the value is one column's value, not a Debezium row" if vf in (
            "string", "int", "long", "bytes") else "Protobuf values are not read as "
            "Debezium rows here")
        r.error(f.value.loc, f"`{spelled}` applies to Debezium rows (value_format "
                f"debezium-json, debezium-avro, or json, json_sr, avro from "
                f"ExtractNewRecordState), but {as_written(r, 'value_format', vf)}: {why}; "
                f"remove `{spelled}`")
    return {"unavailable_value_placeholder": text}


def _policies(r: Rules) -> tuple[NullKeyPolicy, OnErrorPolicy, str | None]:
    null_key = r.choice("null_key", NULL_KEY_POLICIES, "drop")
    on_error = r.choice("on_error", ON_ERROR_POLICIES, "fail")
    dlt = r.text("dead_letter_topic")
    if dlt is None:
        for key, value in (("null_key", null_key), ("on_error", on_error)):
            f = r.get(key)
            if value == "dead_letter" and f is not None:
                r.error(f.value.loc, f"`{key}: dead_letter` needs a topic to send records to: "
                        "add `dead_letter_topic: <topic>`")
    elif dlt == r.text("topic"):
        f = r.get("dead_letter_topic")
        assert f is not None
        r.error(f.value.loc, "`dead_letter_topic` is the topic this relation reads: choose "
                "another topic, or records would come back forever")
    return null_key, on_error, dlt


def _encoded(r: Rules, c: ColumnDecl) -> ColumnType:
    """The column's type with its `encoding`, which must be one its kind takes."""
    if c.encoding is None:
        return c.type
    value, allowed = c.encoding.value, ENCODINGS.get(c.type.kind, ())
    spelled = f"ENCODING '{value}'" if r.d.syntax == "sql" else f"encoding: {value}"
    if not allowed:
        items = (" (an array's or map's items take none: they are read as their type's "
                 "default)" if c.type.kind in ("array", "map") else "")
        r.error(c.encoding.loc, f"`{spelled}` does not apply to {c.type} column "
                f"`{c.name.value}`: only decimal (base64), timestamp and time (ms, s, us, ns) "
                f"and bytes (base64, base64-url-safe, hex) columns take an encoding{items}; "
                "remove it")
    elif value not in allowed:
        use = allowed[0] if len(allowed) == 1 else f"one of {', '.join(allowed)}"
        r.error(c.encoding.loc, f"`{spelled}` is not valid for {c.type} column "
                f"`{c.name.value}`: use {use}")
    return replace(c.type, encoding=value)


def build_relation(d: RelationDecl, ctx: Context) -> TableSpec | StreamSpec | None:
    """Check one declaration against SPEC §3; the spec, or None if anything is wrong."""
    r = Rules(d, ctx)
    allowed = TABLE_FIELDS if d.kind == "table" else STREAM_FIELDS
    for key, f in d.fields.items():
        if key not in allowed:
            r.error(f.key_loc, misplaced_message(d.kind, key))
    name = r.name()
    topic = r.required("topic", "<kafka topic>")
    r.check_topic("topic")
    r.check_topic("dead_letter_topic")
    cols = r.columns()
    keys, soft = _key(r, cols)
    kf, vf, kf_default = formats(r, keys, cols)
    null_key, on_error, dlt = _policies(r)
    pk = set(keys) if d.kind == "table" else set()
    columns = tuple(Column(c.name.value, _encoded(r, c), c.not_null or n in pk)
                    for n, c in cols.items())
    base: dict[str, Any] = {
        "name": name or "", "topic": topic or "", "columns": columns, "key_columns": keys,
        "key_format": kf, "value_format": vf, "on_error": on_error, "dead_letter_topic": dlt,
        "key_format_default": kf_default, **_topic_settings(r, cols),
        "on_reset": r.choice("on_reset", ON_RESET_POLICIES, "fail"), "location": d.loc,
        "partitioner": r.choice("partitioner", PARTITIONERS, "murmur2"),
        **_placeholder(r, vf),
    }
    spec: TableSpec | StreamSpec = (table(r, base, keys, soft, cols, null_key)
                                    if d.kind == "table" else stream(r, base))
    spec = _standby(r, spec)
    return spec if r.ok else None


def _standby(r: Rules, spec: TableSpec | StreamSpec) -> TableSpec | StreamSpec:
    """`standby_replicas` (the relation's, else the top level's): none for a replicated
    table, which every worker keeps whole anyway, nor for a relation that emits change
    events or dead letters, which only a partition's owner sends."""
    f = r.get("standby_replicas")
    n = int(f.value.value) if f is not None else r.ctx.standby_replicas
    if isinstance(spec, TableSpec) and spec.replicated:
        if f is not None and n > 0:
            r.error(f.key_loc, f"{r.what} is replicated (every worker keeps every partition), "
                    "so it has no standby replicas: remove `standby_replicas`")
        return spec
    if isinstance(spec, TableSpec) and spec.changes is not None:
        if f is not None and n > 0:  # (the top-level default leaves it out)
            r.error(f.key_loc, f"{r.what} emits change events, which only a partition's owner "
                    "emits, so a standby copy could not take over without losing or repeating "
                    "some: remove `standby_replicas` (it fails over by re-reading its topic)")
        return spec
    if _dead_letters(spec):
        if f is not None and n > 0:  # (the top-level default leaves it out)
            r.error(f.key_loc, f"{r.what} sends rejected records to "
                    f"{spec.dead_letter_topic} (`dead_letter` policy), which only a "
                    "partition's owner sends (a standby copy counts them), so a standby copy "
                    "taking over would pass records whose dead letter was never sent: remove "
                    "`standby_replicas` (it fails over by re-reading its topic)")
        return spec
    return replace(spec, standby_replicas=n) if n else spec


def _dead_letters(spec: TableSpec | StreamSpec) -> bool:
    """Whether some records of `spec` may be dead-lettered (`on_error` or `null_key`)."""
    return "dead_letter" in (spec.on_error, getattr(spec, "null_key", None))


def build_relations(decls: list[RelationDecl], ctx: Context
                    ) -> tuple[list[TableSpec], list[StreamSpec]]:
    """Build every declaration; names must be unique per schema across tables and streams.

    Problems go to `ctx.diags`; the specs returned are those without problems.
    """
    tables: list[TableSpec] = []
    streams: list[StreamSpec] = []
    seen: dict[str, tuple[str, Location]] = {}
    built: list[tuple[TableSpec | StreamSpec, RelationDecl]] = []
    for d in decls:
        spec = build_relation(d, ctx)
        name_field = d.fields.get("name")
        qualified = spec.name if spec is not None else None
        if qualified is None and name_field is not None:
            raw = str(name_field.value.value)
            qualified = raw if "." in raw else f"{ctx.default_schema}.{raw}"
        if qualified is not None and name_field is not None:
            if qualified in seen:
                kind, first = seen[qualified]
                ctx.error(name_field.value.loc, f"`{qualified}` is already declared as a {kind} "
                          f"at line {first.line}, column {first.column}: tables and streams "
                          "share one namespace per schema; rename one")
                continue
            seen[qualified] = (d.kind, name_field.value.loc)
        if isinstance(spec, TableSpec):
            tables.append(spec)
        elif isinstance(spec, StreamSpec):
            streams.append(spec)
        if spec is not None:
            built.append((spec, d))
    _dead_letter_cycles(built, ctx)
    _taken_topics(built, ctx)
    return tables, streams


def _taken_topics(built: list[tuple[TableSpec | StreamSpec, RelationDecl]],
                  ctx: Context) -> None:
    """Refuse a change topic that another table's change events go to too (a snapshot of
    one table reads the topic and deletes, with a `d` event and a tombstone, every key it
    does not hold: the other table's rows), and any topic of a relation (read, change
    events, dead letters) that is the group's own `<group>.members` topic, where the
    workers publish their membership records (a table would read them as rows, and the
    workers would read its records as members)."""
    members = members_topic(ctx.group)
    first: dict[str, tuple[str, Location]] = {}
    for spec, d in built:
        topics: list[tuple[str, str, Location]] = []
        f = d.fields.get("topic")
        if f is not None:
            topics.append(("topic", spec.topic, f.value.loc))
        f = d.fields.get("dead_letter_topic")
        if f is not None and spec.dead_letter_topic is not None:
            topics.append(("dead_letter_topic", spec.dead_letter_topic, f.value.loc))
        f = d.fields.get("changes")
        if isinstance(spec, TableSpec) and spec.changes is not None and f is not None:
            ch: ChangesDecl = f.value.value
            loc = ch.topic.loc if ch.topic is not None else f.value.loc
            topics.append(("changes.topic", spec.changes.topic, loc))
            seen = first.get(spec.changes.topic)
            if seen is not None:
                ctx.error(loc, f"`changes.topic` {spec.changes.topic!r} is also the change "
                          f"topic of {seen[0]} (line {seen[1].line}, column {seen[1].column}):"
                          " one topic holds the change events of one table (a snapshot of "
                          "either would delete the other's rows from it, and their keys "
                          "would replace each other's under compaction); give each table a "
                          "topic of its own")
            else:
                first[spec.changes.topic] = (spec.name, loc)
        for key, topic, loc in topics:
            if topic == members:
                ctx.error(loc, f"`{key}` {topic!r} is the topic where the workers of group "
                          f"{ctx.group!r} publish their membership (`<group>.members`): "
                          "its records would be mixed with the workers' own; choose another "
                          "topic, or another `group`")


def _sends_dead_letters(spec: TableSpec | StreamSpec) -> bool:
    return spec.dead_letter_topic is not None and (
        spec.on_error == "dead_letter" or getattr(spec, "null_key", "drop") == "dead_letter")


def _dead_letter_cycles(built: list[tuple[TableSpec | StreamSpec, RelationDecl]],
                        ctx: Context) -> None:
    """Refuse dead-letter topics that lead back to a relation's own topic through other
    relations (a reads x, dead letters to y; b reads y, dead letters to x): a record both
    reject would come back forever, copied into both topics and counted each time. (A
    relation whose own topic is its dead-letter topic is refused in `_policies`.)"""
    change_topics = {spec.changes.topic: spec.name for spec, _ in built
                     if isinstance(spec, TableSpec) and spec.changes is not None}
    for spec, d in built:
        owner = change_topics.get(spec.dead_letter_topic or "")
        f = d.fields.get("dead_letter_topic")
        if owner is not None and f is not None and _sends_dead_letters(spec):
            ctx.error(f.value.loc, f"`dead_letter_topic` {spec.dead_letter_topic!r} is the "
                      f"change topic of {owner}: rejected records would be mixed into its "
                      "change events; choose another topic")
    sends: dict[str, list[tuple[TableSpec | StreamSpec, RelationDecl]]] = {}
    for spec, d in built:
        if _sends_dead_letters(spec) and spec.dead_letter_topic != spec.topic:
            sends.setdefault(spec.topic, []).append((spec, d))
    for spec, d in built:
        if spec.topic not in sends or not _sends_dead_letters(spec):
            continue
        # the dead-letter path from this relation's topic: does it come back to it?
        path = [spec.name]
        seen = {spec.topic}
        frontier = [(spec.dead_letter_topic, path)]
        found: list[str] | None = None
        while frontier and found is None:
            topic, via = frontier.pop()
            if topic == spec.topic:
                found = via
                break
            if topic is None or topic in seen:
                continue
            seen.add(topic)
            for other, _ in sends.get(topic, ()):
                frontier.append((other.dead_letter_topic, [*via, other.name]))
        if found is None or len(found) < 2 or spec.name != max(found):
            continue  # reported once per cycle: at the relation whose name sorts last in it
        f = d.fields.get("dead_letter_topic")
        if f is None:
            continue
        ctx.error(f.value.loc, f"`dead_letter_topic` {spec.dead_letter_topic!r} leads back to "
                  f"the topic this relation reads ({spec.topic!r}) through the dead letters of "
                  f"{' -> '.join(found)}: a record each of them rejects would come back "
                  "forever; choose a dead-letter topic no relation here reads with a dead-letter "
                  "policy of its own")

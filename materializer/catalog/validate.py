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
from typing import Any, TypeVar

from materializer.catalog.decl import (
    STREAM_FIELDS,
    TABLE_FIELDS,
    At,
    ChangesDecl,
    ColumnDecl,
    Context,
    Field,
    RelationDecl,
    misplaced_message,
    name_problem,
)
from materializer.columns import ENCODINGS, NOT_KEYABLE, ColumnType
from materializer.specs import (
    CHANGE_FORMATS,
    KEY_FORMATS,
    NULL_KEY_POLICIES,
    ON_ERROR_POLICIES,
    ON_EXISTING,
    ON_RESET_POLICIES,
    VALUE_FORMATS,
    ChangesSpec,
    Column,
    Location,
    NullKeyPolicy,
    OnErrorPolicy,
    StreamSpec,
    TableSpec,
)

C = TypeVar("C", bound=str)


def one_of(value: str, allowed: tuple[C, ...]) -> C:
    """`value` as one of `allowed` (the first one if it is none of them: already an error)."""
    return next((a for a in allowed if a == value), allowed[0])

# Types a version can be compared in (stored as numbers, so `>=` is the intended order).
VERSION_KINDS = ("int", "long", "float", "double", "date", "time", "timestamp")
# Column kinds whose stored form a one-value key or value format can produce.
SCALAR_FORMAT_KINDS = {
    "int": frozenset({"int", "long", "float", "double", "decimal", "date", "time",
                      "timestamp"}),
    "long": frozenset({"int", "long", "float", "double", "decimal", "date", "time",
                       "timestamp"}),
    "string": frozenset({"string", "uuid", "decimal", "date", "time", "timestamp", "bytes"}),
    "bytes": frozenset({"bytes"}),
}
_FORMAT_READS = {"int": "a 4-byte big-endian integer", "long": "an 8-byte big-endian integer",
                 "string": "UTF-8 text", "bytes": "raw bytes"}
_DDL_NAMES = {"topic": "kafka_topic"}
KAFKA_KEY_KINDS = ("int", "long", "double", "string", "bytes")
"""Key column kinds ksqlDB's KAFKA format reads (Kafka's Integer, Long, Double, String and
ByteArray serializers; see `materializer.formats.codecs`)."""
TIMESTAMP_KINDS = ("timestamp", "long")
UNSUPPORTED_FORMATS = {
    "protobuf": "reading Protobuf needs each schema's .proto text compiled at run time, and "
                "this worker has no Protobuf compiler; have the producer write AVRO, JSON_SR "
                "or JSON",
    "protobuf_nosr": "Protobuf without a registry has no schema to read it by; have the "
                     "producer write AVRO, JSON_SR or JSON",
}
"""ksqlDB formats this worker refuses, and why."""


class _Rules:
    """Checks one declaration; `ok` is False as soon as any problem was recorded."""

    def __init__(self, d: RelationDecl, ctx: Context) -> None:
        self.d = d
        self.ctx = ctx
        self.start = len(ctx.diags)
        self.what = d.kind

    @property
    def ok(self) -> bool:
        return len(self.ctx.diags) == self.start

    def error(self, loc: Location, message: str) -> None:
        self.ctx.error(loc, message)

    def get(self, key: str) -> Field | None:
        return self.d.fields.get(key)

    def text(self, key: str, default: str | None = None) -> str | None:
        f = self.get(key)
        return default if f is None else str(f.value.value)

    def name(self) -> str | None:
        """The qualified name, `schema.name`; unqualified names get the default schema."""
        f = self.get("name")
        if f is None:
            self.error(self.d.loc, f"this {self.d.kind} has no `name`: add `name: [schema.]name`")
            return None
        raw: At[str] = f.value
        parts = raw.value.split(".")
        if len(parts) > 2:
            off = len(parts[0]) + len(parts[1]) + 1
            self.error(raw.at(off), f"name `{raw.value}` has more than one `.`: write "
                       "`name` or `schema.name` (names themselves cannot contain `.`)")
            return None
        if len(parts) == 1:
            schema, rel, rel_off = self.ctx.default_schema, parts[0], 0
        else:
            schema, rel, rel_off = parts[0], parts[1], len(parts[0]) + 1
            problem = name_problem(schema, column=False)
            if problem is not None:
                self.error(raw.at(problem[0]), f"schema {problem[1]}")
        problem = name_problem(rel, column=False)
        if problem is not None:
            self.error(raw.at(rel_off + problem[0]), f"{self.d.kind} {problem[1]}")
        qualified = f"{schema}.{rel}"
        self.what = f"{self.d.kind} `{qualified}`"
        return qualified

    def required(self, key: str, hint: str) -> str | None:
        f = self.get(key)
        if f is None:
            fix = (f"WITH ({_DDL_NAMES.get(key, key)}='{hint}', ...)" if self.d.syntax == "sql"
                   else f"`{key}: {hint}`")
            self.error(self.d.loc, f"{self.what} has no `{key}`: add {fix}")
            return None
        value = str(f.value.value)
        if not value:
            self.error(f.value.loc, f"`{key}` of {self.what} is empty: give {hint}")
        return value

    def columns(self) -> dict[str, ColumnDecl]:
        f = self.get("columns")
        if f is None:
            self.error(self.d.loc, f"{self.what} has no `columns`: add "
                       "`columns: {name: type, ...}`")
            return {}
        out: dict[str, ColumnDecl] = {}
        for c in f.value.value:
            problem = name_problem(c.name.value, column=True)
            if problem is not None:
                self.error(c.name.at(problem[0]), problem[1])
            if c.name.value in out:
                self.error(c.name.loc, f"column `{c.name.value}` is declared twice in "
                           f"{self.what}: remove or rename one")
            out[c.name.value] = c
        if not out:
            self.error(f.value.loc, f"{self.what} declares no columns: add at least the key "
                       "columns, as `name: type`")
        return out

    def column_list(self, key: str, cols: dict[str, ColumnDecl], label: str
                    ) -> tuple[str, ...] | None:
        """A list of declared column names (keys, shard key, partial update), checked."""
        f = self.get(key)
        if f is None:
            return None
        items: tuple[At[str], ...] = f.value.value
        if not items:
            self.error(f.value.loc, f"`{key}` of {self.what} is empty: list the {label} "
                       "columns")
            return ()
        seen: set[str] = set()
        for item in items:
            if item.value not in cols:
                declared = ", ".join(cols) or "none"
                self.error(item.loc, f"{label} column `{item.value}` is not declared in "
                           f"{self.what}: add it under `columns` or remove it from `{key}` "
                           f"(declared: {declared})")
            elif item.value in seen:
                self.error(item.loc, f"`{item.value}` appears twice in `{key}`: list each "
                           "column once")
            seen.add(item.value)
        return tuple(i.value for i in items)

    def key_types_ok(self, key: str, names: tuple[str, ...], cols: dict[str, ColumnDecl]
                     ) -> None:
        f = self.get(key)
        assert f is not None
        for item in f.value.value:
            c = cols.get(item.value)
            if c is not None and c.type.kind in NOT_KEYABLE:
                self.error(item.loc, f"column `{c.name.value}` has type {c.type}, which cannot "
                           f"be part of a key: use a scalar type (int, long, string, uuid, "
                           f"decimal, date, timestamp, ...) for `{key}` columns")

    def choice(self, key: str, allowed: tuple[C, ...], default: C) -> C:
        """The value of `key`, one of `allowed` (an error, and `default`, otherwise)."""
        f = self.get(key)
        if f is None:
            return default
        value = str(f.value.value)
        for a in allowed:
            if a == value:
                return a
        self.error(f.value.loc, f"`{key}: {value}` is not valid: use one of "
                   f"{', '.join(allowed)}")
        return default


def _key(r: _Rules, cols: dict[str, ColumnDecl]) -> tuple[tuple[str, ...], bool]:
    """The key columns (and whether the primary key is soft), with their rules checked."""
    d = r.d
    if d.kind == "stream":
        if "key" not in d.fields:
            if not ({"primary_key", "soft_primary_key"} & d.fields.keys()):
                fix = ("mark a column `KEY` (`user_id STRING KEY`)" if d.syntax == "sql"
                       else "`key: [column, ...]`")
                r.error(d.loc, f"{r.what} has no `key`: streams are looked up by key; add {fix}")
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


def _format_fits(r: _Rules, key: str, fmt: str, cols: list[ColumnDecl]) -> None:
    """A one-value format must produce the stored form of the column(s) it fills."""
    f = r.get(key)
    loc = f.value.loc if f is not None else r.d.loc
    kinds = SCALAR_FORMAT_KINDS.get(fmt)
    if kinds is None:
        return
    side = "key" if key == "key_format" else "value"
    if len(cols) != 1:
        listed = ", ".join(c.name.value for c in cols) or "none"
        need = "a composite key" if side == "key" else f"{len(cols)} non-key columns ({listed})"
        fix = "key_format json or avro" if side == "key" else "value_format json or avro"
        r.error(loc, f"`{key}: {fmt}` holds one value, but {r.what} has {need}: use {fix}")
        return
    c = cols[0]
    if c.type.kind not in kinds:
        r.error(loc, f"`{key}: {fmt}` reads {_FORMAT_READS[fmt]}, which does not fit "
                f"{side} column `{c.name.value}` of type {c.type}: use {key} json, or one "
                f"that fits {c.type}")


def _refused_formats(r: _Rules) -> set[str]:
    """Formats ksqlDB has and this worker cannot read, each an error that says so."""
    out = set()
    for key in ("key_format", "value_format"):
        f = r.get(key)
        value = str(f.value.value) if f is not None else ""
        if f is not None and value in UNSUPPORTED_FORMATS:
            r.error(f.value.loc, f"{_spelled(r, key, value)} is not supported: "
                    f"{UNSUPPORTED_FORMATS[value]}")
            out.add(key)
    return out


def _spelled(r: _Rules, key: str, value: str) -> str:
    """A setting as the declaration writes it: `key: value` or `KEY='VALUE'`."""
    if r.d.syntax == "sql":
        return f"`{_DDL_NAMES.get(key, key).upper()}='{value.upper()}'`"
    return f"`{key}: {value}`"


def _kafka_key(r: _Rules, names: tuple[str, ...], cols: list[ColumnDecl]) -> None:
    """ksqlDB's KAFKA key format: one key column of a type Kafka has a serializer for."""
    f = r.get("key_format")
    loc = f.value.loc if f is not None else r.d.loc
    how = (_spelled(r, "key_format", "kafka") if f is not None else
           "KEY_FORMAT is not named, so the key is read as KAFKA (ksqlDB's default when "
           "KEY_FORMAT is not named), which")
    fix = ("add KEY_FORMAT='JSON' (or 'JSON_SR', 'AVRO') to WITH (...)" if f is None else
           "use key_format json, json_sr or avro")
    if len(cols) != 1:
        r.error(loc, f"{how} reads one key column (Kafka's serializer of its type), but "
                f"{r.what} has a composite key ({', '.join(names)}): {fix}")
        return
    c = cols[0]
    if c.type.kind not in KAFKA_KEY_KINDS:
        r.error(loc, f"{how} reads the key with Kafka's serializer of its type, and ksqlDB's "
                f"KAFKA format has them for INT, BIGINT, DOUBLE, STRING, BYTES only: key "
                f"column `{c.name.value}` has type {c.type}; {fix}")


def _formats(r: _Rules, names: tuple[str, ...], cols: dict[str, ColumnDecl]
             ) -> tuple[str, str, bool]:
    """(key format, value format, whether the key format is ksqlDB's default: DDL that
    names no KEY_FORMAT reads KAFKA keys, as ksqlDB does)."""
    refused = _refused_formats(r)
    implicit = r.d.syntax == "sql" and r.get("key_format") is None
    kf = "json" if "key_format" in refused else r.choice(
        "key_format", KEY_FORMATS, "kafka" if implicit else "json")
    vf = "json" if "value_format" in refused else r.choice(
        "value_format", VALUE_FORMATS, "json")
    if names and all(n in cols for n in names) and kf == "kafka":
        _kafka_key(r, names, [cols[n] for n in names])
    elif names and all(n in cols for n in names) and kf in KEY_FORMATS:
        _format_fits(r, "key_format", kf, [cols[n] for n in names])
    if vf in ("string", "int", "long", "bytes"):
        _format_fits(r, "value_format", vf, [c for n, c in cols.items() if n not in names])
    for key, fmt in (("key_format", kf), ("value_format", vf)):
        f = r.get(key)
        if "avro" in fmt and not r.ctx.has_registry and f is not None:
            r.error(f.value.loc, f"`{key}: {fmt}` needs a schema registry: add "
                    "`schema_registry: {url: ...}` (or `path:`) at the top level")
    return kf, vf, implicit


def _topic_settings(r: _Rules, cols: dict[str, ColumnDecl]) -> dict[str, Any]:
    """partitions and replicas (for creating a missing topic) and the timestamp column
    (ksqlDB PARTITIONS, REPLICAS, TIMESTAMP)."""
    out: dict[str, Any] = {}
    for key in ("partitions", "replicas"):
        f = r.get(key)
        if f is None:
            continue
        n = int(f.value.value)
        if n < 1:
            r.error(f.value.loc, f"`{key}` must be at least 1, not {n}")
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


def _policies(r: _Rules) -> tuple[NullKeyPolicy, OnErrorPolicy, str | None]:
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


def _version(r: _Rules, on_existing: str, keys: tuple[str, ...],
             cols: dict[str, ColumnDecl]) -> str | None:
    f = r.get("version_column")
    if on_existing == "versioned" and f is None:
        oe = r.get("on_existing")
        assert oe is not None
        r.error(oe.value.loc, "`on_existing: versioned` needs `version_column: <column>`: the "
                "column whose greater (or equal) value wins")
        return None
    if f is None:
        return None
    name = str(f.value.value)
    if on_existing != "versioned":
        r.error(f.key_loc, "`version_column` only applies with `on_existing: versioned`: add "
                "that, or remove `version_column`")
    elif name not in cols:
        r.error(f.value.loc, f"version column `{name}` is not declared in {r.what}: add it "
                "under `columns`")
    elif name in keys:
        r.error(f.value.loc, f"version column `{name}` is a key column, so it never changes "
                "for a key: use a non-key column such as an update time or counter")
    elif cols[name].type.kind not in VERSION_KINDS:
        r.error(f.value.loc, f"version column `{name}` has type {cols[name].type}, which has no "
                f"version order: use one of {', '.join(VERSION_KINDS)}")
    return name


def _partial(r: _Rules, on_existing: str, version: str | None, keys: tuple[str, ...],
             cols: dict[str, ColumnDecl]) -> tuple[str, ...] | None:
    names = r.column_list("partial_update", cols, "partial_update")
    f = r.get("partial_update")
    if names is None or f is None:
        return None
    for item in f.value.value:
        if item.value in keys:
            r.error(item.loc, f"`{item.value}` is a key column: a partial update always carries "
                    "the key; list only the non-key columns it updates")
    if on_existing == "ignore":
        r.error(f.key_loc, "`partial_update` merges into the stored row, but `on_existing: "
                "ignore` never changes a stored row: use overwrite or versioned")
    for n, c in cols.items():
        if c.not_null and n not in keys and n not in names:
            r.error(f.key_loc, f"column `{n}` is NOT NULL but not in `partial_update`: a new "
                    f"key gets null there; add `{n}` to `partial_update` or make it nullable")
    if version is not None and version not in names:
        r.error(f.value.loc, f"with `on_existing: versioned`, `partial_update` must include the "
                f"version column `{version}`: add it")
    return names


def _changes(r: _Rules, topic: str | None) -> ChangesSpec | None:
    f = r.get("changes")
    if f is None:
        return None
    ch: ChangesDecl = f.value.value
    if ch.topic is None:
        r.error(f.value.loc, "`changes` has no `topic`: add `topic: <topic for change events>`")
        return None
    if ch.topic.value == topic:
        r.error(ch.topic.loc, "the change topic is the topic this table reads: choose "
                "another topic, or the table would read its own change events")
    fmt = "debezium-json"
    if ch.format is not None:
        fmt = ch.format.value
        if fmt not in CHANGE_FORMATS:
            r.error(ch.format.loc, f"change format `{fmt}` is not valid: use one of "
                    f"{', '.join(CHANGE_FORMATS)}")
        elif fmt == "debezium-avro" and not r.ctx.has_registry:
            r.error(ch.format.loc, "change format debezium-avro needs a schema registry: add "
                    "`schema_registry: {url: ...}` (or `path:`) at the top level")
    schemas = ch.schemas is not None and ch.schemas.value
    if schemas and fmt == "debezium-avro" and ch.schemas is not None:
        r.error(ch.schemas.loc, "`schemas` is for format debezium-json (Connect's JSON "
                "schema wrapper); debezium-avro events name their schema in the registry: "
                "remove `schemas`")
    return ChangesSpec(ch.topic.value, one_of(fmt, CHANGE_FORMATS), ch.columns, schemas)


def _soft_conflicts(r: _Rules, soft: bool) -> None:
    """A soft primary key writes blind, so nothing that needs the stored row may be used."""
    f = r.get("soft_primary_key")
    if not soft or f is None:
        return
    for key, bad in (("on_existing", lambda v: v != "overwrite"),
                     ("partial_update", lambda v: True), ("changes", lambda v: True)):
        g = r.get(key)
        if g is not None and bad(g.value.value):
            r.error(g.key_loc, f"`soft_primary_key` writes blind (no read before write), so "
                    f"`{key}` cannot work: use `primary_key`, or remove `{key}`")


def _table(r: _Rules, base: dict[str, Any], keys: tuple[str, ...], soft: bool,
           cols: dict[str, ColumnDecl], null_key: NullKeyPolicy) -> TableSpec:
    on_existing = r.choice("on_existing", ON_EXISTING, "overwrite")
    version = _version(r, on_existing, keys, cols)
    partial = _partial(r, on_existing, version, keys, cols)
    shard = r.column_list("shard_key", cols, "shard key") or ()
    sf = r.get("shard_key")
    if sf is not None:
        for item in sf.value.value:
            if item.value in cols and item.value not in keys:
                r.error(item.loc, f"shard key column `{item.value}` is not in the primary key "
                        f"({', '.join(keys)}): the shard key is a subset of the primary key")
    _soft_conflicts(r, soft)
    rep = r.get("replicated")
    replicated = bool(rep.value.value) if rep is not None else False
    if replicated and sf is not None:
        spelled = "replicated=true" if r.d.syntax == "sql" else "replicated: true"
        r.error(sf.key_loc, f"{r.what} is replicated (every worker keeps every partition), so "
                f"it has no shard key: remove one of `shard_key` and `{spelled}`")
    return TableSpec(**base, soft_primary_key=soft, on_existing=on_existing,
                     version_column=version, partial_update=partial, shard_key=shard,
                     replicated=replicated,
                     null_key=null_key, changes=_changes(r, base["topic"]))


def _stream(r: _Rules, base: dict[str, Any]) -> StreamSpec:
    f = r.get("retention")
    limit = 1000
    if f is not None:
        limit = int(f.value.value)
        if limit < 1:
            r.error(f.value.loc, f"`max_events_per_key: {limit}` keeps no events: use a "
                    "number of at least 1 (default 1000)")
    return StreamSpec(**base, max_events_per_key=limit)


def _encoded(r: _Rules, c: ColumnDecl) -> ColumnType:
    """The column's type with its `encoding`, which must be one its kind takes."""
    if c.encoding is None:
        return c.type
    value, allowed = c.encoding.value, ENCODINGS.get(c.type.kind, ())
    spelled = f"ENCODING '{value}'" if r.d.syntax == "sql" else f"encoding: {value}"
    if not allowed:
        r.error(c.encoding.loc, f"`{spelled}` does not apply to {c.type} column "
                f"`{c.name.value}`: only decimal (base64), timestamp and time (ms, us, ns) "
                "columns take an encoding; remove it")
    elif value not in allowed:
        use = allowed[0] if len(allowed) == 1 else f"one of {', '.join(allowed)}"
        r.error(c.encoding.loc, f"`{spelled}` is not valid for {c.type} column "
                f"`{c.name.value}`: use {use}")
    return replace(c.type, encoding=value)


def build_relation(d: RelationDecl, ctx: Context) -> TableSpec | StreamSpec | None:
    """Check one declaration against SPEC §3; the spec, or None if anything is wrong."""
    r = _Rules(d, ctx)
    allowed = TABLE_FIELDS if d.kind == "table" else STREAM_FIELDS
    for key, f in d.fields.items():
        if key not in allowed:
            r.error(f.key_loc, misplaced_message(d.kind, key))
    name = r.name()
    topic = r.required("topic", "<kafka topic>")
    cols = r.columns()
    keys, soft = _key(r, cols)
    kf, vf, kf_default = _formats(r, keys, cols)
    null_key, on_error, dlt = _policies(r)
    pk = set(keys) if d.kind == "table" else set()
    columns = tuple(Column(c.name.value, _encoded(r, c), c.not_null or n in pk)
                    for n, c in cols.items())
    base: dict[str, Any] = {
        "name": name or "", "topic": topic or "", "columns": columns, "key_columns": keys,
        "key_format": kf, "value_format": vf, "on_error": on_error, "dead_letter_topic": dlt,
        "key_format_default": kf_default, **_topic_settings(r, cols),
        "on_reset": r.choice("on_reset", ON_RESET_POLICIES, "fail"), "location": d.loc,
    }
    spec: TableSpec | StreamSpec = (_table(r, base, keys, soft, cols, null_key)
                                    if d.kind == "table" else _stream(r, base))
    return spec if r.ok else None


def build_relations(decls: list[RelationDecl], ctx: Context
                    ) -> tuple[list[TableSpec], list[StreamSpec]]:
    """Build every declaration; names must be unique per schema across tables and streams.

    Problems go to `ctx.diags`; the specs returned are those without problems.
    """
    tables: list[TableSpec] = []
    streams: list[StreamSpec] = []
    seen: dict[str, tuple[str, Location]] = {}
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
    return tables, streams

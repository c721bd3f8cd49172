"""The rules of a TABLE's own settings: on_existing and its version column, partial_update,
soft primary keys, shard keys, replication and change events; and building the spec."""

from __future__ import annotations

from typing import Any

from materializer.catalog.decl import (
    ChangesDecl,
    ColumnDecl,
    topic_problem,
)
from materializer.catalog.rules import VERSION_KINDS, Rules, one_of
from materializer.specs import (
    CHANGE_FORMATS,
    ON_EXISTING,
    ChangesSpec,
    NullKeyPolicy,
    StreamSpec,
    TableSpec,
)


def version_rule(r: Rules, on_existing: str, keys: tuple[str, ...],
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


def partial_rule(r: Rules, on_existing: str, version: str | None, keys: tuple[str, ...],
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


def changes(r: Rules, topic: str | None) -> ChangesSpec | None:
    f = r.get("changes")
    if f is None:
        return None
    ch: ChangesDecl = f.value.value
    if ch.topic is None:
        r.error(f.value.loc, "`changes` has no `topic`: add `topic: <topic for change events>`")
        return None
    problem = topic_problem(ch.topic.value)
    if problem is not None:
        r.error(ch.topic.at(problem[0]), f"`changes.topic`: {problem[1]}")
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


def soft_conflicts(r: Rules, soft: bool) -> None:
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


def table(r: Rules, base: dict[str, Any], keys: tuple[str, ...], soft: bool,
           cols: dict[str, ColumnDecl], null_key: NullKeyPolicy) -> TableSpec:
    on_existing = r.choice("on_existing", ON_EXISTING, "overwrite")
    version = version_rule(r, on_existing, keys, cols)
    partial = partial_rule(r, on_existing, version, keys, cols)
    shard = r.column_list("shard_key", cols, "shard key") or ()
    sf = r.get("shard_key")
    if sf is not None:
        for item in sf.value.value:
            if item.value in cols and item.value not in keys:
                r.error(item.loc, f"shard key column `{item.value}` is not in the primary key "
                        f"({', '.join(keys)}): the shard key is a subset of the primary key")
    soft_conflicts(r, soft)
    rep = r.get("replicated")
    replicated = bool(rep.value.value) if rep is not None else False
    if replicated and sf is not None:
        spelled = "replicated=true" if r.d.syntax == "sql" else "replicated: true"
        r.error(sf.key_loc, f"{r.what} is replicated (every worker keeps every partition), so "
                f"it has no shard key: remove one of `shard_key` and `{spelled}`")
    return TableSpec(**base, soft_primary_key=soft, on_existing=on_existing,
                     version_column=version, partial_update=partial, shard_key=shard,
                     replicated=replicated,
                     null_key=null_key, changes=changes(r, base["topic"]))


def stream(r: Rules, base: dict[str, Any]) -> StreamSpec:
    f = r.get("retention")
    limit = 1000
    if f is not None:
        limit = int(f.value.value)
        if limit < 1:
            r.error(f.value.loc, f"`max_events_per_key: {limit}` keeps no events: use a "
                    "number of at least 1 (default 1000)")
    return StreamSpec(**base, max_events_per_key=limit)

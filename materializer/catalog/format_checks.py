"""The key and value format checks of SPEC §3: each format is one this worker reads, fits the
column(s) it fills, and has what it needs (a schema registry, the protobuf package); and a
setting spelled as its declaration writes it."""

from __future__ import annotations

import importlib.util

from materializer.catalog.decl import ColumnDecl
from materializer.catalog.rules import (
    DDL_NAMES,
    FORMAT_READS,
    KAFKA_KEY_KINDS,
    SCALAR_FORMAT_KINDS,
    UNSUPPORTED_FORMATS,
    Rules,
)
from materializer.specs import KEY_FORMATS, VALUE_FORMATS


def _format_fits(r: Rules, key: str, fmt: str, cols: list[ColumnDecl]) -> None:
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
        r.error(loc, f"`{key}: {fmt}` reads {FORMAT_READS[fmt]}, which does not fit "
                f"{side} column `{c.name.value}` of type {c.type}: use {key} json, or one "
                f"that fits {c.type}")


def _refused_formats(r: Rules) -> set[str]:
    """Formats ksqlDB has and this worker cannot read, each an error that says so."""
    out = set()
    for key in ("key_format", "value_format"):
        f = r.get(key)
        value = str(f.value.value) if f is not None else ""
        if f is not None and value in UNSUPPORTED_FORMATS:
            r.error(f.value.loc, f"{as_written(r, key, value)} is not supported: "
                    f"{UNSUPPORTED_FORMATS[value]}")
            out.add(key)
    return out


def as_written(r: Rules, key: str, value: str) -> str:
    """A setting as the declaration writes it: `key: value` or `KEY='VALUE'`."""
    if r.d.syntax == "sql":
        return f"`{DDL_NAMES.get(key, key).upper()}='{value.upper()}'`"
    return f"`{key}: {value}`"


def _kafka_key(r: Rules, names: tuple[str, ...], cols: list[ColumnDecl]) -> None:
    """ksqlDB's KAFKA key format: one key column of a type Kafka has a serializer for."""
    f = r.get("key_format")
    loc = f.value.loc if f is not None else r.d.loc
    how = (as_written(r, "key_format", "kafka") if f is not None else
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


def formats(r: Rules, names: tuple[str, ...], cols: dict[str, ColumnDecl]
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
        if fmt == "protobuf" and f is not None and (r.ctx.registry_is_files
                                                    or not r.ctx.has_registry):
            why = ("a registry kept as files holds Avro schemas only" if r.ctx.has_registry
                   else "it reads each schema from the registry")
            r.error(f.value.loc, f"{as_written(r, key, fmt)} needs a Confluent-compatible "
                    f"schema registry ({why}): add `schema_registry: {{url: ...}}` at the "
                    "top level")
        if fmt == "protobuf" and f is not None and not _has_protobuf():
            r.error(f.value.loc, f"{as_written(r, key, fmt)} needs the protobuf package, "
                    "which is not installed: pip install 'materializer[protobuf]'")
    return kf, vf, implicit


def _has_protobuf() -> bool:
    """Whether the protobuf package (the `protobuf` extra) is installed."""
    try:
        return importlib.util.find_spec("google.protobuf") is not None
    except (ImportError, ValueError):  # a `google` namespace without protobuf in it
        return False

"""The `sql:` DDL, property-tested: generated declarations written as YAML and as DDL give
equal specs, and a bad type is located in the file (see test_ddl.py for the examples)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from materializer.catalog import load_catalog_text
from materializer.catalog.rules import KAFKA_KEY_KINDS, SCALAR_FORMAT_KINDS, VERSION_KINDS
from materializer.columns import NOT_KEYABLE, ColumnType
from materializer.errors import ConfigError
from materializer.specs import Catalog
from tests.support.catalog import char_at, sql_file

# ----------------------------------------------------------------------------- properties

Draw = Callable[..., Any]  # st.DrawFn or DataObject.draw
ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
PRIMS = ("boolean", "int", "long", "float", "double", "string", "bytes", "date", "time",
         "timestamp", "uuid", "json")
DDL_NAMES = {"int": ("INT", "INTEGER", "int"), "long": ("BIGINT", "LONG", "bigint"),
             "string": ("VARCHAR", "STRING", "varchar")}


def names(rest: str, max_size: int) -> st.SearchStrategy[str]:
    return st.builds(lambda a, b: a + b, st.sampled_from(ALNUM),
                     st.text(alphabet=ALNUM + rest, max_size=max_size - 1))


relation_names = names(" #{}[]():-", 12).filter(lambda n: not n.endswith(" "))  # refused
column_names = names("{}[]:.", 10)
topics = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=12
                 ).filter(lambda t: t not in (".", ".."))  # what Kafka refuses
decimals = st.integers(1, 38).flatmap(
    lambda p: st.integers(0, p).map(lambda s: ColumnType("decimal", p, s)))
keyable_types = st.one_of(
    st.sampled_from([ColumnType(k) for k in PRIMS if k not in NOT_KEYABLE]), decimals)
column_types = st.recursive(
    st.one_of(st.sampled_from([ColumnType(k) for k in PRIMS]), decimals),
    lambda inner: st.one_of(st.builds(lambda t: ColumnType("array", item=t), inner),
                            st.builds(lambda t: ColumnType("map", item=t), inner)),
    max_leaves=3)


@st.composite
def declarations(draw: st.DrawFn) -> dict[str, Any]:
    """A random valid declaration, as a plain dict both renderers understand."""
    kind = draw(st.sampled_from(["table", "stream"]))
    # no two columns differing only in case: the loader refuses them (one field fills both)
    cols = draw(st.lists(column_names, min_size=1, max_size=6, unique_by=str.casefold))
    types = [draw(keyable_types)] + [draw(column_types) for _ in cols[1:]]
    nn = [draw(st.booleans()) for _ in cols]
    keyable = [c for c, t in zip(cols, types, strict=True) if t.kind not in NOT_KEYABLE]
    key = draw(st.permutations(keyable).flatmap(
        lambda p: st.integers(1, len(p)).map(lambda n: list(p[:n]))))
    d: dict[str, Any] = {
        "kind": kind, "schema": draw(st.none() | relation_names), "name": draw(relation_names),
        "topic": draw(topics), "columns": list(zip(cols, types, nn, strict=True)), "key": key,
    }
    by_name = dict(zip(cols, types, strict=True))
    non_key = [c for c in cols if c not in key]
    d["key_format"] = draw(st.sampled_from(_key_formats([by_name[k] for k in key])))
    d["value_format"] = draw(st.sampled_from(_value_formats([by_name[c] for c in non_key])))
    policies = ["drop", "dead_letter", "fail"]
    d["on_error"] = draw(st.sampled_from(["fail", "skip", "dead_letter"]))
    d["null_key"] = draw(st.sampled_from(policies)) if kind == "table" else "drop"
    if "dead_letter" in (d["on_error"], d["null_key"]) or draw(st.booleans()):
        d["dead_letter_topic"] = draw(topics.filter(lambda t: t != d["topic"]))
    d["partitions"] = draw(st.none() | st.integers(1, 10_000))
    d["replicas"] = draw(st.none() | st.integers(1, 5))
    times = [c for c in cols if by_name[c].kind in ("timestamp", "long")]
    d["timestamp_column"] = draw(st.none() | st.sampled_from(times)) if times else None
    if kind == "stream":
        d["max_events_per_key"] = draw(st.none() | st.integers(1, 10**6))
        return d
    d.update(draw(_table_rules(d, by_name, key, non_key)))
    return d


def _key_formats(types: list[ColumnType]) -> list[str]:
    if len(types) > 1:
        return ["json", "avro", "json_sr"]
    kafka = ["kafka"] if types[0].kind in KAFKA_KEY_KINDS else []
    return ["json", "avro", "json_sr", *kafka] + [f for f, kinds in SCALAR_FORMAT_KINDS.items()
                                                  if types[0].kind in kinds]


def _value_formats(types: list[ColumnType]) -> list[str]:
    out = ["json", "avro", "json_sr", "debezium-json", "debezium-avro"]
    if len(types) == 1:
        out += [f for f, kinds in SCALAR_FORMAT_KINDS.items() if types[0].kind in kinds]
    return out


@st.composite
def _table_rules(draw: st.DrawFn, d: dict[str, Any], by_name: dict[str, ColumnType],
                 key: list[str], non_key: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"soft": draw(st.booleans())}
    out["replicated"] = draw(st.booleans())
    # a replicated table has no shard key (every worker keeps every partition)
    out["shard_key"] = None if out["replicated"] else draw(
        st.none() | st.lists(st.sampled_from(key), min_size=1, unique=True))
    if out["soft"]:
        return out
    versions = [c for c in non_key if by_name[c].kind in VERSION_KINDS]
    choices = ["overwrite", "ignore"] + (["versioned"] if versions else [])
    out["on_existing"] = draw(st.sampled_from(choices))
    if out["on_existing"] == "versioned":
        out["version_column"] = draw(st.sampled_from(versions))
    if out["on_existing"] != "ignore" and non_key and draw(st.booleans()):
        # each column once; every NOT NULL non-key column and the version column (which
        # may itself be NOT NULL) must be in it
        partial = draw(st.lists(st.sampled_from(non_key), min_size=1, unique=True))
        required = [c for c, _, nn in d["columns"] if nn and c in non_key]
        required += [out["version_column"]] if out.get("version_column") else []
        partial += [c for c in dict.fromkeys(required) if c not in partial]
        out["partial_update"] = partial
    if draw(st.booleans()):
        out["changes"] = {"topic": draw(topics.filter(  # the dead letters go elsewhere
            lambda t: t not in (d["topic"], d.get("dead_letter_topic")))),
                          "format": draw(st.sampled_from(["debezium-json", "debezium-avro"])),
                          "columns": draw(st.booleans())}
    return out


def qualified(d: dict[str, Any]) -> str:
    return f"{d['schema'] or 'public'}.{d['name']}"


def to_yaml(decls: list[dict[str, Any]]) -> str:
    doc: dict[str, Any] = {"schema_registry": {"path": "reg"}, "tables": [], "streams": []}
    for d in decls:
        entry: dict[str, Any] = {
            "name": f"{d['schema']}.{d['name']}" if d["schema"] else d["name"],
            "topic": d["topic"],
            "columns": {c: str(t) + (" not null" if nn else "") for c, t, nn in d["columns"]},
        }
        key_field = "key" if d["kind"] == "stream" else (
            "soft_primary_key" if d.get("soft") else "primary_key")
        entry[key_field] = d["key"]
        for k in ("key_format", "value_format", "on_error", "dead_letter_topic", "on_existing",
                  "version_column", "partial_update", "replicated", "changes", "partitions",
                  "replicas", "timestamp_column"):
            if d.get(k) is not None:
                entry[k] = d[k]
        if d["kind"] == "table":
            entry["null_key"] = d["null_key"]
            if d.get("shard_key"):
                entry["shard_key"] = d["shard_key"]
        elif d.get("max_events_per_key") is not None:
            entry["retention"] = {"max_events_per_key": d["max_events_per_key"]}
        doc["tables" if d["kind"] == "table" else "streams"].append(entry)
    return yaml.safe_dump(doc, sort_keys=False)


def ddl_type(t: ColumnType, draw: Draw) -> str:
    if t.kind in DDL_NAMES:
        return str(draw(st.sampled_from(DDL_NAMES[t.kind])))
    if t.kind == "decimal":
        return f"DECIMAL({t.precision},{draw(st.sampled_from(['', ' ', '  ']))}{t.scale})"
    if t.item is not None and t.kind == "array":
        return f"ARRAY<{ddl_type(t.item, draw)}>"
    if t.item is not None:
        key = draw(st.sampled_from(["STRING", "VARCHAR", "string"]))
        return f"MAP<{key}, {ddl_type(t.item, draw)}>"
    return str(draw(st.sampled_from([t.kind.upper(), t.kind])))


def q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def to_ddl(d: dict[str, Any], draw: Draw) -> str:
    """One CREATE statement for `d`, with random spelling that must not change its meaning."""
    lower = draw(st.booleans())

    def kw(word: str) -> str:
        return word.lower() if lower else word

    table = d["kind"] == "table"
    marker = "PRIMARY KEY" if table else "KEY"
    inline = (len(d["key"]) == 1 or not table) and draw(st.booleans()) and (
        d["key"] == [c for c, _, _ in d["columns"] if c in d["key"]])
    parts = []
    for c, t, nn in d["columns"]:
        part = f"{q(c)} {ddl_type(t, draw)}"
        mods = (["NOT NULL"] if nn else []) + ([marker] if inline and c in d["key"] else [])
        parts.append(" ".join([part, *draw(st.permutations(mods))]))
    if not inline:
        parts.append(f"{marker} ({', '.join(q(k) for k in d['key'])})")
    props = {"kafka_topic": d["topic"], "on_error": d["on_error"]}
    fmt_case = draw(st.sampled_from([str.upper, str.lower]))
    if d["key_format"] == d["value_format"] and draw(st.booleans()):
        props["format"] = fmt_case(d["key_format"])
    else:  # KAFKA is ksqlDB's default key format: it need not be named
        if d["key_format"] != "kafka" or draw(st.booleans()):
            props["key_format"] = fmt_case(d["key_format"])
        props["value_format"] = fmt_case(d["value_format"])
    for k in ("dead_letter_topic", "on_existing", "version_column", "max_events_per_key",
              "partitions", "replicas"):
        if d.get(k) is not None:
            props[k] = d[k]
    if d.get("timestamp_column") is not None:
        props["timestamp"] = d["timestamp_column"]
    if table:
        props["null_key"] = d["null_key"].upper()
        props["replicated"] = "TRUE" if d["replicated"] else "false"
        if d.get("soft"):
            props["soft_primary_key"] = "true"
        for k in ("partial_update", "shard_key"):
            if d.get(k):
                props[k] = ", ".join(d[k])
        if d.get("changes"):
            ch = d["changes"]
            props.update(changes_topic=ch["topic"], changes_format=ch["format"],
                         changes_columns=str(ch["columns"]).lower())
    items = list(props.items())
    order = draw(st.permutations(range(len(items))))
    rendered = []
    for i in order:
        k, v = items[i]
        value = str(v) if isinstance(v, int) or v in ("TRUE", "false") else \
            "'" + str(v).replace("'", "''") + "'"
        rendered.append(f"{kw(k.upper()) if draw(st.booleans()) else k} = {value}")
    name = (f"{q(d['schema'])}.{q(d['name'])}" if d["schema"] else q(d["name"]))
    sep = draw(st.sampled_from([", ", ",\n    ", " ,"]))
    return (f"{kw('CREATE')} {kw('TABLE' if table else 'STREAM')} {name} (\n    "
            f"{sep.join(parts)}\n) {kw('WITH')} ({', '.join(rendered)})")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(declarations())
def test_the_generator_only_draws_valid_declarations(d: dict[str, Any]) -> None:
    """The properties below trust `declarations()`; a drawn file the loader refuses is a
    bug in the generator, not in the product (one once listed a NOT NULL version column
    twice in `partial_update`)."""
    partial = d.get("partial_update") or []
    assert len(partial) == len(set(partial)), partial
    assert not (d.get("replicated") and d.get("shard_key")), d
    load_catalog_text(to_yaml([d]), "t.yaml")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(declarations(), min_size=1, max_size=3, unique_by=qualified), st.data())
def test_ddl_and_yaml_give_equal_specs(decls: list[dict[str, Any]], data: st.DataObject) -> None:
    changes = [d["changes"]["topic"] for d in decls if "changes" in d]
    assume(len(set(changes)) == len(changes))  # one change topic per table (the loader says)
    dead_letters = {d.get("dead_letter_topic") for d in decls}
    assume(not dead_letters & set(changes))  # nor any relation's dead-letter topic
    from_yaml = load_catalog_text(to_yaml(decls), "t.yaml")
    sql = ";\n".join(to_ddl(d, data.draw) for d in decls) + data.draw(st.sampled_from(["", ";"]))
    style = data.draw(st.sampled_from(["|", ">", '"']))
    text = sql_file(sql, style)
    from_sql = load_catalog_text(text, "t.yaml")
    assert sorted(from_yaml.relations, key=lambda s: s.name) == \
        sorted(from_sql.relations, key=lambda s: s.name)
    assert isinstance(from_sql, Catalog)
    for spec in from_sql.relations:  # every DDL spec points at its CREATE in the file
        line = text.split("\n")[spec.location.line - 1]
        assert line[spec.location.column - 1:].lower().startswith("create")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(declarations(), st.data())
def test_an_unknown_type_is_located_in_the_file(d: dict[str, Any], data: st.DataObject) -> None:
    victim = data.draw(st.integers(0, len(d["columns"]) - 1))
    c, _, nn = d["columns"][victim]
    d["columns"][victim] = (c, ColumnType("nosuchtype"), nn)
    sql = to_ddl(d, data.draw).replace("NOSUCHTYPE", "NoSuchType")
    text = sql_file(sql, data.draw(st.sampled_from(["|", ">", '"', "'", "|2"])),
                     data.draw(st.integers(1, 6)))
    with pytest.raises(ConfigError) as info:
        load_catalog_text(text, "t.yaml")
    (diag,) = info.value.diagnostics
    assert "unknown type `" in diag.message
    assert char_at(text, diag).lower().startswith("nosuchtype")

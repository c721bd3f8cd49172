"""Avro schemas as the registries handle them: normalized text, parsing, refusal.

Both registries use these, so they accept and refuse the same schemas.
"""

from __future__ import annotations

import json
from typing import Any

from fastavro import parse_schema
from fastavro.schema import UnknownType, to_parsing_canonical_form

from materializer.errors import MaterializerError, RecordError
from materializer.formats.avro_schema import without_invalid_decimals


class SchemaRejected(MaterializerError):
    """The registry refused to register a schema (invalid, or incompatible with the
    subject's compatibility rule)."""

    exit_code = 2


_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes",
                         "string"})


def load_schema(schema: Any) -> Any:
    """A schema given as a dict, a list, JSON text or a bare primitive name (`long`)."""
    if isinstance(schema, bytes):
        schema = schema.decode("utf-8")
    if isinstance(schema, str):
        return schema if schema in _PRIMITIVES else json.loads(schema)
    return schema


def normalize(schema: Any) -> str:
    """A schema (dict, list, JSON text or primitive name) as compact JSON with sorted
    keys: two schemas are "the same" for registration when these texts are equal."""
    return json.dumps(load_schema(schema), sort_keys=True, separators=(",", ":"))


def parse(schema: Any, named: dict[str, Any] | None = None) -> Any:
    """fastavro-parse a schema given as a dict, list, JSON text or primitive name. A
    decimal logical type with invalid parameters (scale > precision, a negative scale, no
    precision) is ignored and its bytes or fixed read as such, as the Avro spec says and
    Java's parser does (`avro_schema.without_invalid_decimals`), where fastavro refuses
    the schema."""
    return parse_schema(without_invalid_decimals(load_schema(schema)), named_schemas=named)


def define(schema: Any, named: dict[str, Any], origins: dict[str, str], where: str
           ) -> tuple[Any, bool]:
    """Parse `schema` (a schema reference's text, `where` saying which, or the schema
    itself) against the named types defined before it (`named`, each by `origins[name]`),
    and add the ones it defines. Returns the parsed schema, and whether a name was found
    in the null namespace (see below: the caller then makes it `self_contained`).

    As Java's `Schema.Parser` (Avro 1.12 `ParseContext`), and unlike fastavro:
    - a name without a dot, used where a namespace applies, that this namespace does not
      define is looked up in the null namespace (`"Address"` in `com.x.Order`, with a
      reference defining `Address` without a namespace, is that `Address`);
    - a named type defined again by a later reference (or by the schema) must be the same
      (equal canonical form); otherwise RecordError(bad_schema) naming both, never a
      schema read with whichever definition came last.
    RecordError(bad_schema) for a name nothing defines, saying what is defined."""
    local = dict(named)
    aliases: dict[str, str] = {}
    while True:
        try:
            parsed = parse(schema, local)
            break
        except UnknownType as e:
            if not isinstance(e.name, str):  # not a name at all (`{"type": "object"}`)
                raise
            full = e.name
            short = full.rsplit(".", 1)[-1]
            if (full == short or short not in local or full in aliases
                    or full in _strings(load_schema(schema))):  # written as a full name:
                # Java does not look that up in the null namespace either
                known = sorted(n for n in named if n not in aliases) or ["none"]
                raise RecordError(
                    f"{where} uses the type {full!r}, which neither it nor its schema "
                    f"references define (named types of its references: {', '.join(known)}): "
                    "a type from another subject needs a schema reference to that subject, "
                    "and is named by its full name (namespace.name) or, within the same "
                    "namespace, by its name", "bad_schema") from e
            local[full] = {**local[short], "name": full}  # Java's null-namespace fallback
            aliases[full] = short
    for name, value in local.items():
        if named.get(name) is value:
            continue
        came = where if name not in aliases else (
            f"{origins.get(aliases[name], where)} (as {aliases[name]!r}, used by {where})")
        if name in named:
            if to_parsing_canonical_form(named[name]) != to_parsing_canonical_form(value):
                raise RecordError(
                    f"{came} defines the named type {name!r} differently from "
                    f"{origins.get(name, 'an earlier reference')}: which one a record is read "
                    f"with cannot be told; make the definitions the same, or rename one",
                    "bad_schema")
            continue  # the same type again (two references to one subject version)
        named[name] = value
        origins[name] = came
    return parsed, bool(aliases)


def _strings(node: Any) -> set[str]:
    """Every string a schema's JSON holds (what names it may write out in full)."""
    if isinstance(node, str):
        return {node}
    if isinstance(node, list):
        return set().union(*map(_strings, node)) if node else set()
    if isinstance(node, dict):
        return set().union(*map(_strings, node.values())) if node else set()
    return set()


_NAMED = frozenset({"record", "error", "enum", "fixed"})


def self_contained(parsed: Any, named: dict[str, Any]) -> Any:
    """A schema parsed against the named types of its schema references (`parse(text,
    named)`), made one that defines every named type it uses itself, each at its first use,
    and parsed again.

    fastavro keeps the referenced types only beside a parsed record (`__named_schemas`): a
    schema that is a union of references (`["com.x.Created", "com.x.Renamed"]`, how
    Confluent puts several event types in one topic) or one bare reference cannot carry
    them, and a recursive referenced type is not seen to recurse where only its name
    stands. The self-contained schema reads the same bytes the same way (a named type's
    definition may stand at any one place before its other uses)."""
    seen: set[str] = set()

    def walk(node: Any, inlined: bool) -> Any:
        if isinstance(node, str):
            if node in seen or node not in named:
                return node  # a primitive, or a type defined before
            return walk(named[node], True)  # its first use: its definition stands here
        if isinstance(node, list):
            return [walk(b, inlined) for b in node]
        if not isinstance(node, dict):
            return node
        out = {k: v for k, v in node.items() if not k.startswith("__")}
        t = out.get("type")
        if t in _NAMED and isinstance(out.get("name"), str):
            if out["name"] in seen and inlined:  # a type nested in a referenced one,
                return out["name"]  # used (so defined) before it
            seen.add(out["name"])  # before its fields: a recursive type names itself
            if "." not in out["name"]:  # parsed names are full names: this one is in the
                out["namespace"] = ""  # null namespace, also where it is now nested
            if t in ("record", "error"):
                out["fields"] = [{**f, "type": walk(f.get("type"), inlined)}
                                 if isinstance(f, dict) else f for f in out.get("fields", ())]
        elif t == "array":
            out["items"] = walk(out.get("items"), inlined)
        elif t == "map":
            out["values"] = walk(out.get("values"), inlined)
        elif not isinstance(t, str) or t in named:
            out["type"] = walk(t, inlined)
        return out

    return parse(walk(parsed, False))


def checked(subject: str, schema: Any) -> str:
    """The normalized text of a schema about to be registered; SchemaRejected if it is
    not valid Avro (checked here, so both registries refuse the same schemas)."""
    try:
        text = normalize(schema)
        parse(text)
    except Exception as e:  # noqa: BLE001 - whatever fastavro or json raise
        raise SchemaRejected(f"not a valid Avro schema for {subject!r}: {e}") from e
    return text


def bad_schema(schema_id: int, where: str, err: Exception) -> RecordError:
    return RecordError(f"schema {schema_id} from {where} is not usable Avro: {err}",
                       "bad_schema")

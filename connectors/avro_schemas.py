"""Avro schemas as the registries handle them: normalized text, parsing, refusal.

Both registries use these, so they accept and refuse the same schemas.
"""

from __future__ import annotations

import json
from typing import Any

from fastavro import parse_schema

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

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

"""The Confluent-framed Avro reader (`wire_reader`): a record's schema id names its writer
schema (asked of the registry once per id), which is prepared once (`prepare`: a column
plan, or a RecordError for every record of it) and read by a reader generated for it
(`avro_compiled`), or fastavro's (C, or pure Python for a recursive schema).

Guarantees: every failure about a record's bytes is that record's RecordError (truncated,
trailing bytes, undecodable, not a time of day, unconvertible logical values, nested too
deeply to read); a registry that cannot be reached raises InfrastructureError from the
registry; no record crashes the process (a recursive schema is never read by a reader
that recurses on the C stack).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from fastavro import schemaless_reader

from materializer.errors import ConfigError, RecordError
from materializer.formats.avro_compiled import (
    Compiled,
    Converted,
    Invalid,
    NotTimeOfDay,
    Truncated,
    compile_reader,
    fastavro_schema,
)
from materializer.formats.avro_failures import (
    ends_early,
    fallback_failure,
    not_time_of_day,
    unconvertible,
    undecodable,
)
from materializer.formats.avro_schema import Reading, named_types, recursive
from materializer.formats.wire import HEADER_SIZE, read_header
from materializer.protocols import SchemaRegistry
from materializer.specs import RelationSpec

_BytesIO = io.BytesIO
_python_reader: Callable[..., Any] | None
try:  # fastavro's pure-Python reader, for recursive schemas (see wire_reader)
    from fastavro._read_py import schemaless_reader as _python_reader
except ImportError:  # pragma: no cover - then recursive schemas are refused
    _python_reader = None



def wire_reader(spec: RelationSpec, registry: SchemaRegistry | None, what: str,
                 prepare: Callable[[Any], Any]) -> Callable[[bytes], tuple[Any, Any]]:
    """bytes -> (datum, prepared) where `prepared` is `prepare(writer schema)`, cached
    per schema id. `prepare` may return a RecordError, which is raised for every record
    with that id, or a `Reading`: records are read with its schema.

    A recursive schema is read by fastavro's pure-Python reader: the compiled one
    recurses on the C stack, and a value nested deep enough crashes the process. The
    Python reader stops at the interpreter's recursion limit: RecordError(too_deep).
    (A json column refuses a value nested more than MAX_DEPTH levels, too_deep also.)"""
    if registry is None:
        raise ConfigError(f"{spec.name}: {what} needs a schema_registry (url or path) "
                          "in the declaration file")
    cache: dict[int, tuple[Any, Any, Callable[..., Any], Compiled | None]] = {}
    plain: dict[int, Any] = {}  # schema id -> its schema without logical types (errors only)
    fetch = registry.schema

    def entry_of(sid: int) -> tuple[Any, Any, Callable[..., Any], Compiled | None]:
        schema = fetch(sid)  # RecordError(unknown_schema) or InfrastructureError
        wanted = None
        reading = None
        try:
            prepared, deep = prepare(schema), recursive(schema)
            if type(prepared) is Reading:
                reading = prepared
                schema, prepared, wanted = reading.schema, reading.prepared, reading.wanted
        except RecursionError:
            return (schema, RecordError(f"schema {sid} is nested too deeply to use",
                                        "bad_schema"), schemaless_reader, None)
        if type(prepared) is RecordError:  # every record of the schema refused: no reader
            return schema, prepared, schemaless_reader, None
        if not deep:
            compiled = None
            if reading is not None and reading.converted:  # converting as it reads
                compiled = compile_reader(schema, named_types(schema), wanted,
                                          reading.converted)
                if compiled is not None:
                    prepared = reading.fused
            if compiled is None:
                compiled = compile_reader(schema, named_types(schema), wanted)
            if compiled is None:
                schema = fastavro_schema(schema)
            return schema, prepared, schemaless_reader, compiled
        if _python_reader is not None:
            return fastavro_schema(schema), prepared, _python_reader, None
        return (schema, RecordError(  # pragma: no cover
            f"schema {sid} is recursive: this fastavro has no Python reader to read it "
            "safely", "bad_schema"), schemaless_reader, None)

    def read(b: bytes) -> tuple[Any, Any]:
        sid = read_header(b)
        n = len(b)
        entry = cache.get(sid)
        if entry is None:
            entry = cache[sid] = entry_of(sid)
        schema, prepared, reader, compiled = entry
        if type(prepared) is RecordError:
            raise RecordError(str(prepared), prepared.reason)
        if compiled is not None:
            try:
                datum, end = compiled(b, HEADER_SIZE)
            except Converted as e:  # a field's conversion refused its value
                raise e.error from e
            except (Truncated, IndexError) as e:
                raise ends_early(sid) from e
            except NotTimeOfDay as e:
                raise not_time_of_day(e) from e
            except (Invalid, UnicodeDecodeError) as e:  # bytes no writer writes
                raise undecodable(sid, e) from e
            except (ValueError, ArithmeticError) as e:  # what a logical type's converter
                raise unconvertible(sid, e) from e  # raises: a date past 9999, a bad uuid
            except Exception as e:  # noqa: BLE001 - would be a bug, still this record's
                raise undecodable(sid, e) from e  # rejection, not the worker's stop
        else:
            bio = _BytesIO(b)
            bio.seek(HEADER_SIZE)
            try:
                datum = reader(bio, schema, None)
            except RecursionError as e:
                raise RecordError(f"Avro value (schema {sid}) nested too deeply to read",
                                  "too_deep") from e
            except NotTimeOfDay as e:
                raise not_time_of_day(e) from e
            except Exception as e:  # noqa: BLE001 - fastavro raises many types on garbage
                raise fallback_failure(sid, b, reader, schema, plain, e) from e
            end = bio.tell()
        if end != n:
            raise RecordError(f"{n - end} trailing byte(s) after the Avro body "
                              f"(schema {sid})", "avro_decode")
        return datum, prepared

    return read

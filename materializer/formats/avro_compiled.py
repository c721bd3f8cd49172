"""Avro bodies read by code generated per writer schema (the reading side of
`changes.avro_rows`).

`compile_reader(schema)` compiles, for a parsed writer schema, a function
`read(b, p) -> (datum, end)` reading one value from `b` at offset `p`: the same datum
fastavro's `schemaless_reader` gives (records as dicts in field order, strings, bytes,
ints, floats, enum symbols, lists, dicts), in Python code with every field inline
instead of fastavro's one `read(1)` call per varint byte and a schema lookup per field
(about 2x faster on a row of 10 fields). Types read inline: null, boolean, int, long,
float, double, string, bytes, fixed, enum, unions, records (in place or named),
arrays and maps, and the logical types fastavro converts (timestamps, date, times,
decimal, uuid: the base value read inline, then converted by fastavro's own function for
that logical type, but for times, decimals and uuids: `REPLACED`, from `formats.avro_logical`).
A schema with anything else (an array of items that take no bytes, a recursive or
malformed schema, arrays or maps nested past what Python compiles) gets None: the
caller reads it with fastavro.

Guarantees (tests/formats/test_avro_compiled.py compares with fastavro over generated
schemas, values, truncations and byte flips):
- a body fastavro reads correctly reads to the same datum;
- a body this reader accepts, fastavro accepts with the same datum; it refuses more:
  bytes no Avro writer writes, which fastavro reads as something else, are refused
  (`Invalid`): a varint past 64 bits (fastavro wraps it), a negative union branch or
  enum index (fastavro counts from the end), a boolean byte other than 0 and 1, a
  negative length; and, as values, an Avro time-millis/-micros that is no time of day
  (`NotTimeOfDay`, where fastavro's converter wraps it round; `fastavro_schema` gives
  fastavro's reader the same checked converters, where `formats.avro` leaves it a schema);
- an Avro decimal (bytes or fixed) is read exactly, as Java's Avro reads it, by both
  readers (`exact_decimal`): fastavro's converter rounds a value to the schema's
  precision, so a producer that wrote 1234.56 in a decimal(4,2) was read as 1235;
- it raises `Truncated` where the bytes end before the value does (or IndexError,
  which the caller counts as the same), `Invalid` or UnicodeDecodeError for bytes that
  are not a value of the schema, and what fastavro's logical-type converters raise for
  a value they cannot convert (a date out of range), as fastavro does (ValueError or
  ArithmeticError: `formats.avro` reports them as type_mismatch, on fastavro's reader too).

`wanted` (the fields of the top record a decoder uses: a Debezium envelope's `op` and
`after`, the fields that feed columns) leaves the others out of the datum: they are
read past with the same checks (lengths, union branches, enum indexes, booleans), but
a skipped string is not decoded, so bytes that are not UTF-8 there are not refused
(a Java consumer with a projecting reader schema does not decode them either).

`converted` (conversions of some of those fields, a plan's: `connect_types.apply_plan`)
has them done at the end of the read, when the body ends where the value does (trailing
bytes are refused first, as before): `Converted` carries apply_plan's rejection.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from fastavro.logical_readers import LOGICAL_READERS

from materializer.errors import RecordError
from materializer.formats.avro_logical import CHECKED_TIMES as CHECKED_TIMES
from materializer.formats.avro_logical import REPLACED
from materializer.formats.avro_logical import NotTimeOfDay as NotTimeOfDay
from materializer.formats.avro_logical import exact_decimal as exact_decimal
from materializer.formats.avro_logical import fastavro_schema as fastavro_schema
from materializer.formats.avro_varint import Invalid as Invalid
from materializer.formats.avro_varint import Truncated as Truncated
from materializer.formats.avro_varint import long_rest
from materializer.formats.connect_types import CONVERSION_ERRORS, Fixup, field_error

Compiled = Callable[[bytes, int], tuple[Any, int]]
"""A generated reader: (bytes, offset of the value) -> (the value, the offset after it)."""


SKIP = "_"
"""The variable of a value that is read past, not kept."""


class Converted(Exception):
    """A conversion of `compile_reader`'s `converted` refused a field's value: `error` is
    the record's rejection, as `connect_types.apply_plan` raises it."""

    def __init__(self, error: RecordError) -> None:
        super().__init__(str(error))
        self.error = error


_PRIMITIVES = frozenset(("null", "boolean", "int", "long", "float", "double", "string",
                         "bytes"))
_CONSTANTS = {"Truncated": Truncated, "Invalid": Invalid, "long_rest": long_rest,
              "Converted": Converted, "RecordError": RecordError,
              "CONVERSION_ERRORS": CONVERSION_ERRORS, "field_error": field_error,
              "unpack_f": struct.Struct("<f").unpack_from,
              "unpack_d": struct.Struct("<d").unpack_from}


class _Unsupported(Exception):
    """A schema node the generated code does not read (fastavro reads the schema)."""


class _Compiler:
    """Source lines reading schema nodes into variables, and the names they use."""

    def __init__(self, named: Mapping[str, Any]) -> None:
        self.named = named
        self.lines: list[str] = []
        self.names: dict[str, Any] = dict(_CONSTANTS)
        self.count = 0
        self.open: set[str] = set()

    def fresh(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def varint(self, var: str, ind: str) -> None:
        """`var` = the next varint, unsigned, before zig-zag."""
        self.lines += [f"{ind}{var} = b[p]; p += 1",
                       f"{ind}if {var} > 127: {var}, p = long_rest(b, p, {var})"]

    def signed(self, var: str, ind: str) -> None:
        """`var` = the next Avro int/long (read past, with the same checks, if SKIP)."""
        self.varint(var, ind)
        if var != SKIP:
            self.lines.append(f"{ind}{var} = ({var} >> 1) ^ -({var} & 1)")

    def sized(self, var: str, ind: str, count: str) -> None:
        """`var` = the next `count` bytes (a length already read)."""
        self.lines += [f"{ind}e = p + {count}",
                       f"{ind}if e > n: raise Truncated",
                       f"{ind}{var} = b[p:e]; p = e"]

    def blob(self, var: str, ind: str, text: bool) -> None:
        """`var` = the next bytes or string: a length (Invalid if negative), the bytes.
        Skipped (`var` is SKIP): the bytes are passed over, a string not decoded."""
        self.varint("x", ind)
        decode = ".decode()" if text else ""
        self.lines += [f"{ind}if x & 1: raise Invalid('negative length')",
                       f"{ind}e = p + (x >> 1)",
                       f"{ind}if e > n: raise Truncated",
                       f"{ind}p = e" if var == SKIP else f"{ind}{var} = b[p:e]{decode}; p = e"]

    def emit(self, node: Any, var: str, ind: str) -> None:
        """Lines that read one value of schema `node` into `var`."""
        add = self.lines.append
        if isinstance(node, list):
            self.union(node, var, ind)
            return
        if isinstance(node, str) and node not in _PRIMITIVES:
            if node in self.open or node not in self.named:
                raise _Unsupported(node)  # recursive, or not defined
            node = self.named[node]
        if isinstance(node, dict):
            kind = node.get("type")
            if not isinstance(kind, str):
                raise _Unsupported(kind)
            logical = node.get("logicalType")
            if logical and (f"{kind}-{logical}" in REPLACED
                            or f"{kind}-{logical}" in LOGICAL_READERS):
                self.logical(node, f"{kind}-{logical}", var, ind)
                return
            if kind in _PRIMITIVES:
                node = kind
            else:
                self.complex(node, kind, var, ind)
                return
        if node == "null":
            add(f"{ind}{var} = None")  # SKIP too: a branch of a union needs a line
        elif node == "boolean":
            add(f"{ind}{var} = b[p]; p += 1")
            add(f"{ind}if {var} > 1: raise Invalid('boolean byte ' + str({var}))")
            add(f"{ind}{var} = {var} == 1")
        elif node in ("int", "long"):
            self.signed(var, ind)
        elif node in ("float", "double"):
            size = 4 if node == "float" else 8
            add(f"{ind}if p + {size} > n: raise Truncated")
            add(f"{ind}p += {size}" if var == SKIP else
                f"{ind}{var} = unpack_{node[0]}(b, p)[0]; p += {size}")
        elif node in ("string", "bytes"):
            self.blob(var, ind, node == "string")
        else:
            raise _Unsupported(node)

    def logical(self, node: dict[str, Any], logical: str, var: str, ind: str) -> None:
        """A logical type fastavro converts: its base type read, then fastavro's own
        converter called as fastavro calls it (the same function, the same value, the same
        errors), but for times: a value that is no time of day is refused (NotTimeOfDay)
        where fastavro would wrap it (`CHECKED_TIMES`); decimals, read exactly
        (`exact_decimal`) where fastavro rounds; uuids, a string kept as written and a
        fixed(16) read (`uuid_text`, `fixed_uuid`). A value read past is not converted."""
        self.emit({k: v for k, v in node.items() if k != "logicalType"}, var, ind)
        if var != SKIP:
            convert, schema = self.fresh("convert"), self.fresh("schema")
            self.names[convert] = REPLACED.get(logical) or LOGICAL_READERS[logical]
            self.names[schema] = node
            self.lines.append(f"{ind}{var} = {convert}({var}, {schema}, None)")

    def block(self, node: Any, var: str, ind: str) -> None:
        """`emit` as the body of an if or a loop (`pass` if nothing is read: a skipped
        record of no fields)."""
        before = len(self.lines)
        self.emit(node, var, ind)
        if len(self.lines) == before:
            self.lines.append(f"{ind}pass")

    def union(self, branches: list[Any], var: str, ind: str) -> None:
        if not branches:
            raise _Unsupported("empty union")
        self.varint("x", ind)  # branch i is written as the varint 2i
        for i, branch in enumerate(branches):
            self.lines.append(f"{ind}{'if' if i == 0 else 'elif'} x == {2 * i}:")
            self.block(branch, var, ind + "    ")
        self.lines += [f"{ind}else:",
                       f"{ind}    raise Invalid('union branch ' + str((x >> 1) ^ -(x & 1)))"]

    def complex(self, node: dict[str, Any], kind: str, var: str, ind: str) -> None:
        add = self.lines.append
        if kind == "record":
            self.record(node, var, ind)
        elif kind == "enum":
            symbols = node.get("symbols")
            if not isinstance(symbols, list):
                raise _Unsupported("enum")
            syms = self.fresh("syms")
            self.names[syms] = tuple(symbols)
            self.signed("x", ind)
            add(f"{ind}if not 0 <= x < {len(symbols)}: raise Invalid('enum index ' + str(x))")
            if var != SKIP:
                add(f"{ind}{var} = {syms}[x]")
        elif kind == "fixed":
            size = node.get("size")
            if type(size) is not int or size < 0:
                raise _Unsupported("fixed")
            self.sized(var, ind, str(size))
        elif kind in ("array", "map"):
            self.blocks(node, kind, var, ind)
        else:
            raise _Unsupported(kind)

    def record(self, node: dict[str, Any], var: str, ind: str,
               wanted: Collection[str] | None = None,
               converted: Sequence[tuple[str, Fixup]] = ()) -> None:
        """A record as a dict of its fields in order; only the `wanted` ones (all if
        None): the others are skipped. The `converted` fields are converted (see
        `compile_reader`)."""
        fields = node.get("fields")
        name = node.get("name")
        if not isinstance(fields, list) or not isinstance(name, str):
            raise _Unsupported("record")
        self.open.add(name)
        values = []
        kept: dict[str, str] = {}
        for field in fields:
            if not isinstance(field, dict) or not isinstance(field.get("name"), str):
                raise _Unsupported("field")
            skip = var == SKIP or (wanted is not None and field["name"] not in wanted)
            value = SKIP if skip else self.fresh("f")
            self.emit(field.get("type"), value, ind)
            if not skip:
                values.append(f"{field['name']!r}: {value}")
                kept[field["name"]] = value  # a name given twice: the dict keeps the last
        self.open.discard(name)
        if converted:
            self.convert(converted, kept, ind)
        if var != SKIP:
            self.lines.append(f"{ind}{var} = {{{', '.join(values)}}}")

    def convert(self, converted: Sequence[tuple[str, Fixup]], kept: Mapping[str, str],
                ind: str) -> None:
        """Lines converting the non-null values of the `converted` fields (read into the
        variables `kept` names), in order, when the body ends where the value does (else
        the caller refuses the trailing bytes first, as before any conversion)."""
        self.lines.append(f"{ind}if p == n:")
        for field, fix in converted:
            if field not in kept:
                raise _Unsupported(field)  # not read: the decoder converts it
            var, conv = kept[field], self.fresh("fix")
            self.names[conv] = fix
            self.lines += [f"{ind}    try:",
                           f"{ind}        if {var} is not None: {var} = {conv}({var})",
                           f"{ind}    except CONVERSION_ERRORS as e:",
                           f"{ind}        raise Converted(field_error({field!r}, e)) from e",
                           f"{ind}    except RecordError as e:",
                           f"{ind}        raise Converted(e) from e"]

    def blocks(self, node: dict[str, Any], kind: str, var: str, ind: str) -> None:
        """An array or map: blocks of a count (negative: then a byte size) and that many
        items, to a count of 0. Items that take no bytes are left to fastavro."""
        item = node.get("items" if kind == "array" else "values")
        if kind == "array" and self.takes_no_bytes(item):
            raise _Unsupported("items of no bytes")
        add = self.lines.append
        out, count, value, key = (self.fresh(p) for p in ("c", "k", "v", "key"))
        if var == SKIP:
            value = key = SKIP
        else:
            add(f"{ind}{out} = {'[]' if kind == 'array' else '{}'}")
        self.signed(count, ind)
        add(f"{ind}while {count}:")
        inner = ind + "    "
        add(f"{inner}if {count} < 0:")
        add(f"{inner}    {count} = -{count}")
        self.signed("x", inner + "    ")  # the block's size in bytes, not needed
        add(f"{inner}if {count} > n - p: raise Truncated")  # every item takes a byte
        add(f"{inner}for _ in range({count}):")
        body = inner + "    "
        if kind == "map":
            self.blob(key, body, True)
        self.block(item, value, body)
        if var != SKIP:
            add(f"{body}{out}.append({value})" if kind == "array" else
                f"{body}{out}[{key}] = {value}")
        self.signed(count, inner)
        if var != SKIP:
            add(f"{ind}{var} = {out}")

    def takes_no_bytes(self, node: Any) -> bool:
        """Whether a value of `node` may be written in zero bytes (null, a record of
        such fields)."""
        if isinstance(node, str) and node in self.named:
            node = self.named[node]
        if isinstance(node, dict):
            if node.get("type") == "record":
                return all(self.takes_no_bytes(f.get("type")) for f in node.get("fields", ())
                           if isinstance(f, dict))
            if node.get("type") == "fixed":
                return bool(node.get("size") == 0)
            node = node.get("type")
        return bool(node == "null")


def compile_reader(schema: Any, named: Mapping[str, Any],
                   wanted: Collection[str] | None = None,
                   converted: Sequence[tuple[str, Fixup]] = ()) -> Compiled | None:
    """A reader of values of the parsed writer `schema` (named types `named`), or None
    when the schema has a type it does not read (see the module's docstring). With
    `wanted`, a record's datum has only those of its fields: the others are skipped.

    With `converted` ((field, conversion) of the top record's wanted fields), a body that
    ends where the value does has those fields' non-null values converted, in that order,
    as `connect_types.apply_plan` converts them after the read: a conversion that refuses
    a value raises `Converted` with the rejection apply_plan raises. None when they
    cannot be (the schema is no record, a field is not read)."""
    c = _Compiler(named)
    c.lines += ["def read(b, p):", "    n = len(b)"]
    try:
        top = named.get(schema, schema) if isinstance(schema, str) else schema
        if wanted is not None and isinstance(top, dict) and top.get("type") == "record":
            c.record(top, "value", "    ", wanted, converted)
        elif converted:
            return None
        else:
            c.emit(schema, "value", "    ")
    except Exception:  # noqa: BLE001 - _Unsupported, RecursionError; a schema shape this
        return None  # code does not foresee is fastavro's to read, as before
    c.lines.append("    return value, p")
    try:  # nested more than Python's 20 blocks (arrays in arrays ten deep): fastavro reads
        code = compile("\n".join(c.lines), "<Avro reader>", "exec")
    except (SyntaxError, RecursionError, MemoryError):
        return None
    exec(code, c.names)  # noqa: S102 - our own source, from a parsed schema
    read: Compiled = c.names["read"]
    return read

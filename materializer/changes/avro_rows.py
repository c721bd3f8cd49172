"""Avro records written by code generated per schema (change events' rows, keys and tails).

`record_writer(fields)` compiles, for a record schema's fields, a function from a tuple
of field values to the record's Avro binary encoding: the bytes fastavro's
`schemaless_writer` writes for the same record (an Avro record is its fields' encodings
in order, with no framing). Field types written inline: null unions `["null", T]`,
int, long, float, double, boolean, string, bytes, their logical types over a stored
number or text (date, time-*, timestamp-*, uuid, decimal over bytes), arrays and maps
of those, and records defined in place (their values are tuples of their fields').
Any other type (named types, other unions), and a decimal value that is not bytes yet,
is written by fastavro, that field alone.

Guarantees: the same bytes as fastavro (tests/changes/test_avro_rows.py compares them
over values of every type), and the same refusals for values fastavro refuses that a
stored row can hold: a long outside 64 bits is an OverflowError, not wrapped bytes.
A value of the wrong Python type raises (TypeError or AttributeError), as stored rows of
a table's column types never do.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Sequence
from typing import Any

import fastavro

_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1
_PAIRS = tuple(bytes(((i & 0x7F) | 0x80, (i >> 7) | 0x80)) for i in range(1 << 14))
"""Two varint bytes, both with the continuation bit, for each 14-bit group."""
_ENDS = tuple(bytes(((i & 0x7F) | 0x80, i >> 7)) if i >= 0x80 else bytes((i,))
              for i in range(1 << 14))
"""The last one or two varint bytes for each value below 2^14."""


def zigzag(n: int) -> bytes:
    """An Avro int/long: zig-zag, then a little-endian base-128 varint, 14 bits per step
    (a 13-digit epoch millisecond is three steps). OverflowError outside 64 bits
    (fastavro's refusal; its varint is a C long long)."""
    if not _LONG_MIN <= n <= _LONG_MAX:
        raise OverflowError(f"{n} does not fit an Avro long (64 bits)")
    z = (n << 1) ^ (n >> 63)
    if z < 0x4000:
        return _ENDS[z]
    out = b""
    while z >= 0x4000:
        out += _PAIRS[z & 0x3FFF]
        z >>= 14
    return out + _ENDS[z]


_PACK_D = struct.Struct("<d").pack
_PACK_F = struct.Struct("<f").pack
_INFINITIES = (_PACK_F(float("inf")), _PACK_F(float("-inf")))


def float32(v: float) -> bytes:
    """An Avro float: what a C cast to float gives (fastavro's), infinite beyond the float
    range, where `struct` would refuse."""
    try:
        return _PACK_F(v)
    except OverflowError:  # struct refuses exactly where the cast gives an infinity
        return _INFINITIES[0] if v > 0 else _INFINITIES[1]


_INTEGERS = ("int", "long")
_PRIMITIVES = ("int", "long", "float", "double", "boolean", "string", "bytes")
_PLAIN_LOGICAL = {"date": "int", "time-millis": "int", "time-micros": "long",
                  "timestamp-millis": "long", "timestamp-micros": "long",
                  "local-timestamp-millis": "long", "local-timestamp-micros": "long",
                  "uuid": "string"}
"""Logical types whose stored value is already the underlying type's value."""


class _Compiler:
    """Source lines of one writer, with the objects they use in `names`."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[str, Any] = {"zz": zigzag, "pack_d": _PACK_D, "float32": float32,
                                      "P": _PAIRS, "E": _ENDS}
        self._n = 0

    def fresh(self, stem: str) -> str:
        self._n += 1
        return f"{stem}{self._n}"

    def bind(self, stem: str, obj: Any) -> str:
        name = self.fresh(stem)
        self.names[name] = obj
        return name

    def emit(self, node: Any, var: str, ind: str) -> None:
        """Lines appending the encoding of `var` (of schema `node`) to `o`."""
        kind = _kind(node)
        add = self.lines.append
        if kind in _INTEGERS:
            self.varint(var, ind)
        elif kind == "double":
            add(f"{ind}o += pack_d({var})")
        elif kind == "float":
            add(f"{ind}o += float32({var})")
        elif kind == "boolean":
            add(f"{ind}a(1 if {var} else 0)")
        elif kind in ("string", "bytes"):
            b, n = self.fresh("b"), self.fresh("n")
            add(f"{ind}{b} = {var}.encode()" if kind == "string" else f"{ind}{b} = {var}")
            add(f"{ind}{n} = len({b})")
            add(f"{ind}if {n} < 64: a({n} << 1)")
            add(f"{ind}else: o += zz({n})")
            add(f"{ind}o += {b}")
        elif kind == "decimal":  # text converted to bytes, or a Decimal left to fastavro
            add(f"{ind}if type({var}) is bytes:")
            self.emit("bytes", var, ind + "    ")
            add(f"{ind}else: o += {self.bind('alone', _alone(node))}({var})")
        elif kind == "nullable":
            add(f"{ind}if {var} is None: a(0)")
            add(f"{ind}else:")
            add(f"{ind}    a(2)")
            self.emit(node[1], var, ind + "    ")
        elif kind == "record":  # its value is a tuple of its fields' values
            for j, field in enumerate(node["fields"]):
                sub = self.fresh("r")
                add(f"{ind}{sub} = {var}[{j}]")
                self.emit(field["type"], sub, ind)
        elif kind in ("array", "map"):
            item = self.fresh("x")
            count = self.fresh("n")
            add(f"{ind}if {var}:")
            add(f"{ind}    {count} = len({var})")
            add(f"{ind}    if {count} < 64: a({count} << 1)")
            add(f"{ind}    else: o += zz({count})")
            if kind == "array":
                add(f"{ind}    for {item} in {var}:")
                self.emit(node["items"], item, ind + "        ")
            else:
                k = self.fresh("k")
                add(f"{ind}    for {k}, {item} in {var}.items():")
                self.emit("string", k, ind + "        ")
                self.emit(node["values"], item, ind + "        ")
            add(f"{ind}a(0)")
        else:
            add(f"{ind}o += {self.bind('alone', _alone(node))}({var})")

    def varint(self, var: str, ind: str) -> None:
        """Lines appending `zigzag(var)` to `o`, written out for a zig-zag value below 2^56
        (epoch microseconds until the year 3000); above, and for a long outside 64 bits (its
        zig-zag value is at least 2^64), `zigzag` itself."""
        add = self.lines.append
        add(f"{ind}z = ({var} << 1) ^ ({var} >> 63)")
        add(f"{ind}if z < 0x4000: o += E[z]")
        steps = ["o += P[z & 0x3FFF]"]
        for bits in (14, 28, 42):
            add(f"{ind}elif z < {1 << (bits + 14):#x}: {'; '.join(steps)}; o += E[z >> {bits}]")
            steps.append(f"o += P[z >> {bits} & 0x3FFF]")
        add(f"{ind}else: o += zz({var})")


def _kind(node: Any) -> str:
    """How `emit` writes a schema node: a primitive's name, "decimal", "nullable",
    "array", "map", "record" (defined inline), or "other" (left to fastavro)."""
    if isinstance(node, str):
        return node if node in _PRIMITIVES else "other"
    if isinstance(node, list):
        return "nullable" if len(node) == 2 and node[0] == "null" else "other"
    if not isinstance(node, dict):
        return "other"
    kind, logical = node.get("type"), node.get("logicalType")
    if not isinstance(kind, str):
        return "other"
    if logical is None:
        if kind in ("array", "map") or (kind == "record" and "fields" in node):
            return kind
        return kind if kind in _PRIMITIVES else "other"
    if logical == "decimal" and kind == "bytes":
        return "decimal"
    return kind if _PLAIN_LOGICAL.get(logical) == kind else "other"


def _alone(node: Any) -> Callable[[Any], bytes]:
    """A value of schema `node`, written by fastavro on its own."""
    parsed = fastavro.parse_schema(node)
    write = fastavro.schemaless_writer

    def encode(v: Any) -> bytes:
        buf = io.BytesIO()
        write(buf, parsed, v)
        return buf.getvalue()
    return encode


def record_writer(fields: Sequence[Any], convs: Sequence[Callable[[Any], Any] | None] = ()
                  ) -> Callable[[tuple[Any, ...]], bytes]:
    """A writer of records with `fields` (Avro field types, in order) from a tuple of
    their values; a shorter tuple's missing values are None. `convs[i]`, if given and not
    None, converts field i's value (not None) first."""
    c = _Compiler()
    width = len(fields)
    c.lines += ["def write(t):",
                f"    if len(t) < {width}: t = t + (None,) * ({width} - len(t))",
                "    o = bytearray()",
                "    a = o.append"]
    for i, node in enumerate(fields):
        conv = convs[i] if i < len(convs) else None
        c.lines.append(f"    v = t[{i}]")
        if conv is not None:
            c.lines.append(f"    if v is not None: v = {c.bind('conv', conv)}(v)")
        c.emit(node, "v", "    ")
    c.lines.append("    return bytes(o)")
    code = compile("\n".join(c.lines), "<Avro record writer>", "exec")
    exec(code, c.names)  # noqa: S102 - our own source, from a parsed schema
    write: Callable[[tuple[Any, ...]], bytes] = c.names["write"]
    return write

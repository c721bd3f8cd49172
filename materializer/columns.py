"""Column types: the type grammar of SPEC §3 (`int`, `decimal(p,s)`, `array<T>`, ...).

`parse_type` is the only parser of type text; `ColumnType` is what specs and the
store carry. Nothing here converts values (see `materializer.values`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

PRIMITIVE_KINDS = frozenset(
    {"boolean", "int", "long", "float", "double", "string", "bytes", "date", "time",
     "timestamp", "uuid", "json"}
)
NOT_KEYABLE = frozenset({"json", "array", "map"})
INT_STORED_KINDS = frozenset({"int", "long", "date", "time", "timestamp"})
ENCODINGS = {"decimal": ("base64",), "timestamp": ("ms", "s", "us", "ns"),
             "time": ("ms", "s", "us", "ns"), "bytes": ("base64", "base64-url-safe", "hex")}
"""Per column kind, the `encoding`s it may declare: how input it cannot otherwise tell
apart is read. decimal `base64`: text (or bytes) is the two's-complement big-endian
unscaled integer, with the declared scale (Debezium decimal.handling.mode=precise
without a schema); timestamp / time `ms` (the default), `us`, `ns`: integers count that
unit since the epoch / since midnight; bytes `base64`, `base64-url-safe`, `hex`: text is
the bytes in that encoding, also where a schema types the field as text (Debezium
binary.handling.mode; `materializer.binary_text`). Only a column's own type takes one:
the items of an array or map column read as the item type's default."""


@dataclass(frozen=True, slots=True)
class ColumnType:
    """A declared column type; `item` is the element (array) or value (map) type.

    `encoding` (one of `ENCODINGS[kind]`, or None for the default) says how input values
    are read; it is not part of the type's text (`str`), since what is stored is the
    same."""

    kind: str
    precision: int = 0
    scale: int = 0
    item: ColumnType | None = None
    encoding: str | None = None

    def __str__(self) -> str:
        if self.kind == "decimal":
            return f"decimal({self.precision},{self.scale})"
        if self.kind == "array":
            return f"array<{self.item}>"
        if self.kind == "map":
            return f"map<string,{self.item}>"
        return self.kind


def key_unit(t: ColumnType, encoding: Any) -> ColumnType:
    """A key column's type as lookups read it: a time or timestamp with the integer unit it
    declares (`encoding: s | us | ns`, which the type text leaves out), so an integer key
    counts that unit, as the producer's key did, not milliseconds; a bytes column with the
    encoding it declares (`encoding: base64 | base64-url-safe | hex`), so key text is read
    in it, as the producer's key was; any other type as it is."""
    if t.kind in ("time", "timestamp") and encoding in ("s", "us", "ns"):
        return replace(t, encoding=encoding)
    if t.kind == "bytes" and encoding in ENCODINGS["bytes"]:
        return replace(t, encoding=encoding)
    return t


class TypeSyntaxError(ValueError):
    """A type string that is not one of the declared types; `offset` is where it broke."""

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.offset = offset


MAX_TYPE_NESTING = 8
"""How deep arrays and maps nest in a declared column type (`array<map<string,long>>` is
2): the readers, shapers and writers generated per table stay within what Python
compiles (20 nested blocks), and no parser recursion grows with the file."""

_TOKEN = re.compile(r"\s*([A-Za-z_]+|[0-9]+|[<>(),])")


def parse_type(text: str) -> tuple[ColumnType, bool]:
    """Parse `type [not null]`; returns (type, not_null). Case-insensitive."""
    tokens: list[tuple[str, int]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            if text[pos:].strip() == "":
                break
            raise TypeSyntaxError(f"unexpected {text[pos:].strip()[:10]!r} in type {text!r}", pos)
        tokens.append((m.group(1).lower(), m.start(1)))
        pos = m.end()
    idx = 0

    def peek() -> str:
        return tokens[idx][0] if idx < len(tokens) else ""

    def take(expected: str | None = None) -> str:
        nonlocal idx
        if idx >= len(tokens):
            raise TypeSyntaxError(f"type {text!r} ends too early", len(text))
        tok, off = tokens[idx]
        if expected is not None and tok != expected:
            raise TypeSyntaxError(f"expected {expected!r} but found {tok!r} in type {text!r}", off)
        idx += 1
        return tok

    def one(depth: int = 0) -> ColumnType:
        off = tokens[idx][1] if idx < len(tokens) else len(text)
        name = take()
        if name in ("array", "map") and depth == MAX_TYPE_NESTING:
            raise TypeSyntaxError(f"arrays and maps nest at most {MAX_TYPE_NESTING} levels "
                                  f"deep in a column type", off)
        if name in PRIMITIVE_KINDS:
            return ColumnType(name)
        if name == "decimal":
            take("(")
            p = take()
            take(",")
            s = take()
            take(")")
            if not (p.isdigit() and s.isdigit()) or len(p) > 3 or len(s) > 3 \
                    or not (1 <= int(p) <= 38) or int(s) > int(p):
                p, s = (n if len(n) <= 6 else f"{n[:6]}..." for n in (p, s))
                raise TypeSyntaxError(
                    f"decimal({p},{s}) needs 1 <= precision <= 38 and 0 <= scale <= precision",
                    off)
            return ColumnType("decimal", int(p), int(s))
        if name == "array":
            take("<")
            inner = one(depth + 1)
            take(">")
            return ColumnType("array", item=inner)
        if name == "map":
            take("<")
            k = take()
            if k != "string":
                raise TypeSyntaxError("map keys must be string: write map<string,T>", off)
            take(",")
            inner = one(depth + 1)
            take(">")
            return ColumnType("map", item=inner)
        raise TypeSyntaxError(
            f"unknown type {name!r}; use one of boolean, int, long, float, double, "
            "decimal(p,s), string, bytes, date, time, timestamp, uuid, json, array<T>, "
            "map<string,T>", off)

    if not tokens:
        raise TypeSyntaxError("empty type", 0)
    ctype = one()
    not_null = False
    if peek() == "not":
        take()
        take("null")
        not_null = True
    if idx != len(tokens):
        raise TypeSyntaxError(f"unexpected {tokens[idx][0]!r} after type {ctype}", tokens[idx][1])
    return ctype, not_null


def open_brackets(text: str) -> int:
    """How many `(` and `<` in a type's text are still open at its end."""
    return text.count("(") - text.count(")") + text.count("<") - text.count(">")


def key_signature(columns: Iterable[str], types: Iterable[Any]) -> list[str]:
    """A key as `["id int", "day date"]`: what two keys must share, in order, for one key's
    values to be read as the other's (a diff's versions, a declaration and its state)."""
    return [f"{c} {t}" for c, t in zip(columns, types, strict=True)]

"""`Rules`: one relation's declaration as the validators read it (fields, positions,
errors), and the constants the rules share."""

from __future__ import annotations

from typing import TypeVar

from materializer.catalog.decl import (
    At,
    ColumnDecl,
    Context,
    Field,
    RelationDecl,
    name_problem,
    topic_problem,
)
from materializer.columns import NOT_KEYABLE
from materializer.specs import (
    Location,
)

C = TypeVar("C", bound=str)


def one_of(value: str, allowed: tuple[C, ...]) -> C:
    """`value` as one of `allowed` (the first one if it is none of them: already an error)."""
    return next((a for a in allowed if a == value), allowed[0])

# Types a version can be compared in (stored as numbers, so `>=` is the intended order).
VERSION_KINDS = ("int", "long", "float", "double", "date", "time", "timestamp")
# Column kinds whose stored form a one-value key or value format can produce.
SCALAR_FORMAT_KINDS = {
    "int": frozenset({"int", "long", "float", "double", "decimal", "date", "time",
                      "timestamp"}),
    "long": frozenset({"int", "long", "float", "double", "decimal", "date", "time",
                       "timestamp"}),
    "string": frozenset({"string", "uuid", "decimal", "date", "time", "timestamp", "bytes"}),
    "bytes": frozenset({"bytes"}),
}
FORMAT_READS = {"int": "a 4-byte big-endian integer", "long": "an 8-byte big-endian integer",
                 "string": "UTF-8 text", "bytes": "raw bytes"}
DDL_NAMES = {"topic": "kafka_topic"}
KAFKA_KEY_KINDS = ("int", "long", "double", "string", "bytes")
"""Key column kinds ksqlDB's KAFKA format reads (Kafka's Integer, Long, Double, String and
ByteArray serializers; see `materializer.formats.codecs`)."""
TIMESTAMP_KINDS = ("timestamp", "long")
UNSUPPORTED_FORMATS = {
    "protobuf_nosr": "Protobuf without a registry has no schema to read it by; have the "
                     "producer write AVRO, JSON_SR or JSON",
}
"""ksqlDB formats this worker refuses, and why."""


class Rules:
    """Checks one declaration; `ok` is False as soon as any problem was recorded."""

    def __init__(self, d: RelationDecl, ctx: Context) -> None:
        self.d = d
        self.ctx = ctx
        self.start = len(ctx.diags)
        self.what = d.kind

    @property
    def ok(self) -> bool:
        return len(self.ctx.diags) == self.start

    def error(self, loc: Location, message: str) -> None:
        self.ctx.error(loc, message)

    def get(self, key: str) -> Field | None:
        return self.d.fields.get(key)

    def text(self, key: str, default: str | None = None) -> str | None:
        f = self.get(key)
        return default if f is None else str(f.value.value)

    def name(self) -> str | None:
        """The qualified name, `schema.name`; unqualified names get the default schema."""
        f = self.get("name")
        if f is None:
            self.error(self.d.loc, f"this {self.d.kind} has no `name`: add `name: [schema.]name`")
            return None
        raw: At[str] = f.value
        parts = raw.value.split(".")
        if len(parts) > 2:
            off = len(parts[0]) + len(parts[1]) + 1
            self.error(raw.at(off), f"name `{raw.value}` has more than one `.`: write "
                       "`name` or `schema.name` (names themselves cannot contain `.`)")
            return None
        if len(parts) == 1:
            schema, rel, rel_off = self.ctx.default_schema, parts[0], 0
        else:
            schema, rel, rel_off = parts[0], parts[1], len(parts[0]) + 1
            problem = name_problem(schema, column=False)
            if problem is not None:
                self.error(raw.at(problem[0]), f"schema {problem[1]}")
        problem = name_problem(rel, column=False)
        if problem is not None:
            self.error(raw.at(rel_off + problem[0]), f"{self.d.kind} {problem[1]}")
        qualified = f"{schema}.{rel}"
        self.what = f"{self.d.kind} `{qualified}`"
        return qualified

    def required(self, key: str, hint: str) -> str | None:
        f = self.get(key)
        if f is None:
            fix = (f"WITH ({DDL_NAMES.get(key, key)}='{hint}', ...)" if self.d.syntax == "sql"
                   else f"`{key}: {hint}`")
            self.error(self.d.loc, f"{self.what} has no `{key}`: add {fix}")
            return None
        value = str(f.value.value)
        if not value:
            self.error(f.value.loc, f"`{key}` of {self.what} is empty: give {hint}")
        return value

    def check_topic(self, key: str) -> None:
        """Refuse a topic name (of `key`, if given) that Kafka would refuse, at its place."""
        f = self.get(key)
        if f is not None and str(f.value.value):
            problem = topic_problem(str(f.value.value))
            if problem is not None:
                self.error(f.value.at(problem[0]), f"`{key}`: {problem[1]}")

    def columns(self) -> dict[str, ColumnDecl]:
        f = self.get("columns")
        if f is None:
            self.error(self.d.loc, f"{self.what} has no `columns`: add "
                       "`columns: {name: type, ...}`")
            return {}
        out: dict[str, ColumnDecl] = {}
        folded: dict[str, ColumnDecl] = {}
        for c in f.value.value:
            problem = name_problem(c.name.value, column=True)
            if problem is not None:
                self.error(c.name.at(problem[0]), problem[1])
            if c.name.value in out:
                self.error(c.name.loc, f"column `{c.name.value}` is declared twice in "
                           f"{self.what}: remove or rename one")
            elif (other := folded.get(c.name.value.casefold())) is not None:
                at = other.name.loc
                self.error(c.name.loc, f"column `{c.name.value}` differs only in case from "
                           f"column `{other.name.value}` (line {at.line}, column "
                           f"{at.column}) in {self.what}: a record's field fills a column "
                           "whose name it matches but for case when no field has the "
                           "column's exact name (ksqlDB writes names in upper case), so one "
                           "field would fill both; rename one")
            folded.setdefault(c.name.value.casefold(), c)
            out[c.name.value] = c
        if not out:
            self.error(f.value.loc, f"{self.what} declares no columns: add at least the key "
                       "columns, as `name: type`")
        return out

    def column_list(self, key: str, cols: dict[str, ColumnDecl], label: str
                    ) -> tuple[str, ...] | None:
        """A list of declared column names (keys, shard key, partial update), checked."""
        f = self.get(key)
        if f is None:
            return None
        items: tuple[At[str], ...] = f.value.value
        if not items:
            self.error(f.value.loc, f"`{key}` of {self.what} is empty: list the {label} "
                       "columns")
            return ()
        seen: set[str] = set()
        for item in items:
            if item.value not in cols:
                declared = ", ".join(cols) or "none"
                self.error(item.loc, f"{label} column `{item.value}` is not declared in "
                           f"{self.what}: add it under `columns` or remove it from `{key}` "
                           f"(declared: {declared})")
            elif item.value in seen:
                self.error(item.loc, f"`{item.value}` appears twice in `{key}`: list each "
                           "column once")
            seen.add(item.value)
        return tuple(i.value for i in items)

    def key_types_ok(self, key: str, names: tuple[str, ...], cols: dict[str, ColumnDecl]
                     ) -> None:
        f = self.get(key)
        assert f is not None
        for item in f.value.value:
            c = cols.get(item.value)
            if c is not None and c.type.kind in NOT_KEYABLE:
                self.error(item.loc, f"column `{c.name.value}` has type {c.type}, which cannot "
                           f"be part of a key: use a scalar type (int, long, string, uuid, "
                           f"decimal, date, timestamp, ...) for `{key}` columns")

    def choice(self, key: str, allowed: tuple[C, ...], default: C) -> C:
        """The value of `key`, one of `allowed` (an error, and `default`, otherwise)."""
        f = self.get(key)
        if f is None:
            return default
        value = str(f.value.value)
        for a in allowed:
            if a == value:
                return a
        self.error(f.value.loc, f"`{key}: {value}` is not valid: use one of "
                   f"{', '.join(allowed)}")
        return default

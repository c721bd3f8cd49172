"""ksqlDB-style DDL for the `sql:` key: CREATE TABLE / CREATE STREAM statements.

    CREATE TABLE shop.orders (customer_id INT, order_id INT, total DOUBLE,
                              PRIMARY KEY (customer_id, order_id))
      WITH (kafka_topic='orders', key_format='JSON', value_format='AVRO');
    CREATE STREAM clicks (user_id STRING KEY, url STRING, ts TIMESTAMP)
      WITH (kafka_topic='clicks', key_format='STRING');

A hand-written recursive-descent parser. Keywords are case-insensitive;
identifiers keep their case (unlike ksqlDB, which upper-cases unquoted ones),
because they must match the field names in the records. Quote an identifier
with backticks for any other character (`` `a.b` ``).

Guarantees:
- Statements become the same `RelationDecl`s the YAML form gives, so both forms
  build equal specs through `materializer.decl`.
- Every problem is reported at its line and column in the declaration file
  (through the `locate` function the caller passes); after a syntax error the
  parser resumes at the next `;`, so every statement is checked.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from materializer.catalog.decl import (
    At,
    ChangesDecl,
    ColumnDecl,
    Context,
    Field,
    Locate,
    RelationDecl,
    klip23_message,
    suggest,
)
from materializer.catalog.validate import build_relations
from materializer.columns import ColumnType
from materializer.errors import ConfigError
from materializer.specs import Location, StreamSpec, TableSpec

_TOKEN = re.compile(r"""
    (?P<ws>\s+|--[^\n]*|/\*.*?\*/)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<qident>`(?:[^`]|``)*`)
  | (?P<string>'(?:[^']|'')*')
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<punct>[(),;<>=.])
""", re.VERBOSE | re.DOTALL)

SIMPLE_TYPES = {
    "int": "int", "integer": "int", "bigint": "long", "long": "long", "double": "double",
    "float": "float", "varchar": "string", "string": "string", "boolean": "boolean",
    "bytes": "bytes", "date": "date", "time": "time", "timestamp": "timestamp",
    "uuid": "uuid", "json": "json",
}
TYPE_NAMES = ("INT", "INTEGER", "BIGINT", "LONG", "DOUBLE", "FLOAT", "VARCHAR", "STRING",
              "BOOLEAN", "DECIMAL(p, s)", "BYTES", "DATE", "TIME", "TIMESTAMP", "UUID", "JSON",
              "ARRAY<T>", "MAP<STRING, T>")
# WITH property -> (YAML field, how its value is read)
PROPERTIES = {
    "kafka_topic": ("topic", "text"), "key_format": ("key_format", "lower"),
    "value_format": ("value_format", "lower"), "format": ("format", "lower"),
    "on_existing": ("on_existing", "lower"), "version_column": ("version_column", "text"),
    "null_key": ("null_key", "lower"), "on_error": ("on_error", "lower"),
    "on_reset": ("on_reset", "lower"),
    "dead_letter_topic": ("dead_letter_topic", "text"), "shard_key": ("shard_key", "names"),
    "partial_update": ("partial_update", "names"), "replicated": ("replicated", "bool"),
    "soft_primary_key": ("soft_primary_key", "bool"), "changes_topic": ("changes", "text"),
    "changes_format": ("changes", "lower"), "changes_columns": ("changes", "bool"),
    "changes_schemas": ("changes", "bool"),
    "max_events_per_key": ("retention", "int"),
    "partitions": ("partitions", "int"), "replicas": ("replicas", "int"),
    "timestamp": ("timestamp_column", "text"),
}
TABLE_PROPERTIES = tuple(p for p in PROPERTIES if p != "max_events_per_key")
STREAM_PROPERTIES = ("kafka_topic", "key_format", "value_format", "format", "on_error",
                     "dead_letter_topic", "max_events_per_key", "partitions", "replicas",
                     "timestamp")


@dataclass(frozen=True, slots=True)
class Token:
    """One lexical token; `start` is its offset in the sql text."""

    kind: str  # ident | qident | string | number | punct | eof
    text: str
    start: int

    @property
    def word(self) -> str:
        """The token as a keyword (lower case), or '' if it is not a bare word."""
        return self.text.lower() if self.kind == "ident" else ""


class DdlSyntaxError(Exception):
    """A statement that does not parse; `offset` is where in the sql text."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def tokenize(sql: str) -> list[Token]:
    """The tokens of `sql`, comments and whitespace dropped, ending with an `eof` token."""
    out: list[Token] = []
    pos = 0
    while pos < len(sql):
        m = _TOKEN.match(sql, pos)
        if m is None:
            ch = sql[pos]
            if ch in "'`":
                raise DdlSyntaxError(f"this {ch} is never closed: end the "
                                     f"{'string' if ch == chr(39) else 'name'} with {ch}", pos)
            raise DdlSyntaxError(f"unexpected character `{ch}`", pos)
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append(Token(kind, m.group(), pos))
        pos = m.end()
    out.append(Token("eof", "", len(sql)))
    return out


def parse_declarations(sql: str, locate: Locate, ctx: Context) -> list[RelationDecl]:
    """Parse every statement of `sql`; problems go to `ctx.diags` at file positions."""
    try:
        tokens = tokenize(sql)
    except DdlSyntaxError as e:
        loc = locate(e.offset)
        ctx.error(loc, f"{e} in `sql`")
        return []
    return _Parser(sql, tokens, locate, ctx).script()


def parse_ddl(sql: str, filename: str = "<sql>", default_schema: str = "public",
              has_registry: bool = True) -> list[TableSpec | StreamSpec]:
    """Specs declared by `sql` (positions are within `sql` itself); raises `ConfigError`."""
    starts = [0] + [m.end() for m in re.finditer("\n", sql)]

    def locate(offset: int) -> Location:
        line = bisect.bisect_right(starts, offset) - 1
        return Location(filename, line + 1, offset - starts[line] + 1)

    ctx = Context(default_schema=default_schema, has_registry=has_registry)
    decls = parse_declarations(sql, locate, ctx)
    tables, streams = build_relations(decls, ctx)
    if ctx.diags:
        raise ConfigError(sorted(ctx.diags, key=lambda d: (d.line, d.column)))
    return [*tables, *streams]


class _Parser:
    """Recursive descent over the tokens of one `sql:` text."""

    def __init__(self, sql: str, tokens: list[Token], locate: Locate, ctx: Context) -> None:
        self.sql = sql
        self.tokens = tokens
        self.locate = locate
        self.ctx = ctx
        self.i = 0
        self.stmt_start = 0
        self.stmt_no = 0

    # -------------------------------------------------------------- helpers

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, n: int = 1) -> Token:
        return self.tokens[min(self.i + n, len(self.tokens) - 1)]

    def advance(self) -> Token:
        t = self.tokens[self.i]
        if t.kind != "eof":
            self.i += 1
        return t

    def fail(self, message: str, tok: Token | None = None) -> DdlSyntaxError:
        return DdlSyntaxError(message, (tok or self.tok).start)

    def found(self) -> str:
        t = self.tok
        return "the end of the statement" if t.kind == "eof" or t.text == ";" else f"`{t.text}`"

    def keyword(self, *words: str) -> Token:
        if self.tok.word not in words:
            want = " or ".join(w.upper() for w in words)
            raise self.fail(f"expected {want} but found {self.found()}")
        return self.advance()

    def punct(self, ch: str) -> Token:
        if self.tok.kind != "punct" or self.tok.text != ch:
            raise self.fail(f"expected `{ch}` but found {self.found()}")
        return self.advance()

    def accept_punct(self, ch: str) -> bool:
        if self.tok.kind == "punct" and self.tok.text == ch:
            self.advance()
            return True
        return False

    def loc(self, tok: Token | int) -> Location:
        return self.locate(tok if isinstance(tok, int) else tok.start)

    def sub(self, start: int) -> Locate:
        """Locates character i of a value whose text starts at offset `start`."""
        return lambda i: self.locate(start + i)

    def ident(self, what: str) -> At[str]:
        t = self.tok
        if t.kind == "ident":
            self.advance()
            return At(t.text, self.loc(t), self.sub(t.start))
        if t.kind == "qident":
            self.advance()
            return At(t.text[1:-1].replace("``", "`"), self.loc(t), self.sub(t.start + 1))
        raise self.fail(f"expected {what} but found {self.found()}")

    # ---------------------------------------------------------------- script

    def script(self) -> list[RelationDecl]:
        out: list[RelationDecl] = []
        while self.tok.kind != "eof":
            if self.accept_punct(";"):
                continue
            self.stmt_start = self.tok.start
            self.stmt_no += 1
            try:
                out.append(self.statement())
            except DdlSyntaxError as e:
                self.report(e)
                self.skip_statement()
        return out

    def report(self, e: DdlSyntaxError) -> None:
        before = self.sql[self.stmt_start:e.offset]
        line = before.count("\n") + 1
        col = len(before) - before.rfind("\n") if "\n" in before else len(before) + 1
        head, sep, tail = str(e).partition("\n")
        where = f" (sql statement {self.stmt_no}, Line: {line}, Col: {col})"
        self.ctx.error(self.loc(e.offset), f"{head}{where}{sep}{tail}")

    def skip_statement(self) -> None:
        while self.tok.kind != "eof" and not (self.tok.kind == "punct" and self.tok.text == ";"):
            self.advance()

    def statement(self) -> RelationDecl:
        create = self.keyword("create")
        if self.tok.word == "or":
            self.advance()
            self.keyword("replace")
        if self.tok.word == "source":
            self.advance()
        kind = self.keyword("table", "stream").word
        if self.tok.word == "if":
            self.advance()
            self.keyword("not")
            self.keyword("exists")
        decl = RelationDecl(kind, self.loc(create), syntax="sql")
        name = self.qualified_name()
        decl.fields["name"] = Field(name, name.loc)
        _Elements(self, decl).parse()
        if self.tok.word == "with":
            _Properties(self, decl).parse()
        if self.tok.kind != "eof" and not (self.tok.kind == "punct" and self.tok.text == ";"):
            raise self.fail(f"expected `WITH (...)` or `;` but found {self.found()}")
        soft = decl.fields.pop("soft_primary_key", None)
        if soft is not None and soft.value.value and "primary_key" in decl.fields:
            decl.fields["soft_primary_key"] = decl.fields.pop("primary_key")
        return decl

    def qualified_name(self) -> At[str]:
        first = self.ident("a table or stream name")
        if not self.accept_punct("."):
            return first
        second = self.ident("a name after `.`")
        head = len(first.value) + 1

        def sub(i: int) -> Location:
            return first.at(i) if i < head else second.at(i - head)
        return At(f"{first.value}.{second.value}", first.loc, sub)

    # ------------------------------------------------------------------ types

    def column_type(self) -> ColumnType:
        t = self.tok
        word = t.word
        if word in SIMPLE_TYPES:
            self.advance()
            return ColumnType(SIMPLE_TYPES[word])
        if word == "decimal":
            self.advance()
            if not self.accept_punct("("):
                raise self.fail("DECIMAL needs a precision and scale: write DECIMAL(p, s)")
            p = self.number()
            self.punct(",")
            s = self.number()
            self.punct(")")
            if not 1 <= p <= 38 or s > p:
                raise self.fail(f"DECIMAL({p}, {s}) needs 1 <= precision <= 38 and "
                                "0 <= scale <= precision", t)
            return ColumnType("decimal", p, s)
        if word == "array":
            self.advance()
            self.punct("<")
            item = self.column_type()
            self.punct(">")
            return ColumnType("array", item=item)
        if word == "map":
            self.advance()
            self.punct("<")
            if self.tok.word not in ("string", "varchar"):
                raise self.fail(f"map keys must be STRING: write MAP<STRING, T>, not "
                                f"MAP<{self.tok.text}, ...>")
            self.advance()
            self.punct(",")
            item = self.column_type()
            self.punct(">")
            return ColumnType("map", item=item)
        close = suggest(t.text.upper(), [n.split("(")[0].split("<")[0] for n in TYPE_NAMES])
        raise self.fail(f"unknown type {self.found()}.{close} Types: {', '.join(TYPE_NAMES)}")

    def number(self) -> int:
        t = self.tok
        if t.kind != "number" or not t.text.isdigit():
            raise self.fail(f"expected a whole number but found {self.found()}")
        self.advance()
        return int(t.text)


class _Elements:
    """The parenthesized column list: columns, column-level keys, and PRIMARY KEY (...).

    A table has one column marked PRIMARY KEY or one `PRIMARY KEY (a, b)` clause; a
    stream marks any number of columns KEY or has one `KEY (a, b)` clause.
    """

    def __init__(self, p: _Parser, decl: RelationDecl) -> None:
        self.p = p
        self.decl = decl
        self.columns: list[ColumnDecl] = []
        self.keys: list[At[str]] = []
        self.key_tok: Token | None = None  # the first PRIMARY KEY / KEY
        self.clause_tok: Token | None = None  # the `(` of a key clause

    def parse(self) -> None:
        p = self.p
        open_tok = p.punct("(")
        while True:
            self.element()
            if not p.accept_punct(","):
                break
        p.punct(")")
        self.decl.fields["columns"] = Field(At(tuple(self.columns), p.loc(open_tok)),
                                            p.loc(open_tok))
        if self.key_tok is not None:
            field = "primary_key" if self.decl.kind == "table" else "key"
            loc = p.loc(self.clause_tok or self.key_tok)
            self.decl.fields[field] = Field(At(tuple(self.keys), loc), p.loc(self.key_tok))

    def element(self) -> None:
        p = self.p
        clause = (p.tok.word == "primary" and p.peek().word == "key"
                  and p.peek(2).text == "(") or (p.tok.word == "key" and p.peek().text == "(")
        if clause:
            self.key_clause()
        else:
            self.column()

    def mark(self, tok: Token, clause: bool, columns: tuple[str, ...] = ()) -> None:
        """Check a PRIMARY KEY / KEY at `tok` (marking `columns`) against the kind and the
        keys seen so far."""
        primary = tok.word == "primary"
        table = self.decl.kind == "table"
        if table and not primary:
            raise DdlSyntaxError(klip23_message("table", "KEY", "PRIMARY KEY", columns),
                                 tok.start)
        if not table and primary:
            raise DdlSyntaxError(klip23_message("stream", "PRIMARY KEY", "KEY", columns),
                                 tok.start)
        if self.key_tok is not None and (clause or table or self.clause_tok is not None):
            what, hint = (("PRIMARY KEY", "list every key column once in PRIMARY KEY (a, b)")
                          if table else
                          ("KEY", "mark each key column KEY, or list them once in KEY (a, b)"))
            raise DdlSyntaxError(f"{what} is given more than once: {hint}", tok.start)
        self.key_tok = self.key_tok or tok

    def key_clause(self) -> None:
        """`PRIMARY KEY (a, b)` or `KEY (a, b)` after the columns."""
        p = self.p
        tok = p.tok
        names: list[At[str]] = []
        try:
            if p.tok.word == "primary":
                p.advance()
            p.keyword("key")
            open_tok = p.punct("(")
            while True:
                names.append(p.ident("a key column name"))
                if not p.accept_punct(","):
                    break
            p.punct(")")
        except DdlSyntaxError:
            self.mark(tok, clause=True)  # a key of the wrong kind is the first thing to fix
            raise
        self.mark(tok, clause=True, columns=tuple(n.value for n in names))
        self.clause_tok = open_tok
        self.keys.extend(names)

    def column(self) -> None:
        """`name TYPE [NOT NULL] [PRIMARY KEY | KEY] [ENCODING 'e']`, modifiers in any
        order."""
        p = self.p
        name = p.ident("a column name (or PRIMARY KEY (...))")
        ctype = p.column_type()
        not_null = False
        encoding: At[str] | None = None
        while True:
            t = p.tok
            if t.word == "encoding" and encoding is None:
                p.advance()
                v = p.advance()
                if v.kind not in ("string", "ident"):
                    raise p.fail("ENCODING needs a value: base64 (decimal), or ms, us, ns "
                                 "(timestamp, time)", v)
                text = v.text[1:-1] if v.kind == "string" else v.text
                encoding = At(text.lower(), p.loc(v))
            elif t.word == "not":
                p.advance()
                p.keyword("null")
                not_null = True
            elif t.word in ("primary", "key"):
                self.mark(t, clause=False, columns=(name.value,))
                if p.advance().word == "primary":
                    p.keyword("key")
                self.keys.append(name)
            else:
                break
        self.columns.append(ColumnDecl(name, ctype, not_null, encoding))


class _Properties:
    """`WITH (name = value, ...)` mapped onto the YAML fields."""

    def __init__(self, p: _Parser, decl: RelationDecl) -> None:
        self.p = p
        self.decl = decl
        self.changes: dict[str, At[object]] = {}
        self.changes_tok: Token | None = None

    def parse(self) -> None:
        p = self.p
        p.keyword("with")
        p.punct("(")
        seen: set[str] = set()
        while True:
            name_tok = p.tok
            name = p.ident("a property name").value.lower()
            p.punct("=")
            value_tok = p.advance()
            if value_tok.kind not in ("string", "number", "ident"):
                raise p.fail(f"expected a value for `{name}` but found `{value_tok.text}`",
                             value_tok)
            if name in seen:
                raise p.fail(f"property `{name}` is given twice: keep one", name_tok)
            seen.add(name)
            self.prop(name, name_tok, value_tok)
            if not p.accept_punct(","):
                break
        p.punct(")")
        if self.changes:
            self.finish_changes()

    def prop(self, name: str, name_tok: Token, value_tok: Token) -> None:
        p = self.p
        valid = TABLE_PROPERTIES if self.decl.kind == "table" else STREAM_PROPERTIES
        if name not in valid:
            if name in PROPERTIES:
                other = "tables" if self.decl.kind == "stream" else "streams"
                raise p.fail(f"property `{name}` applies to {other} only: remove it", name_tok)
            raise p.fail(f"unknown property `{name}`.{suggest(name, valid)} Properties of a "
                         f"{self.decl.kind}: {', '.join(valid)}", name_tok)
        field, how = PROPERTIES[name]
        value = self.value(name, value_tok, how)
        key_loc = p.loc(name_tok)
        if field == "changes":
            self.changes[name] = value
            self.changes_tok = self.changes_tok or name_tok
        elif field == "format":
            for f in ("key_format", "value_format"):
                if f not in self.decl.fields:
                    self.decl.fields[f] = Field(value, key_loc)
        else:
            self.decl.fields[field] = Field(value, key_loc)

    def value(self, name: str, tok: Token, how: str) -> At[object]:
        """A property value as the YAML reader would give it."""
        p = self.p
        quoted = tok.kind == "string"
        text = tok.text[1:-1].replace("''", "'") if quoted else tok.text
        start = tok.start + (1 if quoted else 0)
        loc = p.loc(tok)
        if how == "bool":
            if text.lower() not in ("true", "false"):
                raise p.fail(f"`{name}` must be true or false, not `{text}`", tok)
            return At(text.lower() == "true", loc)
        if how == "int":
            if not text.lstrip("-").isdigit():
                raise p.fail(f"`{name}` must be a whole number, not `{text}`", tok)
            return At(int(text), loc)
        if how == "names":
            items: list[At[str]] = []
            offset = 0
            for part in text.split(","):
                lead = len(part) - len(part.lstrip())
                items.append(At(part.strip(), p.loc(start + offset + lead)))
                offset += len(part) + 1
            return At(tuple(items), loc)
        value = text.lower() if how == "lower" else text
        return At(value, loc, p.sub(start))

    def finish_changes(self) -> None:
        """changes_topic / changes_format / changes_columns / changes_schemas as one
        `changes` field."""
        topic, fmt = self.changes.get("changes_topic"), self.changes.get("changes_format")
        cols, schemas = self.changes.get("changes_columns"), self.changes.get("changes_schemas")
        decl = ChangesDecl(None if topic is None else At(str(topic.value), topic.loc, topic.sub),
                           None if fmt is None else At(str(fmt.value), fmt.loc, fmt.sub),
                           bool(cols.value) if cols is not None else False,
                           None if schemas is None else At(bool(schemas.value), schemas.loc))
        assert self.changes_tok is not None
        loc = self.p.loc(self.changes_tok)
        self.decl.fields["changes"] = Field(At(decl, loc), loc)

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

from materializer.catalog.ddl_lexicon import (
    SIMPLE_TYPES,
    TYPE_NAMES,
    DdlSyntaxError,
    Token,
    tokenize,
)
from materializer.catalog.ddl_properties import Properties
from materializer.catalog.decl import (
    At,
    ColumnDecl,
    Context,
    Field,
    Locate,
    RelationDecl,
    klip23_message,
    suggest,
)
from materializer.catalog.validate import build_relations
from materializer.columns import MAX_TYPE_NESTING, ColumnType
from materializer.errors import ConfigError
from materializer.specs import Location, StreamSpec, TableSpec


def parse_declarations(sql: str, locate: Locate, ctx: Context) -> list[RelationDecl]:
    """Parse every statement of `sql`; problems go to `ctx.diags` at file positions."""
    try:
        tokens = tokenize(sql)
    except DdlSyntaxError as e:
        loc = locate(e.offset)
        ctx.error(loc, f"{e} in `sql`")
        return []
    return Parser(sql, tokens, locate, ctx).script()


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


class Parser:
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
        # ksqlDB's OR REPLACE, SOURCE and IF NOT EXISTS are taken and change nothing: the
        # file is the whole truth (a relation is declared once; a store holding another
        # definition is refused as for any changed declaration), and every relation here is
        # read-only, as a SOURCE one is (README "DDL")
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
            Properties(self, decl).parse()
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

    def column_type(self, depth: int = 0) -> ColumnType:
        t = self.tok
        word = t.word
        if word in ("array", "map") and depth == MAX_TYPE_NESTING:
            raise self.fail(f"ARRAY and MAP nest at most {MAX_TYPE_NESTING} levels deep in a "
                            "column type: use JSON for deeper values")
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
            item = self.column_type(depth + 1)
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
            item = self.column_type(depth + 1)
            self.punct(">")
            return ColumnType("map", item=item)
        close = suggest(t.text.upper(), [n.split("(")[0].split("<")[0] for n in TYPE_NAMES])
        raise self.fail(f"unknown type {self.found()}.{close} Types: {', '.join(TYPE_NAMES)}")

    def number(self) -> int:
        t = self.tok
        if t.kind != "number" or not t.text.isdigit():
            raise self.fail(f"expected a whole number but found {self.found()}")
        if len(t.text) > 9:
            raise self.fail(f"`{t.text[:12]}...` is too large a number here")
        self.advance()
        return int(t.text)


class _Elements:
    """The parenthesized column list: columns, column-level keys, and PRIMARY KEY (...).

    A table has one column marked PRIMARY KEY or one `PRIMARY KEY (a, b)` clause; a
    stream marks any number of columns KEY or has one `KEY (a, b)` clause.
    """

    def __init__(self, p: Parser, decl: RelationDecl) -> None:
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
                    raise p.fail("ENCODING needs a value: base64 (decimal), ms, s, us, ns "
                                 "(timestamp, time), or 'base64', 'base64-url-safe', 'hex' "
                                 "(bytes)", v)
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



"""The WITH (...) clause of a DDL statement: properties to declaration fields."""

from __future__ import annotations

import re

from materializer.catalog.ddl_lexicon import (
    PROPERTIES,
    STREAM_PROPERTIES,
    TABLE_PROPERTIES,
    Token,
    TokenStream,
)
from materializer.catalog.decl import (
    At,
    ChangesDecl,
    Field,
    RelationDecl,
    suggest,
)

_WHOLE = re.compile(r"-?[0-9]+\Z")


class Properties:
    """`WITH (name = value, ...)` mapped onto the YAML fields."""

    def __init__(self, p: TokenStream, decl: RelationDecl) -> None:
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
            both = seen & {"key_format", "value_format"} if name == "format" else (
                {"format"} & seen if name in ("key_format", "value_format") else set())
            if both:  # as ksqlDB: which one wins would be a guess
                other = both.pop()
                raise p.fail(f"`{name.upper()}` and `{other.upper()}` are both given, but "
                             "FORMAT sets both the key and the value format: use FORMAT "
                             "alone, or KEY_FORMAT and VALUE_FORMAT", name_tok)
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
            if not _WHOLE.match(text):  # ASCII digits: `'³'.isdigit()`, int('--3') fails
                raise p.fail(f"`{name}` must be a whole number, not `{text}`", tok)
            if len(text) > 10:
                raise p.fail(f"`{name}` is too large: `{text[:12]}...`", tok)
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

"""One relation entry of a declaration file (`tables:` / `streams:` items) read from YAML
nodes into a `RelationDecl`: its fields, columns (with the types a YAML flow mapping cut at
their commas put back together for one precise error), `changes` and `retention`.

`RelationReader` is the part of the declaration file reader (`catalog.load`) that knows a
relation's keys; every problem is an error at its node's line and column, and reading goes
on after it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode

from materializer.catalog.decl import (
    CHANGES_FIELDS,
    RETENTION_FIELDS,
    STREAM_FIELDS,
    TABLE_FIELDS,
    At,
    ChangesDecl,
    ColumnDecl,
    Field,
    RelationDecl,
    is_pass_string,
    suggest,
    unknown_key_message,
)
from materializer.catalog.yamlnodes import STR_TAG, NodeReader, is_null
from materializer.columns import TypeSyntaxError, open_brackets, parse_type

COLUMN_FIELDS = ("type", "encoding")
_TYPE_WORDS = ("boolean", "int", "long", "float", "double", "decimal", "string", "bytes", "date",
               "time", "timestamp", "uuid", "json", "array", "map")


class RelationReader(NodeReader):
    """The readers of a relation entry's fields, on top of the positioned node reader."""

    def _relation(self, node: Node, kind: str) -> RelationDecl:
        decl = RelationDecl(kind, self.loc(node))
        valid = TABLE_FIELDS if kind == "table" else STREAM_FIELDS
        known = (*TABLE_FIELDS, *(k for k in STREAM_FIELDS if k not in TABLE_FIELDS))
        where = f"a {kind} declaration"
        if not isinstance(node, MappingNode):
            self.error(node, f"each entry of `{kind}s` must be a mapping with `name`, `topic`, "
                       "`columns`, ...")
            return decl
        for k, v in self.mapping(node, where):
            if k.value not in known:
                self.error(k, unknown_key_message(k.value, where, valid))
                continue
            value = self._field(k.value, v)
            if value is not None:
                decl.fields[k.value] = Field(value, self.loc(k))
        return decl

    def _field(self, key: str, node: Node) -> At[Any] | None:
        """Read one relation field into the shape `RelationDecl` documents."""
        readers: dict[str, Callable[[Node], At[Any] | None]] = {
            "columns": self._columns, "changes": self._changes, "retention": self._retention,
            "replicated": lambda n: self.boolean(n, "`replicated`"),
            "partitions": lambda n: self.integer(n, "`partitions`"),
            "replicas": lambda n: self.integer(n, "`replicas`"),
            "standby_replicas": lambda n: self.integer(n, "`standby_replicas`", minimum=0),
        }
        if key in readers:
            return readers[key](node)
        if key in ("primary_key", "soft_primary_key", "key", "shard_key", "partial_update"):
            return self.names(node, f"`{key}`")
        assert is_pass_string(key), key
        return self.string(node, f"`{key}`")

    def _columns(self, node: Node) -> At[tuple[ColumnDecl, ...]] | None:
        if not isinstance(node, MappingNode):
            self.error(node, "`columns` must be a mapping of column name to type, like "
                       "`{id: int, name: \"string not null\"}`")
            return None
        out: list[ColumnDecl] = []
        for k, v in self.mapping(self._unsplit(node)[0], "`columns`"):
            encoding = None
            if isinstance(v, MappingNode):  # {type: decimal(10,2), encoding: base64}
                type_node, encoding = self._column_options(k, v)
                if type_node is None:
                    continue
                v = type_node
            s = self.scalar(v, f"the type of column `{k.value}`")
            if s is None:
                continue
            try:
                ctype, not_null = parse_type(s.value)
            except TypeSyntaxError as e:
                word = re.match(r"[A-Za-z_]*", s.value[e.offset:])
                hint = ""
                if word and str(e).startswith("unknown type"):
                    hint = suggest(word.group().lower(), _TYPE_WORDS)
                self.error(self.locator(s)(e.offset),
                           f"column `{k.value}`: {e}{'.' if hint else ''}{hint}")
                continue
            out.append(ColumnDecl(self.at(k), ctype, not_null, encoding))
        return At(tuple(out), self.loc(node))

    def _unsplit(self, node: MappingNode, column: str | None = None
                 ) -> tuple[MappingNode, set[str]]:
        """`node` without the pieces of types that a flow mapping split at their commas,
        and the keys whose type was cut (`column`: the column a mapping of options is of).

        In `{balance: decimal(10,2)}` a comma ends the entry, so YAML reads `balance:
        decimal(10` and a key `2)` with no value: one error says to quote the type, and
        the pieces are left out (no "ends too early", no duplicate `2)` keys)."""
        cut: set[str] = set()
        if not node.flow_style:
            return node, cut
        kept: list[tuple[Node, Node]] = []
        pairs = node.value
        i = 0
        while i < len(pairs):
            k, v = pairs[i]
            i += 1
            depth = open_brackets(v.value) if isinstance(v, ScalarNode) and v.style is None \
                else 0
            pieces = [v.value]
            j = i
            while depth > 0 and j < len(pairs) and isinstance(pairs[j][0], ScalarNode) \
                    and pairs[j][0].style is None and is_null(pairs[j][1]):
                pieces.append(pairs[j][0].value)
                depth = open_brackets(",".join(pieces))
                j += 1
            if len(pieces) == 1 or depth != 0:
                kept.append((k, v))
                continue
            full = ",".join(p.strip() for p in pieces)
            self.error(v, f"column `{column or k.value}`: the type `{full}` was cut at its "
                       f"comma, since a comma ends an entry of a YAML flow mapping `{{...}}`: "
                       f'quote the type: `{k.value}: "{full}"`')
            cut.add(k.value)
            i = j
        return MappingNode(node.tag, kept, node.start_mark, node.end_mark,
                           node.flow_style), cut

    def _column_options(self, k: ScalarNode, node: MappingNode
                        ) -> tuple[Node | None, At[str] | None]:
        """A column written as a mapping: (its `type` node, its `encoding`)."""
        type_node: Node | None = None
        encoding = None
        unsplit, cut = self._unsplit(node, k.value)
        for key, value in self.mapping(unsplit, f"column `{k.value}`", COLUMN_FIELDS):
            if key.value == "type":
                type_node = value
            else:
                encoding = self.string(value, f"the encoding of column `{k.value}`")
        if type_node is None and "type" not in cut:
            self.error(node, f"column `{k.value}` has no `type`: write `{k.value}: {{type: "
                       f"<type>, encoding: <encoding>}}`, or just `{k.value}: <type>`")
        return type_node, encoding

    def _changes(self, node: Node) -> At[ChangesDecl] | None:
        if isinstance(node, ScalarNode) and node.tag == STR_TAG:
            return At(ChangesDecl(self.at(node), None), self.loc(node))
        topic = fmt = schemas = None
        columns = False
        for k, v in self.mapping(node, "`changes`", CHANGES_FIELDS):
            if k.value == "columns":
                b = self.boolean(v, "`changes.columns`")
                columns = b.value if b is not None else False
            elif k.value == "schemas":
                schemas = self.boolean(v, "`changes.schemas`")
            elif k.value == "topic":
                topic = self.string(v, "`changes.topic`")
            else:
                fmt = self.string(v, "`changes.format`")
        return At(ChangesDecl(topic, fmt, columns, schemas), self.loc(node))

    def _retention(self, node: Node) -> At[int] | None:
        for _key, v in self.mapping(node, "`retention`", RETENTION_FIELDS):
            # any whole number: the stream rules refuse 0 and below with one message
            return self.integer(v, "`max_events_per_key`", minimum=-(2**63))
        return None

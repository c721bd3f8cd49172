"""The declaration file (SPEC §3): YAML (and its `sql:` DDL) to a validated `Catalog`.

Guarantees:
- `load_catalog` either returns a fully validated, immutable `Catalog` or raises
  `ConfigError` carrying every problem found in the file, each at the 1-based
  line and column of the offending key or value, with a message that says how
  to fix it. It never stops at the first problem.
- Duplicate mapping keys are errors (plain YAML would keep the last one).
- Relative `store.path` and `schema_registry.path` resolve against the directory
  of the declaration file, so the worker and the CLI agree from any directory.
- The same declaration gives equal specs whether written in YAML or in `sql:`.
- `${NAME}` and `${NAME:-default}` in any value (not in keys) are replaced from
  `env`, the mapping the caller passes (the CLI passes the process environment;
  without one, no variable is set); `$$` is a literal `$` (see `yamlnodes`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from materializer.catalog import ddl
from materializer.catalog.decl import (
    CHANGES_FIELDS,
    RETENTION_FIELDS,
    STREAM_FIELDS,
    TABLE_FIELDS,
    At,
    ChangesDecl,
    ColumnDecl,
    Context,
    Field,
    RelationDecl,
    is_pass_string,
    name_problem,
    suggest,
    unknown_key_message,
)
from materializer.catalog.describe import describe as describe  # re-exported
from materializer.catalog.kafka_properties import KAFKA_PROPERTIES, LIBRDKAFKA_VERSION
from materializer.catalog.snapshots import check_tables, read_schedule
from materializer.catalog.validate import build_relations
from materializer.catalog.yamlnodes import STR_TAG, NodeReader, is_null
from materializer.columns import TypeSyntaxError, open_brackets, parse_type
from materializer.errors import ConfigError, Diagnostic
from materializer.specs import (
    ApiSpec,
    Catalog,
    ClusterSpec,
    Location,
    RegistrySpec,
    advertise_problem,
    byte_size,
)

TOP_KEYS = ("kafka", "group", "store", "schema_registry", "api", "default_schema", "tables",
            "streams", "sql", "cluster", "standby_replicas", "snapshots", "workers")
STORE_KEYS = ("path", "map_size")
COLUMN_FIELDS = ("type", "encoding")
API_KEYS = ("listen", "token_env", "max_lookup_keys", "advertise", "processes")
CLUSTER_KEYS = ("worker_id", "heartbeat_ms", "member_timeout_ms", "forward_timeout_ms")
_TYPE_WORDS = ("boolean", "int", "long", "float", "double", "decimal", "string", "bytes", "date",
               "time", "timestamp", "uuid", "json", "array", "map")
_LISTEN = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^:\s]+):(\d{1,5})\Z")


def load_catalog(path: str, env: Mapping[str, str] | None = None) -> Catalog:
    """Read and validate a declaration file; raise `ConfigError` with every problem.

    `env` holds the variables `${NAME}` may name (none if not given)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as e:
        raise ConfigError([Diagnostic(path, 1, 1, f"cannot read the declaration file: "
                                      f"{e.strerror or e}")]) from e
    except UnicodeDecodeError as e:
        raise ConfigError([Diagnostic(path, 1, 1, f"the file is not UTF-8 text: {e}")]) from e
    return load_catalog_text(text, path, env)


def load_catalog_text(text: str, filename: str, env: Mapping[str, str] | None = None
                      ) -> Catalog:
    """Validate declaration text; `filename` names it in diagnostics and anchors
    relative paths (they resolve against its directory); `env` as for `load_catalog`."""
    reader = _Reader(text.replace("\r\n", "\n"), filename, env)
    catalog = reader.read()
    if reader.ctx.diags or catalog is None:
        diags = sorted(reader.ctx.diags, key=lambda d: (d.line, d.column))
        raise ConfigError(diags)
    return catalog


# ----------------------------------------------------------------------------- reader


class _Reader(NodeReader):
    """The declaration file format on top of the positioned node reader."""

    def __init__(self, text: str, filename: str, env: Mapping[str, str] | None) -> None:
        super().__init__(text, filename, Context(), env)
        self.base_dir = os.path.dirname(os.path.abspath(filename))

    # ------------------------------------------------------------------ top

    def read(self) -> Catalog | None:
        root = self.compose()
        if root is None:
            return None
        if is_null(root):
            self.error(Location(self.file, 1, 1), "the file is empty: declare `tables:`, "
                       "`streams:` or `sql:`")
            return None
        top = {k.value: (k, v) for k, v in self.mapping(root, "the top level", TOP_KEYS)}
        return self._catalog(top, self.loc(root))

    def _catalog(self, top: dict[str, tuple[ScalarNode, Node]], where: Location
                 ) -> Catalog | None:
        fields: dict[str, Any] = {}
        if "kafka" in top:
            fields["kafka"] = self._kafka(top["kafka"][1])
        for key in ("group", "default_schema"):
            if key in top:
                s = self.string(top[key][1], f"`{key}`")
                if s is not None:
                    fields[key] = s.value
        schema = fields.get("default_schema")
        if schema is not None:
            problem = name_problem(schema, column=False)
            if problem is not None:
                self.error(top["default_schema"][1], f"default_schema {problem[1]}")
            self.ctx.default_schema = schema
        fields.update(self._store(top["store"][1] if "store" in top else None))
        if "schema_registry" in top:
            fields["schema_registry"] = self._registry(top["schema_registry"][1])
            self.ctx.has_registry = fields["schema_registry"] is not None
            self.ctx.registry_is_files = (self.ctx.has_registry
                                          and not fields["schema_registry"].url)
        if "api" in top:
            fields["api"] = self._api(top["api"][1])
        if "cluster" in top:
            fields["cluster"] = self._cluster(top["cluster"][1])
        if "standby_replicas" in top:
            n = self.integer(top["standby_replicas"][1], "`standby_replicas`", minimum=0)
            self.ctx.standby_replicas = n.value if n is not None else 0
        if "workers" in top:
            node = top["workers"][1]
            if isinstance(node, ScalarNode) and node.value == "auto":
                fields["workers"] = "auto"
            elif isinstance(node, ScalarNode) and node.tag == STR_TAG:
                self.error(node, f"`workers` must be a number of processes or auto, not "
                           f"`{node.value}`")
            else:
                n = self.integer(node, "`workers`", minimum=1)
                if n is not None:
                    fields["workers"] = n.value
        schedule = read_schedule(self, top["snapshots"][1]) if "snapshots" in top else None
        decls = self._declarations(top)
        if not decls and not self.ctx.diags:
            self.error(where, "the file declares no tables or streams: add `tables:`, "
                       "`streams:` or `sql:`")
        tables, streams = build_relations(decls, self.ctx)
        if schedule is not None:
            fields["snapshots"] = check_tables(self, *schedule, [r.name for r in (*tables,
                                               *streams)], self.ctx.default_schema)
        if self.ctx.diags:
            return None
        return Catalog(source=self.file, tables=tuple(tables), streams=tuple(streams), **fields)

    def _declarations(self, top: dict[str, tuple[ScalarNode, Node]]) -> list[RelationDecl]:
        decls: list[RelationDecl] = []
        for section, kind in (("tables", "table"), ("streams", "stream")):
            if section not in top:
                continue
            node = top[section][1]
            if is_null(node):
                continue
            if not isinstance(node, SequenceNode):
                self.error(node, f"`{section}` must be a list of {kind} declarations "
                           "(entries starting with `- name: ...`)")
                continue
            decls.extend(self._relation(item, kind) for item in node.value)
        if "sql" in top:
            sql = self.scalar(top["sql"][1], "`sql`")
            if sql is not None:
                decls.extend(ddl.parse_declarations(sql.value, self.locator(sql), self.ctx))
        return decls

    def _kafka(self, node: Node) -> tuple[tuple[str, str], ...]:
        """librdkafka properties, each checked against its property list; with
        `plugin.library.paths`, plugins may define more, so any name is accepted."""
        out: list[tuple[str, str]] = []
        pairs = self.mapping(node, "`kafka`")
        plugins = any(k.value == "plugin.library.paths" for k, _ in pairs)
        for k, v in pairs:
            if not plugins and k.value not in KAFKA_PROPERTIES:
                self.error(k, f"unknown librdkafka property `{k.value}` in `kafka`."
                           f"{suggest(k.value, sorted(KAFKA_PROPERTIES))} The properties are "
                           f"librdkafka's (CONFIGURATION.md of librdkafka {LIBRDKAFKA_VERSION})")
                continue
            s = self.scalar(v, f"kafka property `{k.value}`")
            if s is not None:
                out.append((k.value, s.value))
        return tuple(out)

    def _store(self, node: Node | None) -> dict[str, Any]:
        path = "./data"
        out: dict[str, Any] = {}
        if node is not None and not (is_null(node)):
            for k, v in self.mapping(node, "`store`", STORE_KEYS):
                if k.value == "path":
                    s = self.string(v, "`store.path`")
                    path = s.value if s is not None else path
                else:
                    size = self._size(v)
                    if size is not None:
                        out["map_size"] = size
        out["store_path"] = self.resolve(path)
        return out

    def _size(self, node: Node) -> int | None:
        s = self.scalar(node, "`store.map_size`")
        if s is None:
            return None
        size = byte_size(s.value)
        if size is None:
            self.error(s, f"`store.map_size: {s.value}` is not a size: give bytes (e.g. "
                       "68719476736) or a number with a unit (e.g. 64GiB, 512MB)")
        return size

    def resolve(self, path: str) -> str:
        """A path from the file, relative to the file's directory."""
        return os.path.normpath(os.path.join(self.base_dir, os.path.expanduser(path)))

    def _registry(self, node: Node) -> RegistrySpec | None:
        url = path = None
        config: list[tuple[str, str]] = []
        settings: list[ScalarNode] = []
        for k, v in self.mapping(node, "`schema_registry`"):
            s = self.scalar(v, f"`schema_registry.{k.value}`")
            if s is None:
                continue
            if k.value == "url":
                url = s.value
            elif k.value == "path":
                path = self.resolve(s.value)
            else:
                config.append((k.value, s.value))
                settings.append(k)
        if path is not None and url is None:
            for k in settings:
                self.error(k, f"`schema_registry.{k.value}` is a setting of a registry client, "
                           "but this registry is a `path` of files: remove it, or use `url`")
        if (url is None) == (path is None):
            how = "both" if url is not None else "neither"
            self.error(node, f"`schema_registry` has {how} `url` and `path`: give exactly one "
                       "(`url:` for a Confluent-compatible registry, `path:` for one kept as "
                       "files)")
            return None
        return RegistrySpec(url=url, path=path, config=tuple(config))

    def _api(self, node: Node) -> ApiSpec:
        fields: dict[str, Any] = {}
        for k, v in self.mapping(node, "`api`", API_KEYS):
            if k.value == "max_lookup_keys":
                n = self.integer(v, "`api.max_lookup_keys`")
                if n is not None:
                    fields["max_lookup_keys"] = n.value
                continue
            if k.value == "processes":
                n = self.integer(v, "`api.processes`", minimum=1)
                if n is not None:
                    fields["processes"] = n.value
                continue
            if k.value == "advertise" and (is_null(v) or getattr(v, "value", None) == ""):
                continue  # `advertise: ${URL:-}` with URL unset: the default (from listen)
            s = self.string(v, f"`api.{k.value}`")
            if s is None:
                continue
            if k.value == "listen" and not _LISTEN.match(s.value):
                self.error(s.loc, f"`api.listen: {s.value}` is not `host:port`: write for "
                           "example 127.0.0.1:8080")
                continue
            if k.value == "advertise":
                problem = advertise_problem(s.value)
                if problem is not None:
                    self.error(s.loc, f"`api.advertise: {s.value}` {problem}")
                    continue
            fields[k.value] = s.value
        api = ApiSpec(**fields)
        if api.token_env is None and not api.is_loopback():
            where = next(v for k, v in self.mapping(node, "`api`") if k.value == "listen")
            self.error(where, f"`api.listen: {api.listen}` is not a loopback address, and the "
                       "API refuses one without a bearer token: add `token_env: <VARIABLE>` "
                       "(the environment variable holding the token), or listen on 127.0.0.1")
        return api

    def _cluster(self, node: Node) -> ClusterSpec:
        fields: dict[str, Any] = {}
        for k, v in self.mapping(node, "`cluster`", CLUSTER_KEYS):
            if k.value == "worker_id":
                if is_null(v):  # `worker_id: ${ID:-}` with ID unset: the default
                    continue
                s = self.string(v, "`cluster.worker_id`")
                if s is not None and s.value.strip():  # empty (`${ID:-}`): the default
                    fields["worker_id"] = s.value.strip()
                continue
            n = self.integer(v, f"`cluster.{k.value}`", minimum=1)
            if n is not None:
                fields[k.value] = n.value
        return ClusterSpec(**fields)

    # ------------------------------------------------------------ relations

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
            return self.integer(v, "`max_events_per_key`", minimum=0)
        return None

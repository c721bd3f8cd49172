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
from collections.abc import Mapping
from typing import Any

from yaml.nodes import Node, ScalarNode, SequenceNode

from materializer.catalog import ddl
from materializer.catalog.decl import (
    Context,
    RelationDecl,
    name_problem,
    suggest,
)
from materializer.catalog.describe import describe as describe  # re-exported
from materializer.catalog.kafka_properties import KAFKA_PROPERTIES, LIBRDKAFKA_VERSION
from materializer.catalog.relation_reader import RelationReader
from materializer.catalog.snapshots import check_tables, read_schedule
from materializer.catalog.validate import build_relations
from materializer.catalog.worker_owned import AGREEING, WORKER_OWNED, group_problem
from materializer.catalog.yamlnodes import INT_TAG, STR_TAG, is_null
from materializer.errors import ConfigError, Diagnostic
from materializer.redact import redact
from materializer.setting_values import (
    advertise_problem,
    byte_size,
    registry_url_problem,
    store_path_problem,
)
from materializer.specs import (
    MAX_PROCESSES,
    REGISTRY_CLIENT_KEYS,
    REGISTRY_IGNORED_KEYS,
    ApiSpec,
    Catalog,
    ClusterSpec,
    Location,
    RegistrySpec,
)

TOP_KEYS = ("kafka", "group", "store", "schema_registry", "api", "default_schema", "tables",
            "streams", "sql", "cluster", "standby_replicas", "snapshots", "workers")
STORE_KEYS = ("path", "map_size")
API_KEYS = ("listen", "token_env", "max_lookup_keys", "advertise", "processes")
# the ignored ones are let through `mapping` to be refused with their own message
REGISTRY_KEYS = ("url", "path", *sorted(REGISTRY_CLIENT_KEYS | REGISTRY_IGNORED_KEYS))
CLUSTER_KEYS = ("worker_id", "heartbeat_ms", "member_timeout_ms", "forward_timeout_ms")
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
    # a byte-order mark and \r\n or \r line ends, as YAML reads them; lines counted at \n
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    reader = _Reader(text, filename, env)
    catalog = reader.read()
    if reader.ctx.diags or catalog is None:
        diags = sorted(reader.ctx.diags, key=lambda d: (d.line, d.column))
        raise ConfigError(diags)
    return catalog


# ----------------------------------------------------------------------------- reader


class _Reader(RelationReader):
    """The declaration file format on top of the positioned node reader."""

    _kafka_group: tuple[str, ScalarNode] | None = None  # `kafka.group.id`, where written

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
                problem = group_problem(s.value) if s is not None and key == "group" else None
                if s is not None and problem is not None:
                    self.error(s.at(problem[0]) if problem[0] >= 0 else s.loc,
                               f"`group: {s.value!r}` {problem[1]}")
        kafka_group = self._kafka_group
        if kafka_group is not None and "group" not in fields:
            fields["group"] = kafka_group[0]  # `group.id` stands for the absent `group:`
            if (bad := group_problem(kafka_group[0])) is not None:
                self.error(kafka_group[1], f"`kafka.group.id: {kafka_group[0]!r}` {bad[1]}")
        elif kafka_group is not None and kafka_group[0] != fields["group"]:
            self.error(kafka_group[1], f"`kafka.group.id: {kafka_group[0]}` is set by the "
                       f"worker itself, as `group: {fields['group']}`: "
                       f"{WORKER_OWNED['group.id']}")
        if "group" in fields:
            self.ctx.group = fields["group"]
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
                n = self.integer(node, "`workers`", minimum=1, maximum=MAX_PROCESSES)
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
            if k.value in WORKER_OWNED:
                self._worker_owned(k, v)
                continue
            if not plugins and k.value not in KAFKA_PROPERTIES:
                self.error(k, f"unknown librdkafka property `{k.value}` in `kafka`."
                           f"{suggest(k.value, sorted(KAFKA_PROPERTIES))} The properties are "
                           f"librdkafka's (CONFIGURATION.md of librdkafka {LIBRDKAFKA_VERSION})")
                continue
            s = self.scalar(v, f"kafka property `{k.value}`")
            if s is not None:
                out.append((k.value, s.value))
        return tuple(out)

    def _worker_owned(self, key: ScalarNode, node: Node) -> None:
        """A property the worker sets itself in `kafka:`: accepted when its value agrees
        (`AGREEING`; `group.id` equal to `group:`, or standing for it when `group:` is
        absent: `_kafka_group`), else refused saying why."""
        s = self.scalar(node, f"kafka property `{key.value}`")
        if s is None:
            return
        if key.value == "group.id":
            self._kafka_group = (str(s.value), key)
            return
        value = str(s.value).strip()
        if value.lower() not in AGREEING.get(key.value, ()):
            self.error(key, f"`kafka.{key.value}: {value}` is set by the worker itself, "
                       f"otherwise: {WORKER_OWNED[key.value]}")

    def _store(self, node: Node | None) -> dict[str, Any]:
        path = "./data"
        where: Node | Location = Location(self.file, 1, 1)
        out: dict[str, Any] = {}
        if node is not None and not (is_null(node)):
            for k, v in self.mapping(node, "`store`", STORE_KEYS):
                if k.value == "path":
                    s = self.string(v, "`store.path`")
                    if s is not None and not s.value.strip():  # would be the file's folder
                        self.error(v, "`store.path` is empty: give the store's directory "
                                   "(the default is ./data), or leave the key out")
                    elif s is not None:
                        path, where = s.value, v
                else:
                    size = self._size(v)
                    if size is not None:
                        out["map_size"] = size
        out["store_path"] = self.resolve(path)
        problem = store_path_problem(out["store_path"])
        if problem is not None:  # the file's own folder, when it is store.path's base
            self.error(where, f"`store.path` {problem} (an absolute store.path, say)")
        return out

    def _size(self, node: Node) -> int | None:
        s = self.scalar(node, "`store.map_size`")
        if s is None:
            return None
        if s.tag == INT_TAG:  # a bare number: read as every whole number is (`010` refused)
            n = self.integer(s, "`store.map_size`", minimum=1)
            return None if n is None else n.value
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
        for k, v in self.mapping(node, "`schema_registry`", REGISTRY_KEYS):
            s = self.scalar(v, f"`schema_registry.{k.value}`")
            if s is None:
                continue
            if k.value == "url":
                url = s.value
                problem = registry_url_problem(s.value)
                if problem is not None:
                    self.error(self.at(s).at(problem[0]) if problem[0] >= 0 else s,
                               f"`schema_registry.url` {problem[1]}")
            elif k.value == "path":
                path = self.resolve(s.value)
            else:
                config.append((k.value, s.value))
                settings.append(k)
        for k in settings if path is None else ():  # (with `path`: refused below)
            if k.value in REGISTRY_IGNORED_KEYS:
                self.error(k, f"`schema_registry.{k.value}` is a Confluent client setting this "
                           "registry client does not implement (it caches each schema id the "
                           "registry names once, and never reads a subject's latest version "
                           "to decode): remove it")
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
        refused_token = False  # an empty token_env: reported, not again as a missing one
        for k, v in self.mapping(node, "`api`", API_KEYS):
            if k.value == "max_lookup_keys":
                n = self.integer(v, "`api.max_lookup_keys`")
                if n is not None:
                    fields["max_lookup_keys"] = n.value
                continue
            if k.value == "processes":
                n = self.integer(v, "`api.processes`", minimum=1, maximum=MAX_PROCESSES)
                if n is not None:
                    fields["processes"] = n.value
                continue
            if k.value == "advertise" and (is_null(v) or getattr(v, "value", None) == ""):
                continue  # `advertise: ${URL:-}` with URL unset: the default (from listen)
            if k.value == "token_env" and isinstance(v, ScalarNode) and not v.value.strip():
                self.error(v, "`api.token_env` is empty, so it names no environment "
                           "variable: write the name of the one holding the bearer token "
                           "(for example MATERIALIZER_TOKEN), or leave `token_env` out (on a "
                           "loopback `listen` only: the API then needs no token)")
                refused_token = True
                continue
            s = self.string(v, f"`api.{k.value}`")
            if s is None:
                continue
            m = _LISTEN.match(s.value) if k.value == "listen" else None
            if m is not None and int(m.group(2)) > 65535:
                self.error(s.at(m.start(2)), f"`api.listen: {s.value}`: port {m.group(2)} is "
                           "not a TCP port: use 1-65535 (0: any free port)")
                continue
            if k.value == "listen" and m is None:
                self.error(s.loc, f"`api.listen: {s.value}` is not `host:port`: write for "
                           "example 127.0.0.1:8080")
                continue
            if k.value == "advertise":
                problem = advertise_problem(s.value)
                if problem is not None:
                    self.error(s.loc, f"`api.advertise: {redact('url', s.value)}` {problem}")
                    continue
            fields[k.value] = s.value
        api = ApiSpec(**fields)
        if api.token_env is None and not api.is_loopback() and not refused_token:
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

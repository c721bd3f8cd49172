"""A mutation fuzzer of the declaration loader (`load_catalog_text`), derandomized by its seed.

`tests/catalog/test_loader_fuzz.py` runs a few hundred cases; `fuzz(cases=...)` runs any number.

Seeds: valid declaration files (README example, SPEC example, docker/tables.yaml, small
hand-made ones, DDL). Mutations: on the YAML node tree (keys, values, structure) and on the
text (bytes, line endings, BOM, tabs, duplication). Oracles:
  crash    anything but ConfigError out of load_catalog_text, > 5 s of CPU, MemoryError
  place    a diagnostic whose line/column is not inside the file
  howto    a diagnostic without a fix hint (reported for review)
  ignored  a mutation that must change the meaning (or be refused) accepted with the seed's
           exact catalog (a key or value silently ignored)
  neutral  a mutation that must not change the meaning (reformatting) refused or changed
  coerced  a scalar value written as X accepted while X appears nowhere in the catalog
           (reported for review: hex numbers, booleans, ...)
"""

from __future__ import annotations

import dataclasses
import io
import json
import random
import re
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from materializer.catalog import load_catalog_text
from materializer.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## A declaration file")
    block = text[text.index("```yaml\n", start) + 8:]
    return block[:block.index("```\n")]


SEEDS: dict[str, str] = {
    "basic": """\
tables:
  - name: shop.users
    topic: users
    columns: {id: int, name: string, age: long}
    primary_key: [id]
""",
    "block": """\
group: g1
default_schema: shop
store:
  path: /tmp/decl-fuzz-store
  map_size: 1GiB
tables:
  - name: orders
    topic: orders
    columns:
      customer_id: int
      order_id: long
      total: "decimal(10,2)"
      ts: timestamp
      tags: array<string>
      meta: map<string,long>
      note: string not null
    primary_key: [customer_id, order_id]
    shard_key: [customer_id]
    on_existing: versioned
    version_column: ts
    null_key: dead_letter
    on_error: skip
    dead_letter_topic: orders.dlq
    partitions: 3
    replicas: 1
    timestamp_column: ts
    changes: {topic: orders.changes, format: debezium-json, columns: true}
streams:
  - name: clicks
    topic: clicks
    columns: {user_id: string, url: string, ts: timestamp}
    key: [user_id]
    key_format: string
    value_format: json
    retention: {max_events_per_key: 10}
""",
    "anchors": """\
x-defaults: &d
  key_format: json
  value_format: json
tables:
  - name: a
    topic: ta
    columns: {id: int, v: string}
    primary_key: [id]
    replicated: true
  - name: b
    topic: tb
    columns: {id: string, v: "string not null", e: {type: bytes, encoding: hex}}
    soft_primary_key: [id]
""".replace("x-defaults: &d\n  key_format: json\n  value_format: json\n", ""),
    "ddl": """\
sql: |
  CREATE TABLE shop.orders (customer_id INT, order_id INT, total DOUBLE,
                            PRIMARY KEY (customer_id, order_id))
    WITH (kafka_topic='orders', key_format='JSON', value_format='JSON', partitions=3);
  CREATE STREAM pageviews (user_id STRING KEY, url STRING) WITH (kafka_topic='pageviews');
  CREATE TABLE t2 (id BIGINT PRIMARY KEY, b BYTES ENCODING 'hex', n VARCHAR NOT NULL)
    WITH (kafka_topic='t2', replicated=true, changes_topic='t2.changes');
""",
    "docker": (ROOT / "docker" / "tables.yaml").read_text(encoding="utf-8"),
    "readme": readme_example(),
}

ENV = {"KAFKA_BOOTSTRAP_SERVERS": "localhost:9092", "SCHEMA_REGISTRY_URL": "http://r:8081",
       "MATERIALIZER_TOKEN": "t"}

INTERESTING_SCALARS = [
    "yes", "no", "on", "off", "Yes", "NO", "y", "n", "true", "False", "null", "~", "Null", "",
    "1e3", "0x10", "0o17", "010", "0b11", "1_000", "1:30", "+3", "-1", "0", "3.0", ".inf",
    ".nan", "2020-01-01", "'3'", '"3"', "'yes'", "'null'", "'~'", "'true'", "[a]", "{a: 1}",
    "[]", "{}", "!!str 3", "!!int '3'", "!!bool 'abc'", "!!int ''", "!!float x", "!!null x",
    "!!binary aGk=", "!!set {a}", "!!omap [a: 1]", "!!pairs [a: 1]", "!!python/none ''",
    "!foo x", "&a x", "*a", "${X}", "${X:-}", "${X:-3}", "$$x", "${}", "${X:-${Y}}",
    "\"a\\tb\"", "\"a\\u00a0b\"", "\"a\\u200bb\"", "\"\\ufeffa\"", "\"a\\u0435b\"",
    "\"\\ud800\"", "\"a\\x00b\"", "\"a\\nb\"", "'a b'", "'a:b'", "'a.b'", "'a.b.c'",
    "'" + "x" * 201 + "'", "'" + "x" * 250 + "'", "x" * 5000, "'#x'", "'-x'", "users",
    "id", "overwrite", "ignore", "versioned", "json", "avro", "string", "int", "long",
    "JSON", "Int", "debezium-json", "dead_letter", "drop", "fail", "skip", "rebuild",
    "int not null", "decimal(10,2)", "'decimal(10,2)'", "decimal(10, 2)", "array<int>",
    "map<string,int>", "map<int,int>", "array<json>", "integer", "bigint", "varchar", "text",
    "'STRING NOT NULL'", "'string  not  null'", "string null", "'array<array<array<int>>>'",
    "|\n  block", ">-\n  folded",
]

CONFUSABLE = {"a": "\u0430", "e": "\u0435", "o": "\u043e", "i": "\u0456", "s": "\u0455",
              "_": "\uff3f", "d": "\u0501", "u": "\u057d"}
SPECIAL_TEXT = ["\t", "\ufeff", "\r", "\r\n", "\x85", "\u2028", "\u2029", "\x00", "\x07",
                "\u00a0", "\u200b", "\u3000", "\xff", "\\", "'", '"', "#", "&", "*", "!",
                "%", "@", "`", "|", ">", "{", "}", "[", "]", ",", ":", "- ", "? ", "---\n",
                "...\n", "\n", "  ", "<<: *a\n"]


class Timeout(Exception):
    pass


def _alarm(_sig: int, _frm: Any) -> None:
    raise Timeout()


# ----------------------------------------------------------------------------- catalog view

def plain(x: Any) -> Any:
    """A catalog as plain data, without locations (which move with any edit)."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: plain(getattr(x, f.name)) for f in dataclasses.fields(x)
                if f.name not in ("location", "source", "loc")}
    if isinstance(x, (list, tuple)):
        return [plain(i) for i in x]
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return repr(x)


LIMIT_S = 5.0  # CPU seconds a case may take: a hang (the machine's load does not count)


def load(text: str, name: str = "/tmp/decl-fuzz/decl.yaml") -> tuple[str, Any, float]:
    """(outcome, catalog view or diagnostics or error, CPU seconds)."""
    t0 = time.process_time()
    old = signal.signal(signal.SIGPROF, _alarm)
    signal.setitimer(signal.ITIMER_PROF, LIMIT_S)
    try:
        cat = load_catalog_text(text, name, ENV)
        out: tuple[str, Any] = ("accept", plain(cat))
    except ConfigError as e:
        out = ("refuse", e.diagnostics)
    except Timeout:
        out = ("crash", f"more than {LIMIT_S} s of CPU")
    except RecursionError as e:
        out = ("crash", f"RecursionError {e}")
    except MemoryError:
        out = ("crash", "MemoryError")
    except Exception as e:  # noqa: BLE001 - any other exception is the finding
        import traceback
        out = ("crash", f"{type(e).__name__}: {e}\n{traceback.format_exc()[-1500:]}")
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old)
    return out[0], out[1], time.process_time() - t0


# ----------------------------------------------------------------------------- node mutation

def nodes(root: Node) -> list[tuple[Node, Node | None, Any]]:
    """(node, parent, index/key-node) for every node, keys included."""
    out: list[tuple[Node, Node | None, Any]] = [(root, None, None)]
    stack = [root]
    seen = set()
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n, MappingNode):
            for i, (k, v) in enumerate(n.value):
                out.append((k, n, ("key", i)))
                out.append((v, n, ("value", i)))
                stack.extend([k, v])
        elif isinstance(n, SequenceNode):
            for i, v in enumerate(n.value):
                out.append((v, n, ("item", i)))
                stack.append(v)
    return out


def scalar(text: str) -> Node:
    """The node of a YAML fragment (`'3'`, `[a]`, `!!int '3'`...)."""
    try:
        n = yaml.compose("v: " + text if "\n" not in text else "v: " + text, Loader=yaml.SafeLoader)
        assert isinstance(n, MappingNode)
        return n.value[0][1]
    except Exception:  # noqa: BLE001
        return ScalarNode("tag:yaml.org,2002:str", text, style="'")


def _differs(old: str, new: str) -> bool:
    """Whether an edit changes more than case and surrounding blanks."""
    return old.strip().lower() != new.strip().lower()


def typo(word: str, rng: random.Random) -> str:
    if not word:
        return "x"
    ops = ["drop", "dup", "swap", "case", "confusable", "underscore", "plural", "space",
           "upper"]
    op = rng.choice(ops)
    i = rng.randrange(len(word))
    if op == "drop" and len(word) > 1:
        return word[:i] + word[i + 1:]
    if op == "dup":
        return word[:i] + word[i] + word[i:]
    if op == "swap" and len(word) > 1:
        i = min(i, len(word) - 2)
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if op == "case":
        return word[:i] + word[i].swapcase() + word[i + 1:]
    if op == "confusable":
        for j, ch in enumerate(word):
            if ch in CONFUSABLE:
                return word[:j] + CONFUSABLE[ch] + word[j + 1:]
        return word + "\u200b"
    if op == "underscore":
        return word.replace("_", "-") if "_" in word else word + "_"
    if op == "plural":
        return word[:-1] if word.endswith("s") else word + "s"
    if op == "space":
        return word + " "
    return word.upper()


def mutate_tree(text: str, rng: random.Random) -> tuple[str, str, str] | None:
    """(mutated text, kind, description); kind: 'change' (must refuse or differ),
    'neutral' (must accept, same catalog), 'any' (no meaning oracle)."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    all_nodes = nodes(root)
    op = rng.choice(["typo_key", "dup_key", "dup_key_same", "set_value", "set_value",
                     "set_value", "wrap_list", "unwrap", "drop_key", "add_key", "swap_kind",
                     "mapping_to_list", "move_key", "neutral_style", "neutral_style",
                     "dup_relation", "copy_key_elsewhere"])
    desc = op
    kind = "any"
    if op in ("typo_key", "dup_key", "dup_key_same", "drop_key", "move_key",
              "copy_key_elsewhere"):
        keys = [(n, p, w) for n, p, w in all_nodes if w and w[0] == "key"]
        if not keys:
            return None
        k, parent, (_, i) = rng.choice(keys)
        assert isinstance(parent, MappingNode)
        if op == "typo_key":
            new = typo(k.value, rng)
            if new == k.value:
                return None
            desc = f"typo key {k.value!r} -> {new!r}"
            parent.value[i] = (ScalarNode(k.tag, new, style=k.style), parent.value[i][1])
            kind = "change"  # keys are case-sensitive, and a blank is part of them
        elif op == "dup_key":
            other = scalar(rng.choice(INTERESTING_SCALARS))
            parent.value.append((ScalarNode(k.tag, k.value, style=k.style), other))
            desc = f"duplicate key {k.value!r} with another value"
            kind = "change"
        elif op == "dup_key_same":
            parent.value.insert(i + 1, parent.value[i])
            desc = f"duplicate key {k.value!r} with the same value"
            kind = "change"
        elif op == "drop_key":
            del parent.value[i]
            desc = f"drop key {k.value!r}"  # may be the default: no meaning oracle
        elif op == "move_key":
            inside = {id(n) for n, _, _ in nodes(parent.value[i][1])}
            maps = [n for n, _, _ in all_nodes if isinstance(n, MappingNode) and n is not parent
                    and id(n) not in inside]
            if not maps:
                return None
            target = rng.choice(maps)
            pair = parent.value.pop(i)
            target.value.append(pair)
            desc = f"move key {k.value!r} to another mapping"
            kind = "change"
        else:  # copy to another mapping
            maps = [n for n, _, _ in all_nodes if isinstance(n, MappingNode) and n is not parent]
            if not maps:
                return None
            target = rng.choice(maps)
            if any(kk.value == k.value for kk, _ in target.value):
                kind = "change"
            target.value.append(parent.value[i])
            desc = f"copy key {k.value!r} to another mapping"
    elif op == "set_value":
        vals = [(n, p, w) for n, p, w in all_nodes if w and w[0] in ("value", "item")]
        if not vals:
            return None
        n, parent, (where, i) = rng.choice(vals)
        written = rng.choice(INTERESTING_SCALARS)
        new = scalar(written)
        if rng.random() < 0.2 and isinstance(n, ScalarNode):
            new = ScalarNode("tag:yaml.org,2002:str", typo(n.value, rng), style=None)
            written = new.value
        old = n.value if isinstance(n, ScalarNode) else "<collection>"
        desc = f"set value {old!r} -> {written!r}"
        if where == "value":
            parent.value[i] = (parent.value[i][0], new)
        else:
            parent.value[i] = new
        if isinstance(n, ScalarNode) and isinstance(new, ScalarNode) and \
                _differs(n.value, new.value) and n.value not in ("", "null") and \
                "${" not in n.value and "\n" not in n.value:
            kind = "change"  # (types and DDL are case-insensitive; a default may be unused)
        return serialize(root), kind, desc + f" ||{written}"
    elif op == "wrap_list":
        vals = [(n, p, w) for n, p, w in all_nodes
                if w and w[0] == "value" and isinstance(n, ScalarNode)]
        if not vals:
            return None
        n, parent, (_, i) = rng.choice(vals)
        parent.value[i] = (parent.value[i][0], SequenceNode("tag:yaml.org,2002:seq", [n],
                                                              flow_style=True))
        desc = f"wrap {n.value!r} in a list"
    elif op == "unwrap":
        vals = [(n, p, w) for n, p, w in all_nodes
                if w and w[0] == "value" and isinstance(n, SequenceNode) and n.value]
        if not vals:
            return None
        n, parent, (_, i) = rng.choice(vals)
        if len(n.value) == 1 and isinstance(n.value[0], ScalarNode):
            kind = "neutral"  # `primary_key: id` is documented as `[id]`
        parent.value[i] = (parent.value[i][0], n.value[0])
        desc = f"unwrap list to its first item ({len(n.value)} items)"
    elif op == "add_key":
        maps = [n for n, _, _ in all_nodes if isinstance(n, MappingNode)]
        target = rng.choice(maps)
        key = rng.choice(["nmae", "primary_keys", "Topic", "on_exist", "partition", "keys",
                          "valueformat", "x", "columns ", "key_format\u200b", "shardkey",
                          "primarykey", "retention", "replicated", "changes", "kafka",
                          "primary-key", "PRIMARY_KEY", "null", "~", "1", "yes"])
        target.value.append((ScalarNode("tag:yaml.org,2002:str", key),
                             scalar(rng.choice(INTERESTING_SCALARS))))
        desc = f"add key {key!r}"
        kind = "change"
    elif op == "swap_kind":
        top = root
        if not isinstance(top, MappingNode):
            return None
        for j, (k, v) in enumerate(top.value):
            if k.value in ("tables", "streams"):
                top.value[j] = (ScalarNode(k.tag, "streams" if k.value == "tables"
                                           else "tables"), v)
                desc = f"move {k.value} entries to the other kind"
                kind = "change"
                break
        else:
            return None
    elif op == "mapping_to_list":
        maps = [(n, p, w) for n, p, w in all_nodes
                if isinstance(n, MappingNode) and w and w[0] == "value"]
        if not maps:
            return None
        n, parent, (_, i) = rng.choice(maps)
        seq = SequenceNode("tag:yaml.org,2002:seq",
                           [MappingNode("tag:yaml.org,2002:map", [p], flow_style=True)
                            for p in n.value], flow_style=False)
        parent.value[i] = (parent.value[i][0], seq)
        desc = "mapping to a list of one-entry mappings"
        kind = "change"
    elif op == "dup_relation":
        seqs = [n for n, _, w in all_nodes if isinstance(n, SequenceNode) and n.value
                and isinstance(n.value[0], MappingNode)]
        if not seqs:
            return None
        s = rng.choice(seqs)
        s.value.append(rng.choice(s.value))
        desc = "the same relation twice"
        kind = "change"
    else:  # neutral_style: flow <-> block, quoting of plain strings
        for n, _, _ in all_nodes:
            if isinstance(n, (MappingNode, SequenceNode)) and rng.random() < 0.5:
                n.flow_style = not n.flow_style
            elif isinstance(n, ScalarNode) and n.tag == "tag:yaml.org,2002:str" \
                    and n.style is None and rng.random() < 0.3 and "\n" not in n.value:
                n.style = rng.choice(["'", '"'])
        desc = "restyle (flow/block, quotes)"
        kind = "neutral"
    return serialize(root), kind, desc


def serialize(root: Node) -> str:
    buf = io.StringIO()
    yaml.serialize(root, buf, Dumper=yaml.SafeDumper, allow_unicode=True, width=1 << 20)
    return buf.getvalue()


# ----------------------------------------------------------------------------- text mutation

def mutate_text(text: str, rng: random.Random) -> tuple[str, str, str]:
    op = rng.choice(["insert", "insert", "replace_char", "delete_char", "dup_line",
                     "del_line", "swap_lines", "crlf", "bom", "tabs", "trailing_ws",
                     "comment_line", "indent", "nonutf8", "truncate", "confusable_line",
                     "laughs", "deep", "long_value", "merge_laughs"])
    lines = text.split("\n")
    kind = "any"
    if op == "insert":
        ch = rng.choice(SPECIAL_TEXT)
        i = rng.randrange(len(text) + 1)
        return text[:i] + ch + text[i:], kind, f"insert {ch!r} at {i}"
    if op == "replace_char" and text:
        i = rng.randrange(len(text))
        ch = rng.choice(SPECIAL_TEXT + list("aZ0_-. "))
        return text[:i] + ch + text[i + 1:], kind, f"replace char {i} with {ch!r}"
    if op == "delete_char" and text:
        i = rng.randrange(len(text))
        return text[:i] + text[i + 1:], kind, f"delete char {i} ({text[i]!r})"
    if op == "dup_line":
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
        line = lines[i].strip()
        k = "change" if line and not line.startswith(("#", "- ")) else "any"
        return "\n".join(lines), k, f"duplicate line {i + 1}"
    if op == "del_line":
        i = rng.randrange(len(lines))
        removed = lines.pop(i)
        k = "neutral" if not removed.strip() or removed.strip().startswith("#") else "any"
        return "\n".join(lines), k, f"delete line {i + 1}"
    if op == "swap_lines" and len(lines) > 1:
        i = rng.randrange(len(lines) - 1)
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
        return "\n".join(lines), kind, f"swap lines {i + 1},{i + 2}"
    if op == "crlf":
        return text.replace("\n", "\r\n"), "neutral", "CRLF line ends"
    if op == "bom":
        return "\ufeff" + text, "neutral", "BOM"
    if op == "tabs":
        return text.replace("  ", "\t", 1), kind, "a tab for two spaces"
    if op == "trailing_ws":
        return "\n".join(ln + " \t" if ln.strip() else ln for ln in lines), "any", \
            "trailing blanks"
    if op == "comment_line":
        i = rng.randrange(len(lines))
        lines[i] = "# " + lines[i]
        return "\n".join(lines), "any", f"comment out line {i + 1}"
    if op == "indent":
        i = rng.randrange(len(lines))
        lines[i] = rng.choice([" ", "  ", "    "]) + lines[i]
        return "\n".join(lines), kind, f"indent line {i + 1}"
    if op == "nonutf8":
        return text + "\udcff", kind, "non-UTF-8 byte (surrogateescape)"
    if op == "truncate":
        i = rng.randrange(len(text) + 1)
        return text[:i], kind, f"truncate at {i}"
    if op == "confusable_line":
        i = rng.randrange(len(lines))
        ln = lines[i]
        for j, ch in enumerate(ln):
            if ch in CONFUSABLE and rng.random() < 0.3:
                lines[i] = ln[:j] + CONFUSABLE[ch] + ln[j + 1:]
                k = "change" if "#" not in ln[:j + 1] and "${" not in ln else "any"
                return "\n".join(lines), k, f"confusable in line {i + 1}: {lines[i]!r}"
        return text, "neutral", "no-op"
    if op == "laughs":
        bomb = "x0: &a0 [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
            f"x{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9))
        return bomb + text, "change", "billion laughs prefix"
    if op == "merge_laughs" and "columns: {" in text:
        bomb = "".join(f"x{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 10)}]}}\n"
                       for i in range(1, 12))
        body = text.replace("columns: {", "columns: {<<: *m11, ", 1)
        return ("x0: &m0 {zz: int}\n" + bomb + body, "change",
                "merge keys of merge keys (10**11 expansions)")
    if op == "deep":
        n = rng.choice([50, 500, 5000, 50000])
        return text + "x: " + "[" * n + "\n", "change", f"nesting {n}"
    if op == "long_value":
        n = rng.choice([201, 250, 10000, 1000000])
        return text.replace("topic: ", "topic: " + "t" * n, 1), "any", f"long topic {n}"
    return text, "neutral", "no-op"


def mutate_sql(text: str, rng: random.Random) -> tuple[str, str, str] | None:
    """Mutations of the DDL inside `sql: |`."""
    if "sql: |" not in text:
        return None
    head, body = text.split("sql: |\n", 1)
    words = re.findall(r"[A-Za-z_]+|'[^']*'|[0-9]+|\S", body)
    op = rng.choice(["word", "value", "drop", "dup", "insert"])
    if op == "word":
        w = rng.choice([w for w in words if w[0].isalpha()])
        new = typo(w, rng)
        kind = "change" if _differs(w, new) else "any"
        return head + "sql: |\n" + body.replace(w, new, 1), kind, f"sql typo {w!r} -> {new!r}"
    if op == "value":
        w = rng.choice([w for w in words if w.startswith("'") or w.isdigit()])
        new = rng.choice(["'3'", "'--3'", "'\u00b3'", "'\u0663'", "-1", "0", "99999999999",
                          "'yes'", "'TRUE'", "'true'", "''", "'a,,b'", "3.5", "'x'", "'JSON'",
                          "'KAFKA'", "'avro'", "'hex'", "'ms'", "x", "`x`"])
        kind = "change" if _differs(w.strip("'"), new.strip("'`")) else "any"
        return head + "sql: |\n" + body.replace(w, new, 1), kind, f"sql value {w!r} -> {new!r}"
    if op == "drop":
        w = rng.choice(words)
        return head + "sql: |\n" + body.replace(w, "", 1), "any", f"sql drop {w!r}"
    if op == "dup":
        ln = rng.choice([ln for ln in body.split("\n") if ln.strip()])
        return (head + "sql: |\n" + body.replace(ln, ln + "\n" + ln, 1), "any",
                f"sql dup line {ln!r}")
    i = rng.randrange(len(body))
    ins = rng.choice([", format='JSON'", ", key_format='JSON'", ", partitions=2",
                      " PRIMARY KEY", " KEY", " NOT NULL", ", x INT", ", `a b` INT",
                      ", PRIMARY KEY (x)", " ENCODING 'hex'", "/*", "--", "\u3000", "\u2028",
                      "\"", "`", "'", ";", "(", ")", "IF NOT EXISTS ", "OR REPLACE "])
    return head + "sql: |\n" + body[:i] + ins + body[i:], "any", f"sql insert {ins!r} at {i}"


# ----------------------------------------------------------------------------- oracles

HOWTO = re.compile(r"\b(add|remove|use|write|give|rename|declare|choose|quote|set|keep|list|"
                   r"replace|point|did you mean|please|delete|move|make|end|put|valid|"
                   r"must|needs?|fix|change|at least|at most|leave|spell|save|mark|take|"
                   r"declares|pick|try)\b", re.I)


def line_extent(text: str) -> list[int]:
    """Lengths of the file's lines, as an editor splits them (\\n, \\r\\n, \\r)."""
    return [len(x) for x in re.split(r"\r\n|\r|\n", text)]


def check_diags(text: str, diags: list[Any]) -> list[str]:
    problems = []
    lens = line_extent(text)
    for d in diags:
        if d.line < 1 or d.column < 1:
            problems.append(f"place: non-positive {d.line}:{d.column}")
        elif d.line > len(lens):
            problems.append(f"place: line {d.line} past the end ({len(lens)} lines)")
        elif d.column > lens[d.line - 1] + 1:
            problems.append(f"place: column {d.column} past line {d.line} "
                            f"(length {lens[d.line - 1]}): {d.message[:80]}")
        if not d.message or not HOWTO.search(d.message):
            problems.append(f"howto: {d.message[:160]}")
    return problems



def mutate(text: str, seed_name: str, rng: random.Random) -> tuple[str, str, str] | None:
    """One mutant of a seed: (text, kind, description), or None when the draw fits nothing."""
    r = rng.random()
    if r < 0.55:
        return mutate_tree(text, rng)
    if r < 0.7 and seed_name == "ddl":
        return mutate_sql(text, rng)
    return mutate_text(text, rng)


@dataclasses.dataclass
class Report:
    counts: Counter[str] = dataclasses.field(default_factory=Counter)
    findings: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    reviews: Counter[str] = dataclasses.field(default_factory=Counter)
    samples: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    slowest: tuple[float, str] = (0.0, "")

    def finding(self, cls: str, rec: dict[str, Any]) -> None:
        self.findings.setdefault(cls, []).append(rec)


def fuzz(cases: int, seed: int = 9797, sample: int = 0) -> Report:
    """Run `cases` mutants; `sample` of them are kept (description, text) for a CLI run."""
    rng = random.Random(seed)
    base: dict[str, Any] = {}
    for name, text in SEEDS.items():
        outcome, view, _ = load(text)
        assert outcome == "accept", (name, view)
        base[name] = view
    rep = Report()
    for case in range(cases):
        seed_name = rng.choice(list(SEEDS))
        try:
            m = mutate(SEEDS[seed_name], seed_name, rng)
        except Exception as e:  # noqa: BLE001 - the mutator's own failures are counted
            rep.counts["mutator-error"] += 1
            rep.reviews[f"mutator {type(e).__name__}"] += 1
            continue
        if m is None:
            rep.counts["skipped"] += 1
            continue
        text, kind, desc = m
        rep.counts["cases"] += 1
        outcome, got, secs = load(text)
        if secs > rep.slowest[0]:
            rep.slowest = (secs, f"{seed_name}: {desc}")
        rep.counts[outcome] += 1
        rec = {"case": case, "seed": seed_name, "desc": desc, "kind": kind,
               "text": text if len(text) < 4000 else text[:4000] + "...<cut>"}
        if outcome == "crash":
            rep.finding("crash", {**rec, "error": got})
            continue
        if outcome == "refuse":
            for p in check_diags(text, got):
                cls = p.split(":", 1)[0]
                if cls == "howto":
                    rep.reviews[p] += 1
                else:
                    rep.finding(cls, {**rec, "problem": p,
                                      "diags": [str(d)[:300] for d in got]})
            if kind == "neutral":
                rep.finding("neutral-refused", {**rec, "diags": [str(d)[:300] for d in got]})
        else:
            same = got == base[seed_name]
            if kind == "change" and same:
                rep.finding("ignored", rec)
            if kind == "neutral" and not same:
                rep.finding("neutral-changed", rec)
            if "||" in desc:
                written = desc.split("||", 1)[1]
                bare = written.strip("'\"")
                if bare and bare not in json.dumps(got, ensure_ascii=False) and \
                        bare not in ("null", "~", "Null", "", "[]", "{}", "*a") and \
                        not bare.startswith("${"):
                    rep.reviews[f"coerced: {written!r} ({desc.split('||')[0]})"] += 1
        if sample and len(rep.samples) < sample and rng.random() < sample / cases * 2:
            rep.samples.append((desc, text))
    return rep

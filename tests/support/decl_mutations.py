"""Mutations of declaration files for the loader fuzzer (`tests/support/decl_fuzz.py`):
on the YAML node tree (`mutate_tree`: keys, values, structure), on the text
(`mutate_text`: bytes, line endings, BOM, tabs, duplication) and on DDL (`mutate_sql`);
each gives (text, kind, description), the kind telling the fuzzer's oracles whether the
meaning must change, must not, or may."""

from __future__ import annotations

import io
import random
import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

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

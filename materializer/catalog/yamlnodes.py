"""A YAML node tree that remembers where everything is written.

`NodeReader` composes YAML with PyYAML's node API (not `safe_load`), so every
key and value keeps its line and column, and reads nodes into plain values:
strings, booleans, whole numbers, lists of names, mappings. Problems go to the
`Context` as diagnostics; a reader method returns None for a value it rejected.

Guarantees:
- Duplicate mapping keys are reported (plain YAML keeps the last one silently);
  `<<: *anchor` merge keys are expanded, explicit keys win over merged ones.
- `locator(node)` maps every character of a scalar's value to its line and
  column in the file, for every scalar style (plain, quoted, `|`, `>`).
- Every scalar *value* (never a mapping key) has `${NAME}` and `${NAME:-default}`
  replaced from the environment mapping the reader was given, once, when the
  text is composed; `$$` is a literal `$`, and a `$` followed by anything else is
  kept as it is. A variable that is unset (and has no default) or a malformed
  `${...}` is a diagnostic at the place of its `${`. A plain scalar is typed
  after substitution (`${PORT}` with PORT=8080 reads as a whole number), a
  quoted one stays a string. Characters that came from a variable locate at
  its `${`.
- Values are read as YAML 1.2 reads them wherever YAML 1.1 (PyYAML) would read them
  otherwise: a boolean is `true` or `false` (any case), never `yes/no/on/off`; a whole
  number is never octal (`010`) or base 60 (`1:30`); these are refused, not guessed.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from materializer.catalog.decl import At, Context, Locate, unknown_key_message
from materializer.catalog.yamlcompose import (
    MAX_DEPTH,
    MAX_TEXT,
    ODD_BREAK_NAMES,
    ODD_BREAKS,
    DepthLimitedLoader,
    TooDeep,
)
from materializer.catalog.yamlvars import plain_tag, substitute
from materializer.specs import Location

STR_TAG = "tag:yaml.org,2002:str"
NULL_TAG = "tag:yaml.org,2002:null"
BOOL_TAG = "tag:yaml.org,2002:bool"
INT_TAG = "tag:yaml.org,2002:int"
MERGE_TAG = "tag:yaml.org,2002:merge"
MAP_TAG = "tag:yaml.org,2002:map"
SEQ_TAG = "tag:yaml.org,2002:seq"
# The tags a value may carry: those YAML gives plain values, and `!!str`-style ones that
# say the same. Any other (`!!binary`, `!!python/...`, `!env`) would be dropped silently.
KNOWN_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in (
    "str", "int", "float", "bool", "null", "timestamp", "map", "seq", "merge", "value"))
_YAML11_INT = re.compile(r"[-+]?(0[0-7_]+|[0-9][0-9_]*(:[0-5]?[0-9])+)\Z")


def is_null(node: Node) -> bool:
    """Whether a node is an empty or explicit null value (`key:`, `~`, `null`)."""
    return isinstance(node, ScalarNode) and node.tag == NULL_TAG


class NodeReader:
    """Reads values out of one YAML text's node tree; problems go to `ctx`."""

    def __init__(self, text: str, filename: str, ctx: Context,
                 env: Mapping[str, str] | None = None) -> None:
        self.text = text
        self.file = filename
        self.ctx = ctx
        self.env: Mapping[str, str] = env if env is not None else {}
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self._constructor = SafeConstructor()
        # id(node) -> (node, value as written, index in it of each substituted character)
        self._substituted: dict[int, tuple[ScalarNode, str, list[int]]] = {}
        # id(mapping) -> (the mapping, kept so that its id is not reused; its pairs with merge
        # keys expanded, as `_merged` gives them)
        self._merges: dict[int, tuple[MappingNode, list[tuple[ScalarNode, Node]]]] = {}

    def compose(self) -> Node | None:
        """The root node, or None (with a diagnostic) if the text is not YAML."""
        odd = list(ODD_BREAKS.finditer(self.text))
        for m in odd[:20]:
            ch = m.group()
            self.error(self.loc_at_index(m.start()), f"character U+{ord(ch):04X} "
                       f"({ODD_BREAK_NAMES[ch]}) is a line break to this YAML reader (YAML "
                       "1.1) but not to most editors or YAML 1.2, so the text after it "
                       "would be read as a line of its own (out of a comment, say): replace "
                       "it with a newline, or remove it")
        if odd:
            return None
        if len(self.text) > MAX_TEXT:
            self.error(self.loc_at_index(MAX_TEXT), f"the file is {len(self.text):,} "
                       f"characters long, past the {MAX_TEXT:,} a declaration file may "
                       "have (a thousand tables take some 300,000): remove what is not "
                       "declarations (data, long comments)")
            return None
        try:
            root: Node | None = yaml.compose(self.text, Loader=DepthLimitedLoader)
        except TooDeep as e:
            self.error(Location(self.file, e.mark.line + 1, e.mark.column + 1), "the file "
                       f"nests lists and mappings too deeply here (more than {MAX_DEPTH} "
                       "levels): a declaration needs a few levels only; close the brackets "
                       "opened before")
            return None
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
            context = f" ({e.context})" if e.context else ""
            tab = mark is not None and self.text[mark.index:mark.index + 1] == "\t"
            fix = (": YAML indents with spaces, never tabs; replace the tab with spaces" if tab
                   else ": a declaration file is one YAML document; remove this `---` and "
                   "what follows, or merge the documents" if "single document" in (
                       e.context or "")
                   else ": check the indentation, the quotes and the `key: value` form here")
            self.error(Location(self.file, line, col),
                       f"YAML syntax error: {e.problem}{context}{fix}")
            return None
        except yaml.reader.ReaderError as e:
            self.error(self.loc_at_index(e.position), f"YAML error: character "
                       f"#x{e.character:04x} is not allowed in YAML text: remove it")
            return None
        except yaml.YAMLError as e:
            self.error(Location(self.file, 1, 1), f"YAML error: {e}")
            return None
        if root is None:
            return ScalarNode(NULL_TAG, "", None, None)
        self._substitute_tree(root)
        return root

    # --------------------------------------------------------- substitution

    def _substitute_tree(self, root: Node) -> None:
        """Substitute variables in every scalar value once (aliases share nodes)."""
        seen: set[int] = set()
        stack = [root]
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            tag = node.tag.replace("tag:yaml.org,2002:", "!!", 1)
            if node.tag not in KNOWN_TAGS:
                self.error(node, f"YAML tag `{tag}` is not supported: the loader would "
                           "read the value as written, without it; remove the tag (use "
                           "`${NAME}` for an environment variable)")
            elif (node.tag == MAP_TAG) != isinstance(node, MappingNode) or \
                    (node.tag == SEQ_TAG) != isinstance(node, SequenceNode):
                shape = ("a mapping" if isinstance(node, MappingNode) else
                         "a list" if isinstance(node, SequenceNode) else "a single value")
                self.error(node, f"YAML tag `{tag}` does not fit {shape}: the loader would "
                           "read it as written, without the tag; remove the tag")
            if isinstance(node, ScalarNode):
                if "$" in node.value:
                    self._substitute(node)
            elif isinstance(node, SequenceNode):
                stack.extend(node.value)
            elif isinstance(node, MappingNode):
                stack.extend(v for _k, v in node.value)
                stack.extend(k for k, _v in node.value  # keys: checked, not substituted
                             if k.tag not in KNOWN_TAGS or k.tag in (MAP_TAG, SEQ_TAG))

    def _substitute(self, node: ScalarNode) -> None:
        written = node.value
        out, index, problems = substitute(written, self.env)
        if problems:
            locate = self.locator(node)
            for offset, message in problems:
                self.error(locate(offset), message)
            return
        if out == written:
            return
        if node.style is None and node.tag == plain_tag(written):
            node.tag = plain_tag(out)  # an explicit tag (`!!str ${X}`) is kept
        self._substituted[id(node)] = (node, written, index)
        node.value = out

    # ------------------------------------------------------------ locations

    def loc(self, node: Node) -> Location:
        return Location(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def loc_at_index(self, index: int) -> Location:
        line = bisect.bisect_right(self._line_starts, index) - 1
        return Location(self.file, line + 1, index - self._line_starts[line] + 1)

    def error(self, node: Node | Location, message: str) -> None:
        self.ctx.error(node if isinstance(node, Location) else self.loc(node), message)

    def locator(self, node: ScalarNode) -> Locate:
        """Where each character of a scalar's value is in the file.

        Aligns the value with its source text: skips a block scalar's header line,
        indentation and folded line breaks, and maps an escape (`''`, `\\n`, ...)
        to where it starts. If the two ever disagree, later characters stay at the
        last aligned position (never past the scalar).
        """
        substituted = self._substituted.get(id(node))
        value = node.value if substituted is None else substituted[1]
        src, style = self.text, node.style
        i, end = node.start_mark.index, node.end_mark.index
        if style in ("|", ">"):
            nl = src.find("\n", i, end)
            i = nl + 1 if nl >= 0 else end
        elif style in ("'", '"'):
            i += 1
        positions: list[int] = []
        j, last, aligned = i, i, True
        for ch in value:
            if aligned:
                k, width = _align(src, j, end, ch, style)
                if k < 0:
                    aligned = False
                else:
                    last, j = k, k + width
            positions.append(last)
        tail = j
        if substituted is not None:
            positions = [positions[k] for k in substituted[2]]

        def locate(offset: int) -> Location:
            if offset < len(positions):
                return self.loc_at_index(positions[offset])
            return self.loc_at_index(tail)
        return locate

    def at(self, node: ScalarNode, value: Any = None) -> At[Any]:
        return At(node.value if value is None else value, self.loc(node), self.locator(node))

    # --------------------------------------------------------------- shapes

    def mapping(self, node: Node, where: str, valid: tuple[str, ...] | None = None
                ) -> list[tuple[ScalarNode, Node]]:
        """The (key, value) pairs of a mapping, after merge keys, without duplicates.

        With `valid`, unknown keys are reported (with the closest valid one) and left out.
        """
        if not isinstance(node, MappingNode):
            self.error(node, f"{where} must be a mapping of `key: value` entries")
            return []
        pairs = self._merged(node, where, set())
        seen: dict[str, ScalarNode] = {}
        out: list[tuple[ScalarNode, Node]] = []
        for k, v in pairs:
            if k.value in seen:
                first = seen[k.value]
                self.error(k, f"duplicate key `{k.value}` in {where} (first at line "
                           f"{first.start_mark.line + 1}, column {first.start_mark.column + 1}): "
                           "YAML would silently keep only the last one; remove one of them")
                continue
            seen[k.value] = k
            if valid is not None and k.value not in valid:
                self.error(k, unknown_key_message(k.value, where, valid))
                continue
            out.append((k, v))
        return out

    def _merged(self, node: MappingNode, where: str, inside: set[int]
                ) -> list[tuple[ScalarNode, Node]]:
        """Pairs of a mapping with `<<: *anchor` merge keys expanded (explicit keys win);
        `inside`: the mappings being merged into this one (a mapping merged into itself,
        `&a {<<: *a}`, is an error). Each mapping is expanded once per reader: merges of
        merges (`<<: [*m, *m, ...]` on every level) would otherwise take exponential time
        in the file's size, as YAML aliases of aliases do ("billion laughs")."""
        done = self._merges.get(id(node))
        if done is not None:
            return done[1]
        inside = inside | {id(node)}
        own: list[tuple[ScalarNode, Node]] = []
        merged: list[tuple[ScalarNode, Node]] = []
        for k, v in node.value:
            if not isinstance(k, ScalarNode):
                self.error(k, f"keys in {where} must be plain names")
            elif k.tag == MERGE_TAG:
                sources = v.value if isinstance(v, SequenceNode) else [v]
                for src in sources:
                    if isinstance(src, MappingNode) and id(src) in inside:
                        self.error(k, "`<<` merges a mapping into itself: point it at "
                                   "another mapping's anchor")
                    elif isinstance(src, MappingNode):
                        merged.extend(self._merged(src, where, inside))
                    else:
                        self.error(src, "`<<` merges mappings only: point it at a mapping "
                                   "anchor (`<<: *defaults`)")
            else:
                own.append((k, v))
        names = {k.value for k, _ in own}
        merged_once: dict[str, tuple[ScalarNode, Node]] = {}
        for k, v in merged:
            if k.value not in names:
                merged_once.setdefault(k.value, (k, v))
        out = own + list(merged_once.values())
        self._merges[id(node)] = (node, out)
        return out

    def scalar(self, node: Node, what: str) -> ScalarNode | None:
        if not isinstance(node, ScalarNode) or node.tag == NULL_TAG:
            shape = "nothing" if isinstance(node, ScalarNode) else (
                "a list" if isinstance(node, SequenceNode) else "a mapping")
            self.error(node, f"{what} must be a single value, not {shape}")
            return None
        return node

    def string(self, node: Node, what: str) -> At[str] | None:
        s = self.scalar(node, what)
        return None if s is None else self.at(s)

    def boolean(self, node: Node, what: str) -> At[bool] | None:
        s = self.scalar(node, what)
        if s is None:
            return None
        if s.tag != BOOL_TAG or plain_tag(s.value) != BOOL_TAG:  # `!!bool x`: no bool
            self.error(s, f"{what} must be true or false, not `{s.value}`")
            return None
        if s.value.lower() not in ("true", "false"):  # yes/no/on/off: YAML 1.1 only
            self.error(s, f"{what}: `{s.value}` is a boolean in YAML 1.1 only (YAML 1.2 and "
                       "most other tools read it as text, and the DDL refuses it): write "
                       "true or false")
            return None
        return At(bool(self._constructor.construct_yaml_bool(s)), self.loc(s))

    def integer(self, node: Node, what: str, minimum: int = 1,
                maximum: int | None = None) -> At[int] | None:
        s = self.scalar(node, what)
        if s is None:
            return None
        if s.tag != INT_TAG or plain_tag(s.value) != INT_TAG:  # `!!int ''`: no number
            self.error(s, f"{what} must be a whole number, not `{s.value}`")
            return None
        try:
            n = int(self._constructor.construct_yaml_int(s))
        except (ValueError, ConstructorError):
            self.error(s, f"{what} must be a whole number, not `{s.value}`")
            return None
        if _YAML11_INT.match(s.value):
            how, fix = (("a base-60 number", "a plain number") if ":" in s.value
                        else ("octal (its leading 0)", "the number without a leading 0"))
            self.error(s, f"{what}: YAML reads `{s.value}` as {how}, {n}: write {n} if "
                       f"you meant that, else {fix}")
            return None
        if n < minimum:
            self.error(s, f"{what} must be at least {minimum}, not {n}")
            return None
        if maximum is not None and n > maximum:
            self.error(s, f"{what} must be at most {maximum}, not {n}")
            return None
        return At(n, self.loc(s))

    def names(self, node: Node, what: str) -> At[tuple[At[str], ...]] | None:
        """A list of column names; a single name is accepted as a one-item list."""
        if isinstance(node, ScalarNode) and node.tag != NULL_TAG:
            return At((self.at(node),), self.loc(node))
        if not isinstance(node, SequenceNode):
            self.error(node, f"{what} must be a list of column names, like `[id]`")
            return None
        items: list[At[str]] = []
        for item in node.value:
            s = self.scalar(item, f"each entry of {what}")
            if s is not None:
                items.append(self.at(s))
        return At(tuple(items), self.loc(node))


def _align(src: str, j: int, end: int, ch: str, style: str | None) -> tuple[int, int]:
    """(index, width) of the source text that produced value character `ch`, searching
    from `j`; (-1, 0) if the source disagrees. Skips whitespace the value folded away."""
    k = j
    while k < end:
        c = src[k]
        if style == '"' and c == "\\":
            esc = src[k + 1] if k + 1 < end else ""
            if esc == "\n":  # an escaped line break produces nothing
                k += 2
                continue
            return k, {"x": 4, "u": 6, "U": 10}.get(esc, 2)
        if style == "'" and c == "'":
            return k, 2  # '' is one quote
        if c == ch or (ch == " " and c == "\n"):
            return k, 1
        if c not in " \t\n":
            return -1, 0
        k += 1
    return -1, 0

"""Limits on the YAML text a declaration file may be, checked before or while PyYAML
composes it: YAML 1.1 line breaks editors do not show (`ODD_BREAKS`), its length
(`MAX_TEXT`) and how deeply it nests (`DepthLimitedLoader` stops at `MAX_DEPTH`, raising
`TooDeep` with the place), so no file makes the loader recurse, hang or misplace an
error.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.nodes import Node

# YAML 1.1 line breaks besides \n (\r is turned into \n before reading)
ODD_BREAKS = re.compile("[\x85\u2028\u2029]")
ODD_BREAK_NAMES = {"\x85": "NEXT LINE", "\u2028": "LINE SEPARATOR",
                   "\u2029": "PARAGRAPH SEPARATOR"}


MAX_DEPTH = 64  # lists and mappings in each other: a declaration needs 6 or so
MAX_TEXT = 1_000_000  # characters: PyYAML reads some 300,000 to a million a second


class TooDeep(Exception):
    def __init__(self, mark: yaml.Mark) -> None:
        super().__init__("too deep")
        self.mark = mark


class DepthLimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, stopped at the node that nests past `MAX_DEPTH` levels (the
    composer recurses once per level: a deep file was a RecursionError, placed nowhere,
    after seconds)."""

    _depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise TooDeep(self.peek_event().start_mark)  # type: ignore[no-untyped-call]
            node: Node | None = super().compose_node(parent, index)
            return node
        finally:
            self._depth -= 1

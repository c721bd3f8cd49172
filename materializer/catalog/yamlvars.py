"""`${NAME}` references in declaration values (`substitute`), and the tag YAML gives a
plain value (`plain_tag`: a substituted plain scalar is typed by its new text).

Guarantees: `${NAME}` and `${NAME:-default}` are replaced from the mapping given, `$$` is
a literal `$`, any other `$` is kept; the result is not substituted again; each character
of the result maps back to the index in the text written it came from (a variable's
characters: its `${`); an unset variable without a default, or a malformed reference, is
a problem at its `${`, never an empty value silently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

_RESOLVER = Resolver()


def plain_tag(value: str) -> str:
    """The tag YAML gives a plain (unquoted, untagged) scalar with this value."""
    tag: str = _RESOLVER.resolve(ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    return tag


def substitute(value: str, env: Mapping[str, str]
               ) -> tuple[str, list[int], list[tuple[int, str]]]:
    """`value` with `${NAME}`, `${NAME:-default}` and `$$` replaced; for each
    character of the result, the index in `value` it comes from (a variable's
    characters: its `${`); and the problems found, as (index, message).

    `${NAME:-default}` uses the default when NAME is unset or empty; `${NAME}` of an
    empty NAME is empty. The result is not substituted again.
    """
    out: list[str] = []
    index: list[int] = []
    problems: list[tuple[int, str]] = []
    i = 0
    while True:
        j = value.find("$", i)
        if j < 0:
            out.append(value[i:])
            index.extend(range(i, len(value)))
            break
        out.append(value[i:j])
        index.extend(range(i, j))
        if value.startswith("$$", j):
            out.append("$")
            index.append(j)
            i = j + 2
            continue
        if not value.startswith("${", j):
            out.append("$")
            index.append(j)
            i = j + 1
            continue
        m = _REFERENCE.match(value, j)
        if m is None:
            end = value.find("}", j)
            ref = value[j:end + 1] if end >= 0 else value[j:j + 20]
            problems.append((j, f"`{ref}` is not a variable reference: write `${{NAME}}` or "
                             "`${NAME:-default}` (NAME: letters, digits and `_`, not starting "
                             "with a digit), or `$$` for a literal `$`"))
            i = j + 2
            continue
        name, default = m.group(1), m.group(2)
        if default is not None and "${" in default:
            problems.append((j, f"the default of `${{{name}:-...}}` holds another `${{`: "
                             "defaults are not substituted; write the default as text"))
            i = m.end()
            continue
        got = env.get(name)
        if default is not None and not got:
            got = default
        if got is None:
            problems.append((j, f"environment variable `{name}` is not set: set it, or give "
                             f"a default with `${{{name}:-default}}`"))
            got = ""
        out.append(got)
        index.extend([j] * len(got))
        i = m.end()
    return "".join(out), index, problems

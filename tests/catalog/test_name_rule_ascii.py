"""SPEC §3's naming rule says "letters" and the loader takes ASCII ones (Kinetica's rule):
a name such as `é` is refused, and the message says the rule is ASCII's, rather than
"`é` starts with `é`: ... starts with a letter", which reads as a contradiction."""

from __future__ import annotations

import pytest

from tests.support.catalog import errors_of

TABLE = """\
tables:
  - name: {name}
    topic: t
    columns: {{id: int, {column}: string}}
    primary_key: [id]
"""


@pytest.mark.parametrize(("name", "column", "what"), [
    ("é", "v", "table name `é` starts with `é`"),
    ("ué", "v", "table name `ué` contains `é`"),
    ("t", "é", "column name `é` starts with `é`"),
    ("t", "vé", "column name `vé` contains `é`"),
])
def test_a_non_ascii_letter_is_refused_saying_the_rule_is_ascii(name: str, column: str,
                                                                 what: str) -> None:
    [error] = errors_of(TABLE.format(name=name, column=column))
    assert what in error.message and "(ASCII letters and digits)" in error.message, error.message


def test_ascii_names_with_every_allowed_character_load() -> None:
    from tests.support.catalog import load

    load(TABLE.format(name="'_a1 #{}[]():-'", column="'_b2{}[]:.'"))

"""`kafka:` keys are checked against librdkafka's properties: an unknown key is an error
at its line and column with the closest property; the static list in
`materializer/catalog/kafka_properties.py` is what the installed librdkafka reports.

Regenerate the list after upgrading confluent-kafka:
    python -m tests.catalog.test_kafka_properties > materializer/catalog/kafka_properties.py
"""

from __future__ import annotations

import ctypes
import glob
import os
import re
import tempfile
import textwrap
from pathlib import Path

import pytest

from materializer.catalog import load_catalog_text
from materializer.catalog.kafka_properties import KAFKA_PROPERTIES, LIBRDKAFKA_VERSION
from materializer.errors import ConfigError
from tests.support.catalog import marked

BODY = """\
tables:
  - name: t
    topic: t
    columns: {id: int}
    primary_key: [id]
"""
_ROW = re.compile(r"^([A-Za-z0-9_.]+)\s+\|\s*[CP*]\s*\|")


def _librdkafka() -> ctypes.CDLL:
    """The librdkafka confluent-kafka runs with (its wheel's copy, else the system's)."""
    import confluent_kafka

    site = os.path.dirname(os.path.dirname(confluent_kafka.__file__))
    found = glob.glob(os.path.join(site, "confluent_kafka.libs", "librdkafka*"))
    return ctypes.CDLL(found[0] if found else "librdkafka.so.1")


def installed_properties() -> tuple[str, frozenset[str]]:
    """(version, property names) of the installed librdkafka, from its own property table
    (`rd_kafka_conf_properties_show`, the source of its CONFIGURATION.md); properties only
    the C API can set (callbacks, pointers: "see dedicated API") are left out."""
    import confluent_kafka

    lib = _librdkafka()
    libc = ctypes.CDLL(None)
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_conf_properties_show.argtypes = [ctypes.c_void_p]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "properties.md")
        fp = libc.fopen(path.encode(), b"w")
        lib.rd_kafka_conf_properties_show(fp)
        libc.fclose(fp)
        table = Path(path).read_text()
    names = set()
    for line in table.splitlines():
        m = _ROW.match(line)
        if m and "see dedicated API" not in line:
            names.add(m.group(1))
    return confluent_kafka.libversion()[0], frozenset(names)


def module_text(version: str, names: frozenset[str]) -> str:
    rows = "".join(f'    "{n}",\n' for n in sorted(names))
    return (f'"""The property names librdkafka {version} accepts (global and topic level),\n'
            "as data: what `materializer check` validates `kafka:` keys against.\n\n"
            "Generated from the installed librdkafka's own property table by\n"
            "`python -m tests.catalog.test_kafka_properties > "
            'materializer/catalog/kafka_properties.py`;\n'
            "properties only the C API can set (callbacks, pointers) are left out.\n"
            '"""\n\n'
            f'LIBRDKAFKA_VERSION = "{version}"\n\n'
            f"KAFKA_PROPERTIES = frozenset({{\n{rows}}})\n")


def test_the_list_is_the_installed_librdkafkas() -> None:
    version, names = installed_properties()
    if version != LIBRDKAFKA_VERSION:
        pytest.skip(f"librdkafka {version} is installed, the list is of {LIBRDKAFKA_VERSION}: "
                    "regenerate it (see this module's docstring)")
    assert names == KAFKA_PROPERTIES
    source = Path(__file__).resolve().parents[2] / "materializer/catalog/kafka_properties.py"
    assert source.read_text() == module_text(version, names)


def errors(text: str) -> list[tuple[int, int, str]]:
    with pytest.raises(ConfigError) as info:
        load_catalog_text(text, "tables.yaml")
    return [(d.line, d.column, d.message) for d in info.value.diagnostics]


@pytest.mark.parametrize(("written", "meant"), [
    ("bootstrap.server", "bootstrap.servers"),
    ("sasl.mechansim", "sasl.mechanism"),
    ("auto.offset.rest", "auto.offset.reset"),
    ("session.timeout", "session.timeout.ms"),
])
def test_unknown_property_is_an_error_with_a_suggestion(written: str, meant: str) -> None:
    text, line, column = marked(textwrap.dedent(f"""
        kafka:
          client.id: x
          @@{written}: localhost:9092
        """).lstrip("\n") + BODY)
    [(got_line, got_column, message)] = errors(text)
    assert (got_line, got_column) == (line, column)
    assert message.startswith(f"unknown librdkafka property `{written}` in `kafka`. "
                              f"Did you mean `{meant}`?"), message
    assert LIBRDKAFKA_VERSION in message


def test_unknown_property_without_a_close_one() -> None:
    [(_, _, message)] = errors("kafka:\n  zzzz: 1\n" + BODY)
    assert "Did you mean" not in message and "CONFIGURATION.md" in message


def test_every_unknown_property_is_reported() -> None:
    got = errors("kafka:\n  bootstrap.server: a\n  group.idd: b\n  linger.ms: 5\n" + BODY)
    assert [(line, column) for line, column, _ in got] == [(2, 3), (3, 3)]


def test_plugins_may_define_their_own_properties() -> None:
    cat = load_catalog_text("kafka:\n  plugin.library.paths: monitoring-interceptor\n"
                            "  confluent.monitoring.interceptor.topic: m\n" + BODY, "t.yaml")
    assert dict(cat.kafka)["confluent.monitoring.interceptor.topic"] == "m"


def test_topic_level_and_alias_properties_are_accepted() -> None:
    cat = load_catalog_text("kafka:\n  message.timeout.ms: 3000\n  acks: all\n"
                            "  compression.codec: lz4\n  sasl.mechanism: PLAIN\n"
                            "  metadata.broker.list: h:9092\n" + BODY, "t.yaml")
    assert len(cat.kafka) == 5


def _kafka_keys_in(path: Path) -> set[str]:
    """The keys of every `kafka:` block in a YAML file or in YAML embedded in Python."""
    keys: set[str] = set()
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)kafka:\s*$", line)
        if not m or (path.suffix == ".yaml" and m.group(1)):  # compose's `kafka:` service
            continue
        for following in lines[i + 1:]:
            k = re.match(rf"^{m.group(1)}\s+([A-Za-z0-9_.]+):", following)
            if not k:
                break
            keys.add(k.group(1))
    return keys


def test_properties_used_by_the_project_are_accepted() -> None:
    from materializer.devbroker import GROUP_SETTINGS

    root = Path(__file__).resolve().parents[2]
    used = set(GROUP_SETTINGS) | {"bootstrap.servers"}
    for pattern in ("docker/*.yaml", "tests/*.py", "materializer/*.py", "README.md"):
        for path in root.glob(pattern):
            used |= _kafka_keys_in(path)
    assert "bootstrap.servers" in used
    assert used <= KAFKA_PROPERTIES, used - KAFKA_PROPERTIES


if __name__ == "__main__":
    print(module_text(*installed_properties()), end="")

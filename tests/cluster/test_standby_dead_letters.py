"""A relation whose rejected records are dead-lettered has no standby copies: a standby
counts its rejected records without sending them (only the owner sends dead letters), and a
copy taking over continues from its own applied offset. A record the owner had not
dead-lettered yet (its dead-letter topic missing, or the owner killed before the batch
settled) was then passed over by the new owner, counted `dead_letter:<reason>` and never
sent (seen with two workers on the embedded broker: the owner waiting on an absent
dead-letter topic, killed; the survivor continued at the standby's offset 3 and the topic,
created afterwards, stayed empty)."""

from __future__ import annotations

from pathlib import Path

import pytest

from materializer.catalog import load_catalog_text
from materializer.errors import ConfigError

TABLE = ("  - {name: t, topic: t, columns: {id: long, n: int}, primary_key: [id], "
         "on_error: dead_letter, dead_letter_topic: t.dlq%s}\n")


def standby_of(text: str, tmp_path: Path) -> dict[str, int]:
    cat = load_catalog_text(text, str(tmp_path / "t.yaml"), {})
    return {r.name.split(".")[1]: r.standby_replicas for r in cat.relations}


@pytest.mark.parametrize("policy", [
    "on_error: dead_letter, dead_letter_topic: t.dlq",
    "null_key: dead_letter, dead_letter_topic: t.dlq",
])
def test_an_explicit_standby_of_a_dead_lettering_table_is_refused(tmp_path: Path,
                                                                  policy: str) -> None:
    text = ("tables:\n  - {name: t, topic: t, columns: {id: long, n: int}, primary_key: [id], "
            f"{policy}, standby_replicas: 1}}\n")
    with pytest.raises(ConfigError, match=r"only a partition's owner sends .* remove "
                                          r"`standby_replicas`") as e:
        load_catalog_text(text, str(tmp_path / "t.yaml"), {})
    assert "t.dlq" in str(e.value)


def test_an_explicit_standby_of_a_dead_lettering_stream_is_refused(tmp_path: Path) -> None:
    text = ("streams:\n  - {name: s, topic: s, columns: {k: string}, key: [k], "
            "on_error: dead_letter, dead_letter_topic: s.dlq, standby_replicas: 2}\n")
    with pytest.raises(ConfigError, match="remove `standby_replicas`"):
        load_catalog_text(text, str(tmp_path / "t.yaml"), {})


def test_the_ddl_property_is_refused_too(tmp_path: Path) -> None:
    text = ("sql: |\n  CREATE TABLE d (id INT PRIMARY KEY, n INT) WITH (kafka_topic='d', "
            "on_error='dead_letter', dead_letter_topic='d.dlq', standby_replicas=1);\n")
    with pytest.raises(ConfigError, match="remove `standby_replicas`"):
        load_catalog_text(text, str(tmp_path / "t.yaml"), {})


def test_the_top_level_default_leaves_dead_lettering_relations_out(tmp_path: Path) -> None:
    text = ("standby_replicas: 1\ntables:\n" + TABLE % ""
            + "  - {name: u, topic: u, columns: {id: long}, primary_key: [id], on_error: skip}\n"
            + "  - {name: v, topic: v, columns: {id: long}, primary_key: [id]}\n")
    assert standby_of(text, tmp_path) == {"t": 0, "u": 1, "v": 1}
    # a standby of 0 asked for explicitly is no standby: accepted
    assert standby_of("tables:\n" + TABLE % ", standby_replicas: 0", tmp_path) == {"t": 0}

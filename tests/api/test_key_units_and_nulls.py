"""A key asked as the producer wrote it answers that key's row on every surface: integer
time and timestamp keys count the unit their column declares (`encoding: us | ns`), and a
null key value is never sent as the text "None"."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from materializer import Client, Store
from materializer.columns import parse_type
from materializer.errors import UsageError
from materializer.specs import Column, StreamSpec, TableSpec
from materializer.store.environment import RelationMeta
from tests.support.api import SpecWriter, api_process, columns


def _unit_table(name: str, kind: str, unit: str) -> TableSpec:
    key = Column("k", dataclasses.replace(parse_type(kind)[0], encoding=unit), True)
    return TableSpec(name=name, topic=name, columns=(key, *columns({"v": "string"})),
                     key_columns=("k",), key_format="json", value_format="json")


TS_US = _unit_table("units.ts_us", "timestamp", "us")
TS_NS = _unit_table("units.ts_ns", "timestamp", "ns")
TIME_US = _unit_table("units.time_us", "time", "us")
TS_S = _unit_table("units.ts_s", "timestamp", "s")
WORDS = TableSpec(name="units.words", topic="words",
                  columns=columns({"w": "string", "n": "int", "v": "string"}, ["w", "n"]),
                  key_columns=("w", "n"), key_format="json", value_format="json")
NAMES = TableSpec(name="units.names", topic="names",
                  columns=columns({"w": "string", "v": "string"}, ["w"]),
                  key_columns=("w",), key_format="json", value_format="json")
SAYS = StreamSpec(name="units.says", topic="says", columns=columns({"w": "string", "v": "string"}),
                  key_columns=("w",), key_format="json", value_format="json")

# (key as the producer wrote it, the row's v): two keys 1000 apart, so reading one unit as
# milliseconds would land on the other's row
ROWS = {
    TS_US: [(1_000_000, "1 s"), (1_000_000_000, "1000 s")],
    TS_NS: [(1_000_000_000, "1 s"), (1_000_000_000_000, "1000 s")],
    TIME_US: [(1_000, "1 ms"), (1_000_000, "1 s")],
    TS_S: [(1, "1 s"), (1000, "1000 s")],
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("units") / "data"
    for spec, rows in ROWS.items():
        SpecWriter(str(d), spec).write([(k, {"v": v}) for k, v in rows])
    SpecWriter(str(d), WORDS).write([({"w": "None", "n": 1}, {"v": "the word None"})])
    SpecWriter(str(d), NAMES).write([("None", {"v": "the word None"})])
    SpecWriter(str(d), SAYS).write([(None, {"v": "no key"}), ("None", {"v": "the word None"})])
    return d


@pytest.fixture(scope="module")
def url(data: Path) -> Iterator[str]:
    with api_process(data) as u:
        yield u


def test_the_store_reads_integer_keys_in_the_declared_unit(data: Path) -> None:
    with Store.open(data) as store:
        for spec, rows in ROWS.items():
            t = store.table(spec.name)
            for k, v in rows:
                assert t.get(k)["v"] == v, (spec.name, k)  # type: ignore[index]
            assert [r and r["v"] for r in t.get_many([k for k, _ in rows])] == \
                [v for _, v in rows]


def test_a_key_in_ms_or_without_encoding_keeps_milliseconds() -> None:
    ident = {"key": ["a", "b", "c"], "columns": [["a", "timestamp", True], ["b", "time", True],
                                                 ["c", "decimal(10,2)", True]],
             "rules": {"encodings": {"a": "ms", "c": "base64"}}}
    assert [t.encoding for t in RelationMeta(ident, ("a", "b", "c")).key_types()] == \
        [None, None, None]  # ms is the default; decimal key text stays decimal text
    del ident["rules"]  # state written before rules were recorded
    assert [t.encoding for t in RelationMeta(ident, ("a", "b", "c")).key_types()] == \
        [None, None, None]


def test_http_and_the_client_read_integer_keys_in_the_declared_unit(url: str) -> None:
    tables = {t["name"]: t for t in httpx.get(f"{url}/tables").json()["tables"]}
    assert tables[TS_US.name]["columns"][0] == {"name": "k", "type": "timestamp",
                                                "not_null": True, "encoding": "us"}
    assert "encoding" not in tables[WORDS.name]["columns"][0]
    with Client(url, retry_for=5) as client:
        for spec, rows in ROWS.items():
            keys = [k for k, _ in rows]
            want = [v for _, v in rows]
            r = httpx.post(f"{url}/tables/{spec.name}/lookup", json={"keys": [[k] for k in keys]})
            assert [row["v"] for row in r.json()["rows"]] == want, spec.name
            t = client.table(spec.name)
            assert [t.get(k)["v"] for k in keys] == want, spec.name  # type: ignore[index]
            assert [r and r["v"] for r in t.get_many(keys)] == want, spec.name


def test_the_client_never_asks_a_null_key_as_the_text_none(data: Path, url: str) -> None:
    with Store.open(data) as store, Client(url, retry_for=5) as client:
        assert store.table(NAMES.name).get(None) is None
        names = client.table(NAMES.name)
        assert names.get("None")["v"] == "the word None"  # type: ignore[index]
        assert names.get(None) is None  # was the row of the key "None"
        assert store.table(WORDS.name).get(("None", None)) is None
        words = client.table(WORDS.name)
        assert words.get(("None", 1))["v"] == "the word None"  # type: ignore[index]
        assert words.get(("None", None)) is None  # as Store answers, not a 400
        assert [r and r["v"] for r in store.stream(SAYS.name).events(None)] == ["no key"]
        says = client.stream(SAYS.name)
        assert [r and r["v"] for r in says.events("None")] == ["the word None"]
        with pytest.raises(UsageError, match="null key value cannot be asked over HTTP"):
            says.events(None)  # not the events of the key "None"

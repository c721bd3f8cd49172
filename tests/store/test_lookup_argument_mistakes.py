"""Lookup arguments the Python API took with another meaning, or refused with another
exception than UsageError, in `Store` and in the cluster `Client` alike:
- `get_many("ab")` iterated the string and answered the rows of keys "a" and "b" (another
  key's row for the key "ab");
- a `limit` that is not a whole number (`"3"`, `2.5`, `True`) raised a TypeError from the
  comparison, reported as a prefix that "does not fit the key", or was read as 1;
- `Client.get("\\ud800")` raised UnicodeEncodeError from the URL quoting (`Store.get`
  answers UsageError naming the key), and `Client.scan(limit=0)` answered [] where
  `Store.scan` refuses it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from materializer import Client, Store
from materializer.errors import UsageError
from materializer.specs import StreamSpec, TableSpec
from tests.support.api import SpecWriter, api_process, columns

STR = TableSpec(name="public.t_str", topic="t_str",
                columns=columns({"k": "string", "v": "string"}, ["k"]),
                key_columns=("k",), key_format="json", value_format="json")
EVENTS = StreamSpec(name="public.s_str", topic="s_str",
                    columns=columns({"k": "string", "v": "string"}),
                    key_columns=("k",), key_format="json", value_format="json")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = Path(tmp_path_factory.mktemp("lookup-args")) / "data"
    SpecWriter(str(data), STR).write([("a", {"v": "A"}), ("b", {"v": "B"}), ("ab", {"v": "AB"})])
    SpecWriter(str(data), EVENTS).write([("a", {"v": str(i)}) for i in range(3)])
    return data


@pytest.fixture(scope="module")
def store(data: Path) -> Iterator[Store]:
    with Store.open(data) as s:
        yield s


@pytest.fixture(scope="module")
def client(data: Path) -> Iterator[Client]:
    with api_process(data) as url, Client(url) as c:
        yield c


def both(store: Store, client: Client) -> list[tuple[str, Any]]:
    return [("store", store), ("client", client)]


@pytest.mark.parametrize("keys", ["ab", b"ab", bytearray(b"ab")])
def test_one_key_given_to_get_many_is_refused(store: Store, client: Client, keys: Any) -> None:
    for _, api in both(store, client):
        table = api.table("t_str")
        with pytest.raises(UsageError, match="get_many takes a list of keys, got the one key"):
            table.get_many(keys)
    assert store.table("t_str").get_many(["ab"]) == [{"k": "ab", "v": "AB"}]


@pytest.mark.parametrize("limit", ["3", 2.5, True, None])
def test_a_limit_that_is_not_a_whole_number_is_a_usage_error(store: Store, client: Client,
                                                             limit: Any) -> None:
    for _, api in both(store, client):
        calls: list[Callable[[], Any]] = [lambda a=api: a.stream("s_str").events("a", limit)]
        if limit is not None:  # (scan's None: no limit)
            calls.append(lambda a=api: a.table("t_str").scan(limit=limit))
        for call in calls:
            with pytest.raises(UsageError, match=r"limit .* is not a whole number"):
                call()


@pytest.mark.parametrize("limit", [0, -1])
def test_a_limit_below_1_is_refused_by_the_client_as_by_the_store(store: Store, client: Client,
                                                                  limit: int) -> None:
    for _, api in both(store, client):
        with pytest.raises(UsageError, match=r"is below 1: ask for at least one row"):
            api.table("t_str").scan(limit=limit)
        with pytest.raises(UsageError, match=r"is below 1: ask for at least one event"):
            api.stream("s_str").events("a", limit)


@pytest.mark.parametrize("key", ["\ud800", "a\udcffb"])
def test_a_surrogate_key_is_a_usage_error_in_the_client_too(client: Client, key: str) -> None:
    t = client.table("t_str")
    for call in (lambda: t.get(key), lambda: t.get_many([key]),
                 lambda: client.stream("s_str").events(key)):
        with pytest.raises(UsageError, match=r"does not fit \(k\): a string that is not valid"):
            call()


def test_whole_number_limits_still_answer(store: Store, client: Client) -> None:
    for _, api in both(store, client):
        assert [r["k"] for r in api.table("t_str").scan(limit=2)] == ["a", "ab"]
        assert len(api.stream("s_str").events("a", 2)) == 2

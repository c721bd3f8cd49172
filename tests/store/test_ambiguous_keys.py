"""A table key held by more than one partition (its records went to two partitions of the
topic: producers that partition differently, a partition count that grew) is never
answered with one of its rows as if it were the latest: every read of it raises
AmbiguousKeyError naming the partitions (HTTP 409); other keys answer as before, and a
tombstone to the partition that should not hold it makes the key answer again."""

from __future__ import annotations

from pathlib import Path

import pytest

from materializer.api.app import create_app
from materializer.errors import AmbiguousKeyError
from materializer.specs import StreamSpec, TableSpec
from materializer.store import Store
from materializer.versions.take import take_snapshot
from tests.support.api import SpecWriter, columns

T = TableSpec(name="t", topic="t", columns=columns({"id": "long", "a": "string"}, ["id"]),
              key_columns=("id",), key_format="json", value_format="json")
S = StreamSpec(name="s", topic="s", columns=columns({"k": "string", "n": "int"}),
               key_columns=("k",), key_format="json", value_format="json")


def _held_twice(tmp_path: Path) -> SpecWriter:
    """Keys 1..5 in partition 0; key 3 also in partition 2 (a newer row)."""
    w = SpecWriter(str(tmp_path), T)
    w.write([(i, {"a": f"p0-{i}"}) for i in range(1, 6)], partition=0)
    w.write([(3, {"a": "p2-3"})], partition=2)
    return w


def test_every_read_of_a_key_held_twice_refuses_and_names_the_partitions(tmp_path: Path
                                                                         ) -> None:
    _held_twice(tmp_path)
    with Store.open(tmp_path) as store:
        view = store.table("t")
        with pytest.raises(AmbiguousKeyError) as e:
            view.get(3)
        assert "t: key 3 is held by partitions 0 and 2" in str(e.value)
        assert "tombstone" in str(e.value)
        with pytest.raises(AmbiguousKeyError):
            view.get_many([1, 3])
        with pytest.raises(AmbiguousKeyError):
            view.get_many_from([3], [0, 2])
        with pytest.raises(AmbiguousKeyError):
            view.scan()
        # the other keys answer as before, and so does a read of one partition alone
        assert view.get(2) == {"id": 2, "a": "p0-2"}
        assert view.get_many([1, 5, 9]) == [{"id": 1, "a": "p0-1"}, {"id": 5, "a": "p0-5"},
                                            None]
        assert view.get_many_from([3], [2]) == [{"id": 3, "a": "p2-3"}]
        assert [r["id"] for r in view.scan((), 2)] == [1, 2]


def test_a_page_that_ends_on_a_key_held_twice_refuses_too(tmp_path: Path) -> None:
    _held_twice(tmp_path)
    with Store.open(tmp_path) as store:
        view = store.table("t")
        with pytest.raises(AmbiguousKeyError):
            view.scan_raw((), 3)  # 1, 2, 3: the second 3 would open the next page
        page = view.scan_raw((), 3, after=view.encode_key(3))
        assert [view.key_codec.decode(k)[0] for k, _ in page] == [4, 5]


def test_a_tombstone_to_the_wrong_partition_makes_the_key_answer_again(tmp_path: Path
                                                                         ) -> None:
    w = _held_twice(tmp_path)
    w.write([(3, None)], partition=0)
    with Store.open(tmp_path) as store:
        view = store.table("t")
        assert view.get(3) == {"id": 3, "a": "p2-3"}
        assert [r["id"] for r in view.scan()] == [1, 2, 3, 4, 5]


def test_a_stream_keeps_events_of_one_key_in_several_partitions(tmp_path: Path) -> None:
    w = SpecWriter(str(tmp_path), S)
    w.write([("u1", {"n": 1})], partition=0)
    w.write([("u1", {"n": 2})], partition=1)  # the same key and offset, another partition
    with Store.open(tmp_path) as store:
        assert sorted(e["value"]["n"] for e in store.stream("s").scan()) == [1, 2]


def test_a_diff_through_a_key_held_twice_refuses(tmp_path: Path) -> None:
    w = SpecWriter(str(tmp_path), T)
    w.write([(1, {"a": "x"}), (3, {"a": "x"})], partition=0)
    take_snapshot(tmp_path, "A")
    w.write([(3, {"a": "y"})], partition=2)
    with Store.open(tmp_path) as store, pytest.raises(AmbiguousKeyError) as e:
        list(store.table("t").diff("A"))
    assert "held by partitions 0 and 2" in str(e.value)


def test_http_answers_409_naming_the_partitions(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    _held_twice(tmp_path)
    with TestClient(create_app(str(tmp_path), None)) as client:
        for r in (client.get("/tables/t/rows/3"),
                  client.post("/tables/t/lookup", json={"keys": [[1], [3]]}),
                  client.get("/tables/t/rows")):
            assert r.status_code == 409, r.text
            assert "held by partitions 0 and 2" in r.json()["detail"]
        assert client.get("/tables/t/rows/2").json() == {"id": 2, "a": "p0-2"}


def test_cli_get_of_a_key_held_twice_exits_4_not_the_1_of_no_row(tmp_path: Path) -> None:
    """Exit 1 is "no row": a script would have taken the key for absent."""
    import dataclasses

    from tests.support.workers import run_cli

    w = SpecWriter(str(tmp_path / "data"), dataclasses.replace(T, name="public.t"))
    w.write([(i, {"a": f"p0-{i}"}) for i in range(1, 6)], partition=0)
    w.write([(3, {"a": "p2-3"})], partition=2)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"kafka: {{bootstrap.servers: '127.0.0.1:9'}}\n"
                   f"store: {{path: '{tmp_path / 'data'}'}}\n"
                   "tables:\n  - name: t\n    topic: t\n    columns: {id: long, a: string}\n"
                   "    primary_key: [id]\n    key_format: json\n    value_format: json\n")
    held_twice = run_cli("get", str(cfg), "t", "3")
    assert held_twice.returncode == 4, held_twice.stderr
    assert "more than one" in held_twice.stderr and held_twice.stdout == ""
    assert run_cli("get", str(cfg), "t", "9").returncode == 1  # no row
    assert run_cli("get", str(cfg), "t", "2").returncode == 0

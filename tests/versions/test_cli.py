"""The versions commands as real processes: snapshot, snapshots, --as-of, diff, --drop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from materializer.cli import main
from materializer.store import Store
from materializer.versions.take import take_snapshot
from tests.support.api import CLICKS, USERS, SpecWriter, build_data_dir, user_row, user_row_json
from tests.support.workers import run_cli

CONFIG = """\
store:
  path: ./data
tables:
  - name: users
    topic: users
    columns: {id: int, name: string, score: double, born: date, seen: timestamp,
              tags: "array<string>", blob: bytes, version: long, check: string}
    primary_key: [id]
    changes: {topic: users-changes, columns: true}
streams:
  - name: clicks
    topic: clicks
    columns: {user_id: string, url: string, n: long}
    key: [user_id]
"""


def writer(data: Path, spec: Any) -> SpecWriter:
    w = SpecWriter(str(data), spec)
    w.offsets = dict(w.rel.next_offsets)
    return w


@pytest.fixture
def config(tmp_path: Path) -> Path:
    build_data_dir(tmp_path / "data", n_users=30, partitions=3)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG)
    return cfg


def lines(text: str) -> list[Any]:
    return [json.loads(x) for x in text.splitlines()]


def test_snapshot_list_as_of_and_drop(config: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    r = run_cli("snapshot", str(config), "A")
    assert r.returncode == 0, r.stderr
    assert "snapshot A taken" in r.stdout and "public.users: 30 rows, offsets 0:10 1:10 2:10" \
        in r.stdout
    writer(config.parent / "data", USERS).write([(1, None), (4, user_row(4, 3))], partition=1)
    r = run_cli("snapshot", str(config), "B", "--tables", "users")
    assert r.returncode == 0, r.stderr
    r = run_cli("snapshots", str(config))
    assert r.returncode == 0, r.stderr
    head, *rows = r.stdout.splitlines()
    assert head.split() == ["NAME", "CREATED", "TAKEN", "TABLE", "ROWS", "OFFSETS", "BYTES"]
    assert [x.split()[0] for x in rows] == ["A", "A", "A", "A", "B"]
    assert rows[-1].split()[2:7] == ["manual", "public.users", "29", "0:10", "1:12"]
    listed = lines(run_cli("snapshots", str(config), "--json").stdout)
    assert [m["name"] for m in listed] == ["A", "B"]
    assert listed[1]["relations"]["public.users"]["offsets"] == {"0": 10, "1": 12, "2": 10}
    assert listed[1]["complete"] is False and listed[0]["complete"] is True

    r = run_cli("get", str(config), "users", "1", "--as-of", "A")
    assert r.returncode == 0 and json.loads(r.stdout) == user_row_json(1)
    r = run_cli("get", str(config), "users", "1", "--as-of", "B")
    assert r.returncode == 1 and "no row for key [1] as of snapshot B" in r.stderr
    r = run_cli("scan", str(config), "users", "--as-of", "B", "--limit", "4")
    assert [x["id"] for x in lines(r.stdout)] == [0, 2, 3, 4]
    assert lines(r.stdout)[3]["check"] == "4:3"

    assert main(["snapshot", str(config), "A"]) == 1  # errors, in process
    assert "exists already" in capsys.readouterr().err
    assert main(["snapshot", str(config)]) == 2
    assert "--drop NAME" in capsys.readouterr().err
    r = run_cli("snapshot", str(config), "--drop", "A")
    assert r.returncode == 0 and "snapshot A dropped" in r.stdout
    r = run_cli("get", str(config), "users", "1", "--as-of", "A")
    assert r.returncode == 1 and "no snapshot named 'A' (snapshots: B)" in r.stderr


def test_diff_as_json_lines_table_and_events(config: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    data = config.parent / "data"
    take_snapshot(data, "A")
    writer(data, USERS).write([(3, None), (6, user_row(6, 1)), (300, user_row(300))])
    writer(data, CLICKS).write([("u9", {"url": "/z", "n": 1})])

    r = run_cli("diff", str(config), "users", "A")
    assert r.returncode == 0, r.stderr
    got = lines(r.stdout)
    assert [(e["diff_type"], e["key"]) for e in got] == [("removed", [3]), ("modified", [6]),
                                                         ("added", [300])]
    assert got[1]["changed"] == ["version", "check"]
    assert got[1]["from"] == user_row_json(6) and got[1]["to"] == user_row_json(6, 1)

    r = run_cli("diff", str(config), "users", "A", "--format", "table")
    assert r.returncode == 0, r.stderr
    head, *rows = r.stdout.splitlines()
    assert head.split()[:2] == ["from_id", "from_name"] and head.split()[-1] == "diff_type"
    assert "to_check" in head.split()
    assert [x.split()[-1] for x in rows] == ["removed", "modified", "added"]

    r = run_cli("diff", str(config), "clicks", "A", "--format", "table")
    assert r.stdout.splitlines()[1].split() == ["added", "0", "7", "u9", "/z", "1"]

    # the events catch a copy of A up with the live table
    r = run_cli("diff", str(config), "users", "A", "--as-events")
    assert r.returncode == 0, r.stderr
    events = lines(r.stdout)
    assert [e["value"] and e["value"]["op"] for e in events] == ["d", None, "u", "c"]
    assert events[2]["value"]["changed"] == ["version", "check"]  # changes: {columns: true}
    with Store.open(data) as s:
        copy = {row["id"]: row for row in s.table("users", as_of="A").scan(json_form=True)}
        for e in events:
            if e["value"] is None:
                continue
            key = e["key"]["id"]
            if e["value"]["op"] == "d":
                del copy[key]
            else:
                copy[key] = e["value"]["after"]
        assert copy == {row["id"]: row for row in s.table("users").scan(json_form=True)}

    assert main(["diff", str(config), "clicks", "A", "--as-events"]) == 2  # in process
    assert "is a stream" in capsys.readouterr().err
    assert main(["diff", str(config), "users", "Z"]) == 1
    assert "no snapshot named 'Z' (snapshots: A)" in capsys.readouterr().err


@pytest.mark.parametrize(("declared", "said"), [
    ("id: string, name: string, score: double", "key (id int) is declared as (id string)"),
    ("id: int, name: string, score: string", "column score double is declared as string")])
def test_as_events_refuses_a_declaration_that_retyped_the_rows(
        config: Path, capsys: pytest.CaptureFixture[str], declared: str, said: str) -> None:
    """--as-events encodes the rows by the declaration: one whose key or column types differ
    from the stored rows' (changed since, not rebuilt yet, or an old snapshot's) is refused,
    not a traceback (a key) or events whose values do not fit their schema (a column)."""
    data = config.parent / "data"
    take_snapshot(data, "A")
    writer(data, USERS).write([(6, user_row(6, 1))], partition=0)
    retyped = config.parent / "retyped.yaml"
    retyped.write_text(CONFIG.replace("id: int, name: string, score: double", declared))
    assert main(["diff", str(retyped), "users", "A", "--as-events"]) == 2
    err = capsys.readouterr().err
    assert said in err and "diff with the one the rows were written with" in err, err
    assert main(["diff", str(config), "users", "A", "--as-events"]) == 0  # as stored: fine


def test_as_events_refuses_before_images_of_another_type(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Across a rebuild that retyped a column, the live rows fit the declaration but the
    snapshot's (the before images) do not: they were encoded in their old types under the
    new schema (`"score": 1.5` in a string column). Refused, naming the version."""
    import dataclasses

    from materializer.columns import parse_type
    from materializer.store import drop_relation

    data = config.parent / "data"
    take_snapshot(data, "A")
    drop_relation(data, USERS.name)  # rebuilt with score as a string
    retyped = dataclasses.replace(USERS, columns=tuple(
        dataclasses.replace(c, type=parse_type("string")[0]) if c.name == "score" else c
        for c in USERS.columns))
    SpecWriter(str(data), retyped).write([(6, {**user_row(6, 1), "score": "high"})])
    declared = config.parent / "retyped.yaml"
    declared.write_text(CONFIG.replace("score: double", "score: string"))
    assert main(["diff", str(declared), "users", "A", "--as-events"]) == 2
    err = capsys.readouterr().err
    assert "'A': column score double is declared as string" in err, err


def test_as_events_refuses_to_drop_columns_the_from_version_holds(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A diff from a version with a column (added by `add-columns`) to one without it: the
    events are encoded in TO's columns, and the FROM rows' values there were left out of
    the before images (`"extra": "E2"` dropped, probe h77). Refused, naming the column."""
    import dataclasses

    from materializer.columns import parse_type
    from materializer.ingest.relation import open_relation
    from materializer.specs import Column

    data = config.parent / "data"
    take_snapshot(data, "A")
    wider = dataclasses.replace(USERS, columns=(*USERS.columns,
                                                Column("extra", parse_type("string")[0])))
    open_relation(wider, data, map_size=1 << 26, add_columns=True)
    writer(data, wider).write([(6, {**user_row(6, 1), "extra": "E2"})])
    take_snapshot(data, "B")
    declared = config.parent / "wider.yaml"
    declared.write_text(CONFIG.replace("check: string}", "check: string, extra: string}"))
    assert main(["diff", str(declared), "users", "B", "A", "--as-events"]) == 2
    err = capsys.readouterr().err
    assert "'B' holds column(s) extra that 'A' does not" in err, err
    assert main(["diff", str(declared), "users", "A", "B", "--as-events"]) == 0
    events = lines(capsys.readouterr().out)
    assert [e["value"]["after"]["extra"] for e in events
            if e["value"] and e["value"]["after"]] == ["E2"]

"""A declaration that changed against existing local state: what decides the rows held
(columns, key, formats, merge rules, input encodings) is refused with the change named
and `rebuild` as the fix; what does not (NOT NULL dropped, error policies, a nullable column
added before any record was applied) is taken. A nullable column added over applied records
is refused (they would read null where their records carry a value) unless
`materializer add-columns` takes it. Real relation files, no broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from materializer.catalog.load import load_catalog_text
from materializer.errors import SchemaChangedError
from materializer.ingest.relation import open_relation
from materializer.specs import RelationSpec, storage_identity

BASE = "{id: int, name: string, n: int}"


def spec(tmp: Path, columns: str = BASE, extra: str = "") -> RelationSpec:
    text = ("tables:\n  - name: t\n    topic: t\n"
            f"    columns: {columns}\n    primary_key: [id]\n{extra}")
    return load_catalog_text(text, str(tmp / "t.yaml")).relations[0]


@pytest.mark.parametrize(("before", "after", "said"), [
    ((BASE, ""), (BASE, "    on_existing: ignore\n"), "on_existing changed"),
    ((BASE, "    on_existing: ignore\n"), (BASE, ""), "on_existing changed"),
    ((BASE, "    partial_update: [n]\n"), (BASE, ""), "partial_update changed"),
    ((BASE, ""), (BASE, "    on_existing: versioned\n    version_column: n\n"),
     "on_existing changed"),
    (("{id: int, ts: {type: timestamp, encoding: us}}", ""), ("{id: int, ts: timestamp}", ""),
     "column 'ts' changed its encoding from us to the default"),
    (("{id: int, name: string}", ""), ("{id: int, name: 'string not null'}", ""),
     "column 'name' was made NOT NULL"),
])
def test_a_change_that_decides_the_rows_is_refused(tmp_path: Path, before: tuple[str, str],
                                                   after: tuple[str, str], said: str) -> None:
    data = tmp_path / "data"
    open_relation(spec(tmp_path, *before), data)
    with pytest.raises(SchemaChangedError, match=said) as e:
        open_relation(spec(tmp_path, *after), data)
    assert "materializer rebuild CONFIG public.t" in str(e.value)


def stream(tmp: Path, extra: str = "") -> RelationSpec:
    text = ("streams:\n  - name: s\n    topic: s\n"
            f"    columns: {{id: int, at: long, v: string}}\n    key: [id]\n{extra}")
    return load_catalog_text(text, str(tmp / "t.yaml")).relations[0]


@pytest.mark.parametrize(("before", "after"), [
    ("", "    timestamp_column: at\n"), ("    timestamp_column: at\n", "")])
def test_a_stream_whose_event_time_changed_is_refused(tmp_path: Path, before: str,
                                                       after: str) -> None:
    """Events are stored with their event time and served newest first by it: events held
    under the record timestamps, mixed with new ones under the column, are in an order no
    replay gives (the newest served was not the newest by either rule)."""
    data = tmp_path / "data"
    open_relation(stream(tmp_path, before), data)
    with pytest.raises(SchemaChangedError, match="timestamp_column changed") as e:
        open_relation(stream(tmp_path, after), data)
    assert "materializer rebuild CONFIG public.s" in str(e.value)


@pytest.mark.parametrize(("before", "after"), [
    (("{id: int, name: 'string not null'}", ""), ("{id: int, name: string}", "")),
    ((BASE, ""), (BASE, "    on_error: skip\n")),
])
def test_a_change_that_keeps_the_rows_is_taken(tmp_path: Path, before: tuple[str, str],
                                               after: tuple[str, str]) -> None:
    data = tmp_path / "data"
    open_relation(spec(tmp_path, *before), data)
    open_relation(spec(tmp_path, *after), data)


def test_state_recorded_before_the_rules_were_takes_them_and_records_them(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    old = spec(tmp_path)
    rel = open_relation(old, data)
    legacy = {k: v for k, v in storage_identity(old).items() if k != "rules"}
    rel.writer.write_meta(legacy, list(old.column_names))
    ignoring = spec(tmp_path, BASE, "    on_existing: ignore\n")
    open_relation(ignoring, data)  # nothing recorded to compare with: taken, recorded
    with pytest.raises(SchemaChangedError, match="on_existing changed"):
        open_relation(old, data)


def test_get_and_scan_refuse_a_reordered_key_instead_of_reading_another_row(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`get CONFIG t p q` reads the values in the declared key's order: with the key
    declared (b, a) over state built for (a, b) it answered the row a=p, b=q, not the row
    b=p, a=q asked for (run refuses that declaration until a rebuild; get did not)."""
    from materializer.testing import FakeRecord
    from tests.support.api import cli_json

    def text(key: str) -> str:
        return (f"store:\n  path: {tmp_path / 'data'}\ntables:\n  - name: t\n    topic: t\n"
                f"    columns: {{a: string, b: string, v: string}}\n    primary_key: {key}\n")
    built = load_catalog_text(text("[a, b]"), str(tmp_path / "a.yaml")).relations[0]
    rel = open_relation(built, tmp_path / "data", map_size=1 << 24)
    rel.apply({0: [FakeRecord(b'{"a": "p", "b": "q"}', b'{"v": "a=p b=q"}', 0),
                   FakeRecord(b'{"a": "q", "b": "p"}', b'{"v": "a=q b=p"}', 1)]})
    del rel
    same, moved = tmp_path / "same.yaml", tmp_path / "moved.yaml"
    same.write_text(text("[a, b]"))
    moved.write_text(text("[b, a]"))
    code, rows, _ = cli_json(capsys, "get", str(same), "t", "p", "q")
    assert code == 0 and [r["v"] for r in rows] == ["a=p b=q"]
    for argv in (("get", str(moved), "t", "p", "q"), ("scan", str(moved), "t", "--prefix", "p")):
        code, rows, err = cli_json(capsys, *argv)
        assert code != 0 and rows == [], argv
        assert "key (a string, b string) is declared as (b string, a string)" in err
        assert "materializer rebuild" in err


def test_get_and_scan_url_refuse_a_key_the_workers_do_not_serve(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`get --url` read the key values in the file's key order and sent them as the
    workers' key: a file whose key differs from what the workers run asked for another
    key (with two columns of one type, another row)."""
    from tests.support.api import api_process, build_data_dir, cli_json

    build_data_dir(tmp_path / "data", n_users=3)

    def config(key: str) -> Path:
        path = tmp_path / f"{key.strip('[]').replace(', ', '-')}.yaml"
        path.write_text(f"store: {{path: '{tmp_path / 'data'}'}}\ntables:\n"
                        "  - name: shop.orders\n    topic: orders\n"
                        "    columns: {customer_id: int, order_id: long, total: 'decimal(10,2)',"
                        f" note: string}}\n    primary_key: {key}\n")
        return path

    with api_process(tmp_path / "data") as url:
        code, rows, err = cli_json(capsys, "get", str(config("[customer_id, order_id]")),
                                   "shop.orders", "7", "1001", "--url", url)
        assert code == 0 and rows[0]["note"] == "7/1001", err
        moved = str(config("[order_id, customer_id]"))
        for argv in (("get", moved, "shop.orders", "1001", "7", "--url", url),
                     ("scan", moved, "shop.orders", "--url", url)):
            code, rows, err = cli_json(capsys, *argv)
            assert code == 2 and rows == [], argv
            assert ("key (customer_id int, order_id long) is declared as (order_id long, "
                    "customer_id int)") in err and url in err


def test_a_column_added_over_applied_records_is_refused_until_rebuild_or_add_columns(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Rows applied without a column read null in it: `{"id": 1, "extra": "x"}` applied
    before `extra` was declared answered extra = null although its record carries "x"."""
    from materializer.testing import FakeRecord
    from tests.support.api import cli_json

    data = tmp_path / "data"
    rel = open_relation(spec(tmp_path), data, map_size=1 << 24)
    rel.apply({0: [FakeRecord(b"1", b'{"id": 1, "name": "a", "extra": "x"}', 0)]})
    del rel
    wider = "{id: int, name: string, n: int, extra: string}"
    with pytest.raises(SchemaChangedError, match="column.s. 'extra' were added") as e:
        open_relation(spec(tmp_path, wider), data)
    assert "materializer rebuild CONFIG public.t" in str(e.value)
    assert "materializer add-columns CONFIG public.t" in str(e.value)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"store: {{path: '{data}'}}\ntables:\n  - name: t\n    topic: t\n"
                   f"    columns: {wider}\n    primary_key: [id]\n")
    from materializer.cli import main

    assert main(["add-columns", str(cfg), "t"]) == 0
    assert "column(s) extra added" in capsys.readouterr().out
    rel = open_relation(spec(tmp_path, wider), data)  # taken: the row reads null in it
    assert rel.applier.layout[-1] == "extra"
    code, rows, _ = cli_json(capsys, "get", str(cfg), "t", "1")
    assert code == 0 and rows == [{"id": 1, "name": "a", "n": None, "extra": None}]
    assert main(["add-columns", str(cfg), "t"]) == 0
    assert "no column to add" in capsys.readouterr().out


def test_a_column_added_before_any_record_was_applied_is_taken(tmp_path: Path) -> None:
    data = tmp_path / "data"
    open_relation(spec(tmp_path), data)
    rel = open_relation(spec(tmp_path, "{id: int, name: string, n: int, extra: string}"), data)
    assert rel.applier.layout[-1] == "extra"

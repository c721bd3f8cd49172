"""`materializer add-columns` says which columns it took, also of a relation that applied no
record yet (which takes added nullable columns at any open): it answered "no column to
add (the local state has every declared column)" while it had just added them. Real
relation files, no broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from materializer.cli import main
from materializer.ingest.relation import open_relation
from materializer.store import RelationWriter
from tests.ingest.test_declaration_changes import spec


def test_add_columns_names_the_columns_it_took_before_any_record(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    open_relation(spec(tmp_path), data, map_size=1 << 24)  # opened, nothing applied
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"store: {{path: '{data}'}}\ntables:\n  - name: t\n    topic: t\n"
                   "    columns: {id: int, name: string, n: int, extra: string}\n"
                   "    primary_key: [id]\n")
    assert main(["add-columns", str(cfg), "t"]) == 0
    assert "public.t: column(s) extra added" in capsys.readouterr().out
    meta = RelationWriter(data, "public.t", 1 << 24).meta()
    assert meta is not None and meta.layout[-1] == "extra"
    assert main(["add-columns", str(cfg), "t"]) == 0
    assert "no column to add" in capsys.readouterr().out


def test_add_columns_takes_a_streams_columns(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from materializer.testing import FakeRecord

    data = tmp_path / "data"
    text = ("store: {path: '%s'}\nstreams:\n  - name: s\n    topic: s\n"
            "    columns: {id: int, v: string%s}\n    key: [id]\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text % (data, ""))
    from materializer.catalog.load import load_catalog

    rel = open_relation(load_catalog(str(cfg)).relations[0], data, map_size=1 << 24)
    rel.apply({0: [FakeRecord(b"1", b'{"id": 1, "v": "a"}', 0)]})
    del rel
    cfg.write_text(text % (data, ", extra: string"))
    assert main(["add-columns", str(cfg), "s"]) == 0
    assert "public.s: column(s) extra added" in capsys.readouterr().out

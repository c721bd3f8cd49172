"""`materializer status` (report.status_rows) lists every partition of a topic: one whose
end offset gave no answer (its leader away) is a row with END and LAG unknown and a
sentence that makes the command exit 1, never left out (a table would look whole)."""

from __future__ import annotations

from pathlib import Path

import pytest

import connectors.kafka_admin as kafka_admin
from materializer.catalog import load_catalog
from materializer.report import status_rows
from materializer.specs import Catalog

BODY = """\
kafka:
  bootstrap.servers: 127.0.0.1:1
store:
  path: {store}
tables:
  - name: shop.users
    topic: users
    columns: {{id: long, name: string}}
    primary_key: [id]
    key_format: long
"""


def _catalog(tmp_path: Path) -> Catalog:
    cfg = tmp_path / "t.yaml"
    cfg.write_text(BODY.format(store=tmp_path / "data"))
    return load_catalog(str(cfg))


def test_a_partition_without_an_end_answer_is_listed_unknown_and_flagged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_admin, "watermarks", lambda *a, **k: {0: (0, 5), 2: (0, 7)})
    monkeypatch.setattr(kafka_admin, "partition_count", lambda *a, **k: 3)
    problems: list[str] = []
    missing: list[str] = []
    rows = status_rows(_catalog(tmp_path), problems, missing)
    assert [(r["partition"], r["end_offset"], r["lag"]) for r in rows] == [
        (0, 5, 5), (1, None, None), (2, 7, 7)]
    assert problems == []
    assert len(missing) == 1 and "partition(s) 1 of topic users" in missing[0], missing


def test_every_partition_answering_flags_nothing(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_admin, "watermarks", lambda *a, **k: {0: (0, 0), 1: (0, 0)})
    monkeypatch.setattr(kafka_admin, "partition_count", lambda *a, **k: 2)
    missing: list[str] = []
    rows = status_rows(_catalog(tmp_path), [], missing)
    assert [(r["partition"], r["lag"]) for r in rows] == [(0, 0), (1, 0)]
    assert missing == []

"""A relation the store keeps but the configuration `run` last started with no longer
declares (renamed, removed) stopped following its topic: readers refuse it, naming why,
rather than serve its last rows as current. Declared again, it is read again."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from materializer.api.app import create_app
from materializer.catalog.load import load_catalog_text
from materializer.errors import NotFound
from materializer.ingest.worker import open_relations
from materializer.specs import TableSpec
from materializer.store import Store
from tests.support.api import SpecWriter, columns

USERS = TableSpec(name="public.users", topic="t", columns=columns({"id": "int", "v": "string"},
                                                                  ["id"]),
                  key_columns=("id",), key_format="json", value_format="json")


def declare(tmp: Path, name: str) -> None:
    """What `run` does at start with a configuration declaring one table `name` on t."""
    text = (f"store:\n  path: {tmp / 'data'}\ntables:\n  - name: {name}\n    topic: t\n"
            "    columns: {id: int, v: string}\n    primary_key: [id]\n")
    open_relations(load_catalog_text(text, str(tmp / "t.yaml")), None)


def test_a_relation_no_longer_declared_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    SpecWriter(str(data), USERS).write([(1, {"v": "a"})])
    with Store.open(data) as store:  # no worker recorded anything yet: read as it is
        assert store.table("users").get(1) == {"id": 1, "v": "a"}
    declare(tmp_path, "customers")
    with Store.open(data) as store, pytest.raises(NotFound, match="not declared"):
        store.table("users")
    with TestClient(create_app(str(data), None)) as client:
        assert client.get("/tables/users/rows/1").status_code == 404
        assert [t["name"] for t in client.get("/tables").json()["tables"]] == \
            ["public.customers"]
    declare(tmp_path, "users")
    with Store.open(data) as store:
        assert store.table("users").get(1) == {"id": 1, "v": "a"}

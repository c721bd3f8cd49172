"""`/openapi.json` lists `?stale=ok` on the two lookups that honour it (README "A cluster
of workers"): a client generated from the document can ask for a standby's copy."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from materializer.api.app import create_app


def test_the_key_lookups_document_stale(tmp_path: Path) -> None:
    (tmp_path / "relations").mkdir()
    with TestClient(create_app(str(tmp_path), None)) as c:
        paths = c.get("/openapi.json").json()["paths"]
    for path, op in (("/tables/{table}/rows/{key}", "get"),
                     ("/tables/{table}/lookup", "post")):
        names = {p["name"] for p in paths[path][op].get("parameters", [])}
        assert {"stale", "as_of"} <= names, (path, names)
    scan = {p["name"] for p in paths["/tables/{table}/rows"]["get"]["parameters"]}
    assert "stale" not in scan  # scans answer 503 until the owners are back

"""Every error answer the OpenAPI description lists states its JSON body, and the answers
have that body.

The versions endpoints (`/snapshots`, `DELETE /snapshots/{name}`, the diffs) listed their
400, 401, 404, 408, 409, 413 and 503 with a description only: a client generated from the
document (or a schema-conformance fuzzer) knew nothing of the `{"detail": ...}` they answer,
nor of the `snapshots` list a 404 for a missing snapshot carries. Each now names
`ErrorBody`, which lists `snapshots` as optional."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():  # starlette suggests httpx2; httpx is what is installed
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from materializer.api.app import create_app
from materializer.versions.take import take_snapshot
from tests.support.api import build_data_dir

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module", params=[None, "tok"], ids=["no-token", "token"])
def client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[TestClient]:
    data: Path = tmp_path_factory.mktemp("openapi-errors") / "data"
    build_data_dir(data, n_users=5)
    take_snapshot(data, "s1")
    headers = {"Authorization": "Bearer tok"} if request.param else {}
    with TestClient(create_app(str(data), request.param), headers=headers) as c:
        yield c


def _error_schema(doc: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any] | None:
    schema = answer.get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return None
    ref = schema.get("$ref", "")
    return doc["components"]["schemas"].get(ref.rsplit("/", 1)[-1]) if ref else schema


def test_every_error_answer_states_its_json_body(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    missing = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for code, answer in op["responses"].items():
                if code.startswith("2"):
                    continue
                schema = _error_schema(doc, answer)
                if schema is None:
                    missing.append(f"{method.upper()} {path} {code}")
    assert not missing, missing


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/tables/public.users/diff?from=nope", 404),
    ("GET", "/streams/public.clicks/diff?from=nope", 404),
    ("DELETE", "/snapshots/nope", 404),
    ("GET", "/tables/public.users/diff?from=s1&after=zzz", 400),
    ("POST", "/snapshots", 400),
    ("GET", "/tables/public.users/rows/1?as_of=nope", 404),
])
def test_versions_errors_have_the_stated_body(client: TestClient, method: str, path: str,
                                              status: int) -> None:
    doc = client.get("/openapi.json").json()
    props = doc["components"]["schemas"]["ErrorBody"]["properties"]
    r = client.request(method, path, content=b"{}" if method == "POST" else None)
    assert r.status_code == status, r.text
    body = r.json()
    assert isinstance(body["detail"], str) and set(body) <= set(props), body
    if status == 404 and "nope" in path and "snapshots" in body:
        assert body["snapshots"] == ["s1"]

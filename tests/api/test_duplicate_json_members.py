"""A JSON request body naming a member twice in one object (`{"keys": [[1]], "keys":
[[2]]}`) was read as its last one, silently: the answer was to a question the client may
not have meant. Now 400 with the documented error body naming the member, at any depth, on
every endpoint that reads a JSON body (`POST /tables/{t}/lookup`, `POST /snapshots`)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

with warnings.catch_warnings():  # starlette suggests httpx2; httpx is what is installed
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from materializer.api import body as body_module
from materializer.api.app import create_app
from tests.support.api import api_process, build_data_dir, user_row_json

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    build_data_dir(tmp_path)
    with TestClient(create_app(str(tmp_path), None)) as c:
        yield c


def _detail(r: httpx.Response) -> str:
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"detail"}, body
    detail: str = body["detail"]
    return detail


@pytest.mark.parametrize(("body", "member"), [
    (b'{"keys": [[1]], "keys": [[2]]}', '"keys"'),
    (b'{"keys":[[1]],"keys":[[2]]}', '"keys"'),
    (b'{ "keys" : [[1]] ,\n "keys"\t: [[2]] }', '"keys"'),
    (b'{"keys": [[1]], "keys"\r\n : [[2]]}', '"keys"'),  # one with white space only
    (b'{"keys": [[1]], "k\\u0065ys": [[2]]}', '"keys"'),  # the same name, escaped
    (b'{"keys": [[{"a": 1, "b": 2, "a": 3}]]}', '"a"'),  # nested: the column check
    (b'{"keys": [[1]], "x": {"y": {"z": 1, "z": 2}}}', '"z"'),  # ignored member, deep
    (b'{"keys": [[1]], "\xc3\xbc": 1, "\xc3\xbc": 2}', '"\u00fc"'),
])
def test_a_lookup_body_naming_a_member_twice_is_refused(client: TestClient, body: bytes,
                                                        member: str) -> None:
    r = client.post("/tables/users/lookup", content=body,
                    headers={"content-type": "application/json"})
    detail = _detail(r)
    assert f"member {member} twice" in detail, detail


def test_a_snapshot_body_naming_a_member_twice_is_refused(client: TestClient) -> None:
    detail = _detail(client.post("/snapshots", content=b'{"name": "a", "name": "b"}'))
    assert 'member "name" twice' in detail
    detail = _detail(client.post("/snapshots",
                                 content=b'{"name": "a", "tables": ["users"], "tables": []}'))
    assert 'member "tables" twice' in detail
    assert client.get("/snapshots").json() == {"snapshots": []}  # none taken


@pytest.mark.parametrize("body", [
    b'{"keys": [[1], [2]]}',
    b'{"keys": [[1], [2]], "other": {"keys": 1, "a": [{"a": 1}, {"a": 2}]}}',
    b'{"keys": [[1]], "note": "a \\":b \\" : c"}',  # `":` inside strings, not member names
    b'{"keys": [[1]], "note": "12:00:00"}',
])
def test_bodies_without_a_member_twice_still_answer(client: TestClient, body: bytes) -> None:
    r = client.post("/tables/users/lookup", content=body)
    assert r.status_code == 200, r.text
    assert r.json()["rows"][0] == user_row_json(1)


def test_string_keys_holding_colons_and_quotes_are_not_duplicates(client: TestClient) -> None:
    body = b'{"keys": [["a", "2024-01-01", false, -1.5], ["x\\": 1, \\"y\\": 2", ' \
           b'"2024-01-01", true, 0.0]]}'
    r = client.post("/tables/tags/lookup", content=body)
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    assert rows[0] is not None and rows[1] is None


def test_not_json_is_still_said_first(client: TestClient) -> None:
    detail = _detail(client.post("/tables/users/lookup", content=b'{"keys": [[1]], "keys": '))
    assert detail.startswith("the body is not JSON")


def test_the_check_itself() -> None:
    for ok in (b"{}", b'{"keys": []}', b'{"a": 1, "b": {"a": 1}}', b'[{"a": 1}, {"a": 2}]',
               b'{"a": "\\":\\":"}'):
        body_module.refuse_duplicate_members(ok)
    with pytest.raises(body_module.BodyRefused) as e:
        body_module.refuse_duplicate_members(b'[{"a": 1}, {"b": 1, "b": 1}]')
    assert e.value.status == 400 and 'member "b" twice' in e.value.detail


def test_a_served_process_refuses_a_member_twice(tmp_path: Path) -> None:
    build_data_dir(tmp_path)
    with api_process(tmp_path) as url:
        r = httpx.post(f"{url}/tables/users/lookup", content=b'{"keys": [[1]], "keys": [[2]]}',
                       timeout=10)
        assert 'member "keys" twice' in _detail(r)
        r = httpx.post(f"{url}/tables/users/lookup", content=b'{"keys": [[2]]}', timeout=10)
        assert r.status_code == 200 and r.json() == {"rows": [user_row_json(2)]}

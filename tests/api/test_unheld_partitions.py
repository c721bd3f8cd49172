"""A store some of whose partitions are marked revoked (a rebalance gave them to another
worker, or the group session was lost while the broker was away) does not hold their rows:
answered alone (no cluster routing: `run --processes N`, `serve` beside a worker), a miss
is 503 "not known", never 404 "absent". Found by a probe: `run --processes 2` answered 404
for every key the topic held once the broker had been stopped for a session timeout."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

with warnings.catch_warnings():  # starlette suggests httpx2; httpx is what is installed
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from materializer.api.app import create_app
from tests.support.api import CLICKS, USERS, SpecWriter, api_process, build_data_dir

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def revoked_store(tmp_path: Path) -> Iterator[tuple[Path, dict[str, SpecWriter]]]:
    """30 users over 3 partitions (user i in partition i % 3), partition 1 revoked."""
    writers = build_data_dir(tmp_path, n_users=30, partitions=3)
    writers[CLICKS.name].write([("u9", {"url": "/9", "n": 9})], partition=1)
    for name in (USERS.name, CLICKS.name):
        assert writers[name].writer.set_revoked([1], True)
    yield tmp_path, writers


def _answers(get: Callable[[str], httpx.Response]) -> dict[str, int]:
    return {"held": get("/tables/users/rows/3").status_code,
            "unheld": get("/tables/users/rows/4").status_code,
            "nowhere": get("/tables/users/rows/99999").status_code}


def test_a_miss_while_partitions_are_not_held_is_503_not_absent(
        revoked_store: tuple[Path, dict[str, SpecWriter]]) -> None:
    data, writers = revoked_store
    with TestClient(create_app(str(data), None)) as c:
        assert _answers(c.get) == {"held": 200, "unheld": 503, "nowhere": 503}
        detail = c.get("/tables/users/rows/4").json()["detail"]
        assert "partitions 1 of public.users are not held" in detail
        assert c.post("/tables/users/lookup", json={"keys": [[3]]}).json()["rows"][0]["id"] == 3
        assert c.post("/tables/users/lookup", json={"keys": [[3], [4]]}).status_code == 503
        assert c.get("/tables/users/rows").status_code == 503  # a page without their rows
        assert c.get("/streams/clicks/keys/u1/events").status_code == 200  # partition 0
        assert c.get("/streams/clicks/keys/u9/events").status_code == 503
        for name in (USERS.name, CLICKS.name):  # held again: answered as before
            assert writers[name].writer.set_revoked([1], False)
        assert _answers(c.get) == {"held": 200, "unheld": 200, "nowhere": 404}
        assert c.get("/tables/users/rows").status_code == 200
        assert c.get("/streams/clicks/keys/u9/events").json()["events"][0]["n"] == 9


def test_the_api_process_fast_path_says_so_too(
        revoked_store: tuple[Path, dict[str, SpecWriter]]) -> None:
    data, _ = revoked_store
    with api_process(data) as url, httpx.Client(base_url=url, timeout=10) as h:
        assert _answers(h.get) == {"held": 200, "unheld": 503, "nowhere": 503}

"""The API beside a cluster worker that is not running (killed: its `cluster.json` aged; or
stopped: the file says so) answered every key from the store alone, its older rows as
current, while another worker had taken its partitions and applied newer rows. When the
worker knew other members, the API now routes with it owning nothing (503); a worker that
knew none (outside any cluster) is still answered from its store as it is."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from materializer.cluster.membership import now_ms, write_members_file
from materializer.cluster.record import Member
from materializer.cluster.view import ClusterView
from tests.cluster.helpers import OWN_USERS, member_record
from tests.support.api import SpecWriter, api_process
from tests.support.workers import run_cli

USERS = OWN_USERS
_member = member_record


def _file(store: Path, members: list[Member], age_ms: int = 0, stopped: bool = False) -> None:
    write_members_file(store, {"self": "a", "written_at": now_ms() - age_ms,
                               "timeout_ms": 4000, "heartbeat_ms": 300, "stopped": stopped,
                               "members": [m.to_json() for m in members]})


@pytest.mark.parametrize(("age_ms", "stopped"), [(60_000, False), (0, True),
                                                  (-3_600_000, False)])  # clock set back
def test_a_worker_not_running_that_knew_others_owns_nothing(tmp_path: Path, age_ms: int,
                                                             stopped: bool) -> None:
    old = now_ms() - age_ms
    _file(tmp_path, [_member("a", (0, 1), old), _member("b", (), old)], age_ms, stopped)
    routing = ClusterView(tmp_path).routing()
    assert routing is not None and routing.me is not None
    assert routing.owners(USERS.name) == {}


@pytest.mark.parametrize(("age_ms", "stopped"), [(60_000, False), (0, True)])
def test_a_worker_not_running_that_knew_no_other_is_standalone(tmp_path: Path, age_ms: int,
                                                                stopped: bool) -> None:
    _file(tmp_path, [_member("a", (0, 1), now_ms() - age_ms)], age_ms, stopped)
    assert ClusterView(tmp_path).routing() is None


def test_a_running_worker_routes_as_its_file_says(tmp_path: Path) -> None:
    _file(tmp_path, [_member("a", (0, 1), now_ms()), _member("b", (), now_ms())])
    routing = ClusterView(tmp_path).routing()
    assert routing is not None and set(routing.owners(USERS.name)) == {0, 1}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Path]:
    data = tmp_path / "data"
    writer = SpecWriter(str(data), USERS)
    writer.write([(i, {"name": f"v1-{i}"}) for i in range(4)], partition=0)
    writer.write([(i, {"name": f"v1-{i}"}) for i in range(4, 8)], partition=1)
    yield data


def test_the_api_answers_503_for_a_stopped_member_that_knew_others(store: Path) -> None:
    old = now_ms() - 60_000
    _file(store, [_member("a", (0, 1), old), _member("b", (), old)], age_ms=60_000)
    with api_process(store) as url:
        got = [httpx.get(f"{url}/tables/{USERS.name}/rows/{i}").status_code for i in range(8)]
        lookup = httpx.post(f"{url}/tables/{USERS.name}/lookup", json={"keys": [[1], [5]]})
    assert got == [503] * 8
    assert lookup.status_code == 503


def test_the_api_answers_from_the_store_for_a_stopped_lone_worker(store: Path) -> None:
    _file(store, [_member("a", (0, 1), now_ms())], stopped=True)
    with api_process(store) as url:
        got = [httpx.get(f"{url}/tables/{USERS.name}/rows/{i}") for i in range(8)]
    assert [(r.status_code, r.json()["name"]) for r in got] == [(200, f"v1-{i}")
                                                                for i in range(8)]


def _cli_config(store: Path) -> Path:
    cfg = store.parent / "cfg.yaml"
    cfg.write_text(f"""\
kafka: {{bootstrap.servers: '127.0.0.1:9'}}
store: {{path: '{store}'}}
default_schema: own
tables:
  - name: users
    topic: users
    columns: {{id: long, name: string}}
    primary_key: [id]
    key_format: json
    value_format: json
""")
    return cfg


@pytest.mark.parametrize(("age_ms", "stopped"), [(60_000, False), (0, True)])
def test_cli_get_and_scan_refuse_a_stopped_member_that_knew_others(
        store: Path, age_ms: int, stopped: bool) -> None:
    """`materializer get`/`scan` on such a store answered its files' older rows as current
    (exit 0); now exit 3 saying why and to ask the cluster. Snapshots (`--as-of`) are
    points in time and still answered."""
    old = now_ms() - age_ms
    _file(store, [_member("a", (0, 1), old), _member("b", (), old)], age_ms, stopped)
    cfg = _cli_config(store)
    for args in (("get", "users", "1"), ("scan", "users")):
        got = run_cli(args[0], str(cfg), *args[1:])
        assert got.returncode == 3, (args, got.stdout, got.stderr)
        assert "does not run" in got.stderr and "'b'" not in got.stderr
        assert "it knew b" in got.stderr and "--url" in got.stderr
        assert "Traceback" not in got.stderr and got.stdout == ""


def test_cli_get_answers_a_lone_stopped_worker_and_a_running_member(store: Path) -> None:
    cfg = _cli_config(store)
    _file(store, [_member("a", (0, 1), now_ms())], stopped=True)
    lone = run_cli("get", str(cfg), "users", "1")
    assert lone.returncode == 0 and json.loads(lone.stdout)["name"] == "v1-1", lone.stderr
    _file(store, [_member("a", (0, 1), now_ms()), _member("b", (), now_ms())])
    running = run_cli("get", str(cfg), "users", "5")
    assert running.returncode == 0 and json.loads(running.stdout)["name"] == "v1-5", \
        running.stderr

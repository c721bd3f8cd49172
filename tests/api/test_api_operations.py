"""The HTTP API's operational endpoints in process: health, readiness, metrics, the
listen checks, and answers the OpenAPI document lists (SPEC §7)."""

from __future__ import annotations

import json
import re
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():  # starlette suggests httpx2; httpx is what is installed
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from materializer.api.app import create_app
from materializer.api.serve import check_listen
from materializer.errors import ConfigError
from materializer.specs import ApiSpec, Catalog, is_loopback
from materializer.versions.take import take_snapshot
from tests.support.api import USERS, SpecWriter, build_data_dir, user_row

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# ------------------------------------------------------------------ health and metrics


def _status(path: Path, **over: Any) -> None:
    status = {"pid": 1, "updated_at": time.time(), "assigned": [["users", 0]],
              "partitions": [{"relation": "public.users", "topic": "users", "partition": 0,
                              "next_offset": 10, "end_offset": 12, "lag": 2}],
              "caught_up": True,
              "metrics": {"records_applied_total": 42, "records_dropped_total": {},
                          "records_rejected_total": {"public.users|skipped:decode": 1},
                          "batch_seconds": {"buckets": [[0.001, 3], [0.01, 5], [0.1, 6]],
                                            "sum": 0.25, "count": 7}}}
    status.update(over)
    (path / "worker.json").write_text(json.dumps(status))


def test_healthz_and_readyz(tmp_path: Path) -> None:
    with TestClient(create_app(str(tmp_path), None)) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["ready"] is False
        _status(tmp_path)
        assert c.get("/readyz").status_code == 200
        _status(tmp_path, caught_up=False)
        assert "not caught up" in c.get("/readyz").json()["reason"]
        _status(tmp_path, updated_at=time.time() - 30)
        assert c.get("/readyz").status_code == 503
        for junk in ("{", "[]", '{"updated_at": "x", "caught_up": true}', '{"caught_up": true}'):
            (tmp_path / "worker.json").write_text(junk)
            assert c.get("/readyz").status_code == 503
        # an empty data directory still answers
        assert c.get("/tables").json() == {"tables": []}
        assert c.get("/metrics").status_code == 200


_SAMPLE = re.compile(r'[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_]+="([^"\\]|\\.)*",?)*\})? \S+')


def test_metrics_exposition(tmp_path: Path) -> None:
    w = SpecWriter(str(tmp_path), USERS)
    w.write([(1, user_row(1)), (2, user_row(2)), (None, user_row(3))], partition=1)
    with w.writer.begin() as wb:
        wb.add_counter(1, "skipped:type_mismatch", 4)
        wb.add_counter(1, "dead_letter:malformed_json", 2)
    _status(tmp_path, partitions=[{"relation": 'we"ird\\name', "topic": "users",
                                   "partition": 1, "next_offset": 3, "end_offset": 5,
                                   "lag": 2}])
    with TestClient(create_app(str(tmp_path), None)) as c:
        c.get("/tables/users/rows/1")
        c.get("/tables/users/rows/x")
        c.post("/tables/users/lookup", json={"keys": [[1]]})
        r = c.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    for line in text.splitlines():
        assert line.startswith("# ") or _SAMPLE.fullmatch(line), line
    assert 'materializer_records_applied_total{relation="public.users",partition="1"} 2' in text
    assert ('materializer_records_dropped_total{relation="public.users",partition="1",'
            'reason="null_key"} 1') in text
    assert ('materializer_records_rejected_total{relation="public.users",partition="1",'
            'reason="type_mismatch",policy="skip"} 4') in text
    assert 'policy="dead_letter"} 2' in text
    assert 'materializer_rows{relation="public.users",partition="1"} 2' in text
    assert ('materializer_partition_lag{relation="we\\"ird\\\\name",topic="users",'
            'partition="1"} 2') in text
    assert 'materializer_batch_seconds_bucket{le="0.01"} 5' in text
    assert 'materializer_batch_seconds_bucket{le="+Inf"} 7' in text
    assert "materializer_batch_seconds_count 7" in text
    assert "materializer_worker_ready 1" in text
    assert ('materializer_api_request_seconds_count{endpoint="/tables/{table}/rows/{key}"} 2'
            in text)
    assert ('materializer_api_requests_total{endpoint="/tables/{table}/rows/{key}",code="400"} 1'
            in text)
    assert ('materializer_api_request_seconds_bucket{endpoint="/tables/{table}/lookup",'
            'le="+Inf"} 1') in text
    assert text.count("# TYPE materializer_api_request_seconds histogram") == 1


# --------------------------------------------------------------------------- security


def test_listen_checks() -> None:
    assert ApiSpec(listen="127.0.0.1:8080").host_port() == ("127.0.0.1", 8080)
    assert ApiSpec(listen="[::1]:9").host_port() == ("::1", 9)
    assert ApiSpec(listen=":8080").host_port() == ("0.0.0.0", 8080)
    for bad in ("8080", "h:99999", "h:x"):
        with pytest.raises(ConfigError):
            ApiSpec(listen=bad).host_port()
    assert is_loopback("127.0.0.2") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    assert not is_loopback("127.example.org") and is_loopback("LocalHost")
    assert ApiSpec().is_loopback() and ApiSpec(listen="[::1]:1").is_loopback()
    assert not ApiSpec(listen=":1").is_loopback() and not ApiSpec(listen="[::]:1").is_loopback()
    with pytest.raises(ConfigError, match="not host:port"):
        check_listen(Catalog(source="t", api=ApiSpec(listen="127.0.0.1:70000")), None)
    check_listen(Catalog(source="t"), None)
    check_listen(Catalog(source="t", api=ApiSpec(listen="0.0.0.0:1", token_env="T")), "tok")
    with pytest.raises(ConfigError, match=r"token.*api\.token_env"):
        check_listen(Catalog(source="t", api=ApiSpec(listen="0.0.0.0:1")), None)
    with pytest.raises(ConfigError, match="MY_TOKEN"):
        check_listen(Catalog(source="t", api=ApiSpec(listen="[::]:1", token_env="MY_TOKEN")),
                     None)


def test_every_answer_is_one_the_openapi_document_lists(tmp_path: Path) -> None:
    """Invalid input is 400 (never FastAPI's 422, which the document listed instead), the
    scan lists its 400/404/409 as the other lookups do, a diff its 409, and with a token
    every endpoint that needs it lists 401 (found by schemathesis, probe h47)."""
    writers = build_data_dir(tmp_path, n_users=6, partitions=3)
    writers[USERS.name].write([(1, user_row(1))], partition=0)  # key 1 in partitions 0 and 1
    take_snapshot(tmp_path, "A")
    writers[USERS.name].write([(1, user_row(1, 1))], partition=0)  # a diff reaches key 1
    big = b'{"name": "' + b"x" * 70000 + b'"}'
    asked = [("get", "/tables/{table}/rows", "/tables/users/rows?limit=0", None, 400),
             ("get", "/tables/{table}/rows", "/tables/nope/rows", None, 404),
             ("get", "/tables/{table}/rows", "/tables/users/rows", None, 409),
             ("get", "/tables/{table}/rows", "/tables/users/rows?as_of=B", None, 404),
             ("get", "/tables/{table}/rows/{key}", "/tables/users/rows/1?as_of=Z", None, 404),
             ("get", "/streams/{stream}/keys/{key}/events", "/streams/clicks/keys/u1/events"
              "?limit=0", None, 400),
             ("get", "/tables/{table}/diff", "/tables/users/diff?from=A&limit=0", None, 400),
             ("get", "/tables/{table}/diff", "/tables/users/diff?from=A", None, 409),
             ("delete", "/snapshots/{name}", "/snapshots/nope", None, 404),
             ("post", "/snapshots", "/snapshots", big, 413)]
    with TestClient(create_app(str(tmp_path), None)) as c:
        spec = c.get("/openapi.json").json()
        assert "422" not in json.dumps(spec["paths"])
        for method, template, url, body, status in asked:
            r = c.request(method, url, content=body)
            assert r.status_code == status, (url, r.text)
            assert str(status) in spec["paths"][template][method]["responses"], (url, status)
    with TestClient(create_app(str(tmp_path), "s3cret")) as c:
        spec = c.get("/openapi.json").json()
        for path in ("/metrics", "/cluster", "/tables"):
            assert c.get(path).status_code == 401
            assert "401" in spec["paths"][path]["get"]["responses"], path


def test_metrics_carry_the_operational_counters_and_process_figures(tmp_path: Path) -> None:
    from materializer.status import write_status

    build_data_dir(tmp_path / "data")
    write_status(tmp_path / "data", {
        "pid": 1, "updated_at": time.time(), "caught_up": True, "partitions": [],
        "metrics": {"dead_letters_total": 3, "rebalances_total": 2,
                    "registry_retries_total": 1, "outbox_backlog": {"shop.users": 5},
                    "change_events_total": {"shop.users": 40},
                    "process": {"resident_memory_bytes": 1e6, "cpu_seconds_total": 2.5}}})
    app = create_app(str(tmp_path / "data"), None)
    with TestClient(app) as client:
        text = client.get("/metrics").text
    for line in ("materializer_dead_letters_total 3", "materializer_rebalances_total 2",
                 "materializer_registry_retries_total 1",
                 'materializer_outbox_backlog{relation="shop.users"} 5',
                 'materializer_change_events_total{relation="shop.users"} 40',
                 "materializer_worker_process_cpu_seconds_total 2.5"):
        assert line in text, line
    assert "process_resident_memory_bytes" in text and "process_open_fds" in text

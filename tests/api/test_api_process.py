"""`python -m materializer serve CONFIG` as a real process: the token rules of SPEC §7."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from materializer.devbroker import free_port
from tests.support.api import USERS, SpecWriter, user_row, user_row_json, wait_serving

CONFIG = """\
kafka:
  bootstrap.servers: 127.0.0.1:1
store:
  path: {store}
api:
  listen: "{listen}"
{token_env}
tables:
  - name: public.users
    topic: users
    columns: {{id: int, name: string, score: double, born: date, seen: timestamp,
               tags: "array<string>", blob: bytes, version: long, check: string}}
    primary_key: [id]
    key_format: json
    value_format: json
"""


def _config(tmp_path: Path, listen: str, token_env: str | None) -> Path:
    store = tmp_path / "data"
    if not store.exists():
        SpecWriter(str(store), USERS).write([(i, user_row(i)) for i in range(10)])
    cfg = tmp_path / "tables.yaml"
    cfg.write_text(CONFIG.format(store=store, listen=listen,
                                 token_env=f"  token_env: {token_env}" if token_env else ""))
    return cfg


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MY_TOKEN"}
    env.update(extra)
    return env


def _refused(cfg: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "materializer", "serve", str(cfg)],
                          env=env, capture_output=True, text=True, timeout=60)


def test_public_listen_without_token_env_refuses_to_start(tmp_path: Path) -> None:
    p = _refused(_config(tmp_path, f"0.0.0.0:{free_port()}", None), _env())
    assert p.returncode != 0
    assert "token" in p.stderr


def test_public_listen_with_token_env_unset_refuses_to_start(tmp_path: Path) -> None:
    p = _refused(_config(tmp_path, f"0.0.0.0:{free_port()}", "MY_TOKEN"), _env())
    assert p.returncode == 2, p.stderr
    assert "token" in p.stderr and "MY_TOKEN" in p.stderr


@contextmanager
def _serving(cfg: Path, env: dict[str, str], port: int) -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-m", "materializer", "serve", str(cfg)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_serving(url, proc):
            exited = proc.poll() is not None
            raise AssertionError(proc.communicate()[1] if exited else "serve did not start")
        yield url
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        assert "s3cr3t" not in err, "the token must never be logged"


def test_token_is_required_with_it_set(tmp_path: Path) -> None:
    port = free_port()
    cfg = _config(tmp_path, f"0.0.0.0:{port}", "MY_TOKEN")
    with _serving(cfg, _env(MY_TOKEN="s3cr3t"), port) as url:
        assert httpx.get(f"{url}/tables/users/rows/3").status_code == 401
        assert httpx.get(f"{url}/tables/users/rows/3",
                         headers={"Authorization": "Bearer nope"}).status_code == 401
        ok = {"Authorization": "Bearer s3cr3t"}
        r = httpx.get(f"{url}/tables/users/rows/3", headers=ok)
        assert r.status_code == 200, r.text
        assert r.json() == user_row_json(3)
        assert httpx.get(f"{url}/tables", headers=ok).status_code == 200
        assert httpx.get(f"{url}/metrics").status_code == 401
        assert httpx.get(f"{url}/healthz").status_code == 200  # probes stay open


def test_loopback_without_token_serves_openly(tmp_path: Path) -> None:
    port = free_port()
    cfg = _config(tmp_path, f"127.0.0.1:{port}", None)
    with _serving(cfg, _env(), port) as url:
        r = httpx.get(f"{url}/tables/public.users/rows/9")
        assert r.status_code == 200 and r.json() == user_row_json(9)
        assert r.headers.get("server") == "materializer"  # not the HTTP server under it

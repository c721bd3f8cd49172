"""Command-line options that were taken and then ignored or unbounded, and a `serve` that
served nothing without a word (real `materializer` processes):

- `run --processes 99999999` (or `workers: 99999999`) would start that many processes:
  now a usage error past 256, before anything is created;
- `get TABLE KEY --limit 5` ignored `--limit` (it counts a stream key's events): refused;
- `serve DIR` on a directory that is no data directory served an API with no tables:
  refused (exit 1) naming it; a store with no relation yet is served with a warning;
- `get/scan --url` printed httpx's INFO line for every request (three per `get`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from materializer.catalog import load_catalog
from materializer.devbroker import free_port
from tests.support.api import SpecWriter, api_process, wait_serving
from tests.support.workers import run_cli

DECL = """\
kafka:
  bootstrap.servers: 127.0.0.1:1
store:
  path: {store}
{workers}tables:
  - name: t
    topic: t
    columns: {{id: long, v: string}}
    primary_key: [id]
    key_format: json
    value_format: json
streams:
  - name: s
    topic: s
    columns: {{id: long, v: string}}
    key: [id]
    key_format: json
    value_format: json
"""


def _config(tmp_path: Path, workers: str = "") -> Path:
    cfg = tmp_path / "t.yaml"
    cfg.write_text(DECL.format(store=tmp_path / "data", workers=workers))
    return cfg


def _filled(tmp_path: Path) -> Path:
    """The declaration, and a store holding t (keys 1-3) and 4 events of key 1 in s."""
    cfg = _config(tmp_path)
    catalog = load_catalog(str(cfg))
    table, stream = (catalog.relation(n) for n in ("t", "s"))
    SpecWriter(str(tmp_path / "data"), table).write(
        [({"id": i}, {"id": i, "v": f"v{i}"}) for i in (1, 2, 3)])
    SpecWriter(str(tmp_path / "data"), stream).write(
        [({"id": 1}, {"id": 1, "v": f"e{i}"}) for i in range(4)])
    return cfg


def test_processes_is_bounded(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    for n in ("99999999", "257", "0"):
        done = run_cli("run", str(cfg), "--no-api", "--processes", n, timeout=30)
        assert done.returncode == 2, (n, done.stderr)
        assert f"--processes: must be a number from 1 to 256 or auto, not '{n}'" in done.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was made
    big = _config(tmp_path, "workers: 99999999\n")
    done = run_cli("check", str(big))
    assert done.returncode == 2
    assert "`workers` must be at most 256, not 99999999" in done.stderr, done.stderr


def test_get_limit_is_refused_on_a_table_and_honoured_on_a_stream(tmp_path: Path) -> None:
    cfg = _filled(tmp_path)
    done = run_cli("get", str(cfg), "t", "1", "--limit", "5")
    assert done.returncode == 2 and done.stdout == "", done.stdout + done.stderr
    assert "--limit counts a stream key's events; public.t is a table" in done.stderr
    plain = run_cli("get", str(cfg), "t", "1")
    assert plain.returncode == 0 and json.loads(plain.stdout) == {"id": 1, "v": "v1"}
    two = run_cli("get", str(cfg), "s", "1", "--limit", "2")
    assert two.returncode == 0
    assert [json.loads(x)["v"] for x in two.stdout.splitlines()] == ["e3", "e2"]
    default = run_cli("get", str(cfg), "s", "1")
    assert len(default.stdout.splitlines()) == 4


def test_serve_refuses_a_directory_that_is_no_store(tmp_path: Path) -> None:
    other = tmp_path / "photos"
    other.mkdir()
    (other / "a.jpg").write_bytes(b"x")
    for folder in (other, tmp_path / "empty"):
        folder.mkdir(exist_ok=True)
        done = run_cli("serve", str(folder), "--listen", f"127.0.0.1:{free_port()}",
                       timeout=30)
        assert done.returncode == 1, done.stderr
        assert f"materializer: {folder} is not a materializer data directory" in done.stderr


def test_serve_warns_about_a_store_with_no_relation_yet(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "relations").mkdir(parents=True)
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "materializer", "serve", str(store),
                                 "--listen", f"127.0.0.1:{port}"], stderr=sink)
    try:
        assert wait_serving(f"http://127.0.0.1:{port}", proc)
    finally:
        proc.terminate()
        proc.wait(30)
    assert f"{store} holds no table or stream yet" in log.read_text()


def test_get_and_scan_url_log_no_request_lines(tmp_path: Path) -> None:
    cfg = _filled(tmp_path)
    with api_process(tmp_path / "data") as url:
        got = run_cli("get", str(cfg), "t", "2", "--url", url)
        scanned = run_cli("scan", str(cfg), "t", "--url", url)
        verbose = run_cli("get", str(cfg), "t", "2", "--url", url, "-v")
    assert got.returncode == 0 and json.loads(got.stdout) == {"id": 2, "v": "v2"}
    assert got.stderr == "", got.stderr
    assert scanned.returncode == 0 and len(scanned.stdout.splitlines()) == 3
    assert scanned.stderr == "", scanned.stderr
    assert "HTTP Request: GET" in verbose.stderr  # -v: each request, as asked

"""A bytes key column with an `encoding` (hex, base64-url-safe) is asked by its key text in
that encoding on every surface, as the producer's key was read: `Store`, the HTTP API
(path segments, `prefix=`, a JSON string in `POST .../lookup`), `Client`, and the CLI
(locally and with --url). Bytes given in Python are the key as they are; rows are served
with bytes as base64 whatever the encoding; `GET /tables` lists the encoding."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from materializer import Client, Store
from materializer.catalog import load_catalog_text
from tests.support.api import SpecWriter, api_process, cli_json

DATA = bytes([0xFB, 0xFF, 0x01, 0x02])
OTHER = b"\x00\x01"
CFG = """store:
  path: {data}
tables:
  - {{name: hx, topic: hx, columns: {{k: {{type: bytes, encoding: hex}}, v: string}},
      primary_key: [k]}}
  - {{name: us, topic: us, columns: {{k: {{type: bytes, encoding: base64-url-safe}},
      v: string}}, primary_key: [k]}}
  - {{name: pair, topic: pair, columns: {{k: {{type: bytes, encoding: hex}}, n: int,
      v: string}}, primary_key: [k, n]}}
"""
# (table, the producer's key text of DATA, of OTHER)
TEXTS = [("hx", "fbff0102", "0001"), ("us", "-_8BAg==", "AAE=")]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, str]]:
    d = Path(tmp_path_factory.mktemp("bytes-keys"))
    data = d / "data"
    cfg = d / "t.yaml"
    cfg.write_text(CFG.format(data=data))
    specs = {s.name: s for s in load_catalog_text(cfg.read_text(), str(cfg)).relations}
    for table, text, other in TEXTS:
        SpecWriter(str(data), specs[f"public.{table}"]).write(
            [(text, {"v": "data"}), (other, {"v": "other"})])
    SpecWriter(str(data), specs["public.pair"]).write(
        [({"k": "fbff0102", "n": 1}, {"v": "one"}), ({"k": "fbff0102", "n": 2}, {"v": "two"}),
         ({"k": "0001", "n": 1}, {"v": "x"})])
    with api_process(data) as url:
        yield str(cfg), data, url


def vs(rows: list[Any]) -> list[Any]:
    return [r and r["v"] for r in rows]


@pytest.mark.parametrize(("table", "text", "other"), TEXTS)
def test_the_store_reads_key_text_in_the_encoding(setup: tuple[str, Path, str], table: str,
                                                  text: str, other: str) -> None:
    _, data, _ = setup
    with Store.open(data) as store:
        t = store.table(f"public.{table}")
        assert t.get(text) == {"k": DATA, "v": "data"}
        assert t.get(DATA) == {"k": DATA, "v": "data"}  # bytes as they are
        assert vs(t.get_many([other, OTHER, text])) == ["other", "other", "data"]
        assert t.get(text, json_form=True) == {"k": "+/8BAg==", "v": "data"}  # base64 out
    with Store.open(data) as store:
        pair = store.table("public.pair")
        assert vs(pair.scan("fbff0102")) == ["one", "two"]
        assert pair.get(("fbff0102", 2)) == {"k": DATA, "n": 2, "v": "two"}


def test_the_store_refuses_text_in_another_encoding(setup: tuple[str, Path, str]) -> None:
    _, data, _ = setup
    with Store.open(data) as store, pytest.raises(Exception, match="encoding: hex"):
        store.table("public.hx").get("+/8BAg==")


@pytest.mark.parametrize(("table", "text", "other"), TEXTS)
def test_http_reads_key_text_in_the_encoding(setup: tuple[str, Path, str], table: str,
                                             text: str, other: str) -> None:
    _, _, url = setup
    tables = {t["name"]: t for t in httpx.get(f"{url}/tables").json()["tables"]}
    assert tables[f"public.{table}"]["columns"][0]["encoding"] == (
        "hex" if table == "hx" else "base64-url-safe")
    r = httpx.get(f"{url}/tables/public.{table}/rows/{text}")
    assert r.status_code == 200 and r.json() == {"k": "+/8BAg==", "v": "data"}
    r = httpx.post(f"{url}/tables/public.{table}/lookup", json={"keys": [[text], other]})
    assert vs(r.json()["rows"]) == ["data", "other"]
    if table == "hx":  # base64 text is not hex: a 400 naming the encoding, not a miss
        r = httpx.get(f"{url}/tables/public.hx/rows/%2B%2F8BAg%3D%3D")
        assert r.status_code == 400 and "encoding: hex" in r.json()["detail"]
    r = httpx.get(f"{url}/tables/public.pair/rows", params={"prefix": "fbff0102"})
    assert vs(r.json()["rows"]) == ["one", "two"]


@pytest.mark.parametrize(("table", "text", "other"), TEXTS)
def test_the_client_sends_keys_in_the_encoding(setup: tuple[str, Path, str], table: str,
                                               text: str, other: str) -> None:
    _, _, url = setup
    with Client(url, retry_for=5) as client:
        t = client.table(f"public.{table}")
        assert t.get(text) == {"k": DATA, "v": "data"}  # rows back as Python bytes
        assert t.get(DATA) == {"k": DATA, "v": "data"}
        assert t.get(text, json_form=True) == {"k": "+/8BAg==", "v": "data"}
        assert vs(t.get_many([text, OTHER, other])) == ["data", "other", "other"]
        assert vs(client.table("public.pair").scan(DATA)) == ["one", "two"]
        assert vs(client.table("public.pair").scan("fbff0102")) == ["one", "two"]


@pytest.mark.parametrize("remote", [False, True])
@pytest.mark.parametrize(("table", "text", "other"), TEXTS)
def test_the_cli_reads_key_text_in_the_encoding(setup: tuple[str, Path, str],
                                                capsys: pytest.CaptureFixture[str], table: str,
                                                text: str, other: str, remote: bool) -> None:
    cfg, _, url = setup
    where = ["--url", url] if remote else []
    code, rows, err = cli_json(capsys, "get", cfg, table, *where, "--", text)
    assert (code, rows) == (0, [{"k": "+/8BAg==", "v": "data"}]), err
    code, rows, err = cli_json(capsys, "scan", cfg, "pair", "--prefix", "fbff0102", *where)
    assert (code, vs(rows)) == (0, ["one", "two"]), err
    code, rows, err = cli_json(capsys, "get", cfg, "hx", "zz", *where)
    assert code == 2 and "encoding: hex" in err, err

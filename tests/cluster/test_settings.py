"""Per-worker settings of one shared declaration file: `${VAR:-default}` in the YAML, and the
`run`/`serve` flags `--store`, `--listen`, `--advertise` (which win over the file). (Workers
started both ways on a real cluster: tests/cluster/test_cluster.py.)"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from materializer.catalog import load_catalog_text
from materializer.cluster.settings import advertised_url, with_overrides, worker_id
from materializer.errors import ConfigError
from materializer.specs import ApiSpec

SHARED = """\
store: {path: "${STORE:-./data}"}
api: {listen: "${LISTEN:-127.0.0.1:8080}", advertise: "${ADVERTISE:-http://w1:8080}",
      token_env: TOKEN}
cluster: {worker_id: "${WORKER_ID:-}"}
tables:
  - {name: t, topic: t, columns: {id: long}, primary_key: [id]}
"""


def test_the_same_file_gives_each_worker_its_own_settings(tmp_path: Path) -> None:
    path = str(tmp_path / "t.yaml")
    a = load_catalog_text(SHARED, path, {"STORE": "/srv/a", "LISTEN": "0.0.0.0:9001",
                                         "ADVERTISE": "http://a.example:9001",
                                         "WORKER_ID": "a"})
    b = load_catalog_text(SHARED, path, {})
    assert (a.store_path, a.api.listen, a.api.advertise, a.cluster.worker_id) == \
        ("/srv/a", "0.0.0.0:9001", "http://a.example:9001", "a")
    assert (b.store_path, b.api.listen, b.api.advertise, b.cluster.worker_id) == \
        (str(tmp_path / "data"), "127.0.0.1:8080", "http://w1:8080", None)
    # an empty worker id (`${WORKER_ID:-}`) is the default one: host name and store hash
    assert worker_id(b).startswith(socket.gethostname() + "-")
    assert worker_id(b) == worker_id(load_catalog_text(SHARED, path, {}))
    assert worker_id(b) != worker_id(load_catalog_text(SHARED, path, {"STORE": "/srv/x"}))
    # an empty advertised URL (`${ADVERTISE:-}`) is the default one, from `listen`
    c = load_catalog_text(SHARED.replace("http://w1:8080", ""), path, {})
    assert c.api.advertise is None and advertised_url(c.api) == "http://127.0.0.1:8080"


def test_flags_win_over_the_file_and_are_checked(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cat = load_catalog_text(SHARED, str(tmp_path / "conf" / "t.yaml"), {})
    out = with_overrides(cat, store="rel/data", listen="127.0.0.1:9100",
                         advertise="https://w2.example:443/")
    assert out.store_path == str(tmp_path / "rel" / "data")  # relative to the cwd
    assert out.api.listen == "127.0.0.1:9100" and out.api.max_lookup_keys == 1000
    assert advertised_url(out.api) == "https://w2.example:443"
    assert with_overrides(cat) == cat
    with pytest.raises(ConfigError, match="--listen 'nope' is not host:port"):
        with_overrides(cat, listen="nope")
    with pytest.raises(ConfigError, match="--advertise ftp://x is not a URL"):
        with_overrides(cat, advertise="ftp://x")
    with pytest.raises(ConfigError, match="--store is empty"):
        with_overrides(cat, store=" ")


def test_advertised_url_defaults_from_listen() -> None:
    assert advertised_url(ApiSpec(listen="127.0.0.1:8080")) == "http://127.0.0.1:8080"
    assert advertised_url(ApiSpec(listen="[::1]:81")) == "http://[::1]:81"
    assert advertised_url(ApiSpec(listen="0.0.0.0:81")) == f"http://{socket.getfqdn()}:81"


@pytest.mark.parametrize("bad, message", [
    ("api: {advertise: 'host:80'}", "`api.advertise: host:80` is not a URL"),
    ("cluster: {worker_id: [a]}", "`cluster.worker_id` must be a single value"),
    ("api: {listen: '127.0.0.1:1', advertise: 'x'}", "`api.advertise: x` is not a URL"),
    ("cluster: {heartbeat_ms: 0}", "`cluster.heartbeat_ms` must be at least 1"),
    ("cluster: {member_timeout: 5}", "unknown key `member_timeout`"),
    ("standby_replicas: -1", "`standby_replicas` must be at least 0"),
])
def test_cluster_settings_are_checked_where_written(tmp_path: Path, bad: str, message: str
                                                    ) -> None:
    text = bad + "\ntables:\n  - {name: t, topic: t, columns: {id: long}, primary_key: [id]}\n"
    with pytest.raises(ConfigError) as e:
        load_catalog_text(text, str(tmp_path / "t.yaml"), {})
    assert message in str(e.value) and "line 1" in str(e.value.diagnostics[0])


def test_partitioner_and_standby_replicas(tmp_path: Path) -> None:
    text = """\
standby_replicas: 1
tables:
  - {name: a, topic: a, columns: {id: long}, primary_key: [id]}
  - {name: b, topic: b, columns: {id: long}, primary_key: [id], partitioner: consistent_random,
     standby_replicas: 0}
  - {name: c, topic: c, columns: {id: long}, primary_key: [id], replicated: true}
streams:
  - {name: s, topic: s, columns: {k: string}, key: [k], partitioner: unknown}
sql: |
  CREATE TABLE d (id INT PRIMARY KEY) WITH (kafka_topic='d', partitioner='consistent_random',
                                            standby_replicas=2);
"""
    cat = load_catalog_text(text, str(tmp_path / "t.yaml"), {})
    got = {r.name.split(".")[1]: (r.partitioner, r.standby_replicas) for r in cat.relations}
    assert got == {"a": ("murmur2", 1), "b": ("consistent_random", 0), "c": ("murmur2", 0),
                   "d": ("consistent_random", 2), "s": ("unknown", 1)}
    with pytest.raises(ConfigError, match="`partitioner: crc` is not valid: use one of murmur2"):
        load_catalog_text(text.replace("partitioner: unknown", "partitioner: crc"),
                          str(tmp_path / "t.yaml"), {})
    with pytest.raises(ConfigError, match="replicated .* no standby replicas"):
        load_catalog_text(text.replace("replicated: true", "replicated: true, "
                                       "standby_replicas: 1"), str(tmp_path / "t.yaml"), {})

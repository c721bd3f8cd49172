"""Secrets never reach what a person or a log collector sees (probe h84): librdkafka's own
log lines and errors, exit messages, the registry's URL errors; a client setting
librdkafka refuses is a plain message, not a traceback; a `token_env` that is unset while
the API listens on loopback is warned about.

Real processes (`materializer status`, `run`, `serve`) and the embedded broker, whose plain
listener refuses SASL: the authentication failures here are real ones.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from materializer.devbroker import DevBroker, free_port
from materializer.redact import MASK, redact
from tests.support.api import USERS, SpecWriter, user_row, wait_serving
from tests.support.workers import run_cli, unique

SECRET = "Zq8-h84-SECRET"
TABLE = """\
group: {group}
store:
  path: {store}
tables:
  - name: t
    topic: {topic}
    columns: {{id: string, v: long}}
    primary_key: [id]
    key_format: string
    value_format: json
"""


def _config(tmp_path: Path, kafka: dict[str, str], extra: str = "") -> Path:
    cfg = tmp_path / "tables.yaml"
    lines = "".join(f"  {k}: '{v}'\n" for k, v in kafka.items())
    cfg.write_text("kafka:\n" + lines + extra + TABLE.format(
        group=unique("g"), store=tmp_path / "data", topic=unique("t")))
    return cfg


def test_a_url_password_holding_at_signs_is_masked_whole() -> None:
    from materializer.redact import scrub  # noqa: PLC0415 - new with this test

    # urllib (the registry client) and browsers read the password up to the last `@`
    assert redact("url", f"http://fred:p@ss-{SECRET}@reg:8081/x") == \
        f"http://fred:{MASK}@reg:8081/x"
    assert scrub(f'failed from "http://u:{SECRET}@h@127.0.0.1:1/token": refused') == \
        f'failed from "http://u:{MASK}@127.0.0.1:1/token": refused'
    assert redact("url", "http://a:b@h1,http://h2:8081/p@x") == f"http://a:{MASK}@h1,http://h2:8081/p@x"


@pytest.mark.integration
@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize("case", ["oidc-url", "unsecured-jwt-config"])
def test_librdkafka_authentication_failures_show_no_secret(
        session_broker: DevBroker, tmp_path: Path, case: str, log_format: str) -> None:
    """librdkafka quotes the OIDC token endpoint with its password when it cannot fetch a
    token, and the part of `sasl.oauthbearer.config` it cannot read: both reached stderr
    through its logger and error callback."""
    kafka = {"bootstrap.servers": session_broker.bootstrap,
             "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "OAUTHBEARER"}
    if case == "oidc-url":
        kafka.update({"sasl.oauthbearer.method": "oidc", "sasl.oauthbearer.client.id": "me",
                      "sasl.oauthbearer.client.secret": SECRET + "-cs",
                      # a port nothing listens on: the token request fails at once
                      "sasl.oauthbearer.token.endpoint.url":
                          f"http://me:{SECRET}@127.0.0.1:{free_port()}/token"})
        said = "Failed to retrieve OIDC token"
    else:
        kafka.update({"enable.sasl.oauthbearer.unsecure.jwt": "true",
                      "sasl.oauthbearer.config": f"principal=me {SECRET}=1"})
        said = "Unrecognized sasl.oauthbearer.config"
    done = run_cli("status", str(_config(tmp_path, kafka)), "--log-format", log_format,
                   timeout=90)
    assert said in done.stderr, done.stderr[-3000:]  # the failure was reported...
    assert SECRET not in done.stdout + done.stderr   # ...without the secret
    assert MASK in done.stderr


def test_registry_url_errors_show_no_password(tmp_path: Path) -> None:
    """A registry URL that is no http(s) URL, or that urllib cannot read (a port past
    65535), was refused quoting it whole, password included, or crashed with a traceback."""
    for url in (f"ftp://fred:{SECRET}@reg:8081", f"https://fred:{SECRET}@reg:99999"):
        cfg = tmp_path / "tables.yaml"
        cfg.write_text(
            "kafka:\n  bootstrap.servers: 127.0.0.1:1\n"
            f"schema_registry:\n  url: '{url}'\n  basic.auth.user.info: 'fred:{SECRET}'\n"
            + TABLE.format(group="g", store=tmp_path / "data", topic="t")
            .replace("value_format: json", "value_format: avro"))
        done = run_cli("run", str(cfg), "--no-api", timeout=60)
        assert done.returncode == 2, done.stderr[-3000:]
        assert "Traceback" not in done.stderr
        assert "schema_registry.url" in done.stderr and f"fred:{MASK}@reg" in done.stderr
        assert SECRET not in done.stdout + done.stderr


def test_a_setting_librdkafka_refuses_is_a_plain_message(tmp_path: Path) -> None:
    """A private key librdkafka cannot read stopped `run` (from a thread first, then the
    main one) and `status` with a traceback (exit 1)."""
    cfg = _config(tmp_path, {"bootstrap.servers": "127.0.0.1:1", "security.protocol": "SSL",
                             "ssl.key.pem": f"not a key {SECRET}",
                             "ssl.key.password": SECRET + "-pw"})
    for command in (["run", str(cfg), "--no-api"], ["status", str(cfg)]):
        done = run_cli(*command, timeout=60)
        assert done.returncode == 2, done.stderr[-3000:]
        assert "Traceback" not in done.stderr
        assert "the Kafka client refused its settings (`kafka:`)" in done.stderr
        assert "ssl.key.pem" in done.stderr
        assert SECRET not in done.stdout + done.stderr


def test_token_env_unset_on_loopback_is_warned_about(tmp_path: Path) -> None:
    store = tmp_path / "data"
    SpecWriter(str(store), USERS).write([(1, user_row(1))])
    port = free_port()
    cfg = tmp_path / "tables.yaml"
    cfg.write_text(f"kafka:\n  bootstrap.servers: 127.0.0.1:1\nstore:\n  path: {store}\n"
                   f"api:\n  listen: 127.0.0.1:{port}\n  token_env: H84_UNSET_TOKEN\n"
                   "tables:\n  - name: public.users\n    topic: users\n"
                   "    columns: {id: int, name: string, score: double, born: date,\n"
                   "              seen: timestamp, tags: 'array<string>', blob: bytes,\n"
                   "              version: long, check: string}\n"
                   "    primary_key: [id]\n    key_format: json\n")
    env = {k: v for k, v in os.environ.items() if k != "H84_UNSET_TOKEN"}
    proc = subprocess.Popen([sys.executable, "-m", "materializer", "serve", str(cfg)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_serving(f"http://127.0.0.1:{port}", proc), "serve did not start"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert "H84_UNSET_TOKEN" in err and "without a token" in err, err


def test_an_advertised_url_with_a_password_is_refused_without_showing_it(
        tmp_path: Path) -> None:
    """`api.advertise: http://user:pass@host` was accepted and its password published in
    `<group>.members`, `GET /cluster`, `status` and printed by `check`."""
    cfg = _config(tmp_path, {"bootstrap.servers": "127.0.0.1:1"},
                  f"api:\n  advertise: 'http://fred:{SECRET}@10.0.0.5:8080'\n")
    done = run_cli("check", str(cfg))
    assert done.returncode == 2, done.stdout
    assert "holds a user name or password" in done.stderr
    assert SECRET not in done.stdout + done.stderr
    flag = run_cli("serve", str(_config(tmp_path, {"bootstrap.servers": "127.0.0.1:1"})),
                   "--advertise", f"http://fred:{SECRET}@10.0.0.5:8080")
    assert flag.returncode == 2 and "holds a user name or password" in flag.stderr
    assert SECRET not in flag.stdout + flag.stderr


@pytest.mark.integration
def test_a_public_listen_without_token_is_refused_before_anything_starts(
        session_broker: DevBroker, tmp_path: Path) -> None:
    """`run --listen 0.0.0.0:P` without a token was refused (exit 2) only after the worker
    had created its store and published a membership record, left in `<group>.members`
    for good (shown as an expired member by `status` and `GET /cluster`)."""
    from connectors.kafka_admin import partition_count  # noqa: PLC0415

    group = unique("g")
    cfg = tmp_path / "tables.yaml"
    cfg.write_text(f"kafka:\n  bootstrap.servers: '{session_broker.bootstrap}'\n"
                   + TABLE.format(group=group, store=tmp_path / "data", topic=unique("t"))
                   + "api:\n  token_env: H84_UNSET_TOKEN\n")
    env = {"H84_UNSET_TOKEN": ""}
    done = run_cli("run", str(cfg), "--listen", f"0.0.0.0:{free_port()}", env=env,
                   timeout=90)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "is not a loopback address and no bearer token" in done.stderr
    assert not (tmp_path / "data").exists()
    assert partition_count(session_broker.kafka_config(), f"{group}.members") == 0

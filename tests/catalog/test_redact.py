"""Secrets in Kafka and schema registry settings never reach an output: `redact` is the
one rule, and `materializer check` (describe) shows every such value as ****."""

from __future__ import annotations

from pathlib import Path

import pytest

from materializer.catalog import describe, load_catalog_text
from materializer.redact import MASK, SENSITIVE_KAFKA, is_sensitive, redact, redacted
from tests.support.workers import run_cli

SECRET = "s3cr3t-VALUE"


@pytest.mark.parametrize("key", sorted(SENSITIVE_KAFKA) + [
    "basic.auth.user.info", "bearer.auth.token", "bearer.auth.client.secret",
    "SASL.PASSWORD", "some.future.password", "client.secret.v2", "ssl.truststore.password",
    "sasl.jaas.config", "x.private.key", "ssl.keystore.location", "a.passphrase"])
def test_secrets_are_masked(key: str) -> None:
    assert is_sensitive(key)
    assert redact(key, SECRET) == MASK


@pytest.mark.parametrize("key", ["bootstrap.servers", "client.id", "security.protocol",
                                 "sasl.mechanisms", "ssl.ca.location", "group.id",
                                 "basic.auth.credentials.source", "url"])
def test_plain_settings_are_shown(key: str) -> None:
    assert not is_sensitive(key)
    assert redact(key, "value") == "value"


def test_url_passwords_are_masked() -> None:
    assert redact("url", "https://fred:pa55@reg.example:8081/x") == \
        f"https://fred:{MASK}@reg.example:8081/x"
    assert redact("url", "http://a:b@h1,http://h2:8081,http://c:@h3") == \
        f"http://a:{MASK}@h1,http://h2:8081,http://c:{MASK}@h3"
    assert redact("url", "http://user@h1") == "http://user@h1"
    assert redacted({"sasl.password": "p", "client.id": "c"}) == {"sasl.password": MASK,
                                                                 "client.id": "c"}


def _declaration() -> str:
    kafka = "".join(f"  {k}: {SECRET}-{i}\n" for i, k in enumerate(sorted(SENSITIVE_KAFKA))
                    if k != "ssl_key")  # ssl_key is C-only (set through the C API)
    return ("kafka:\n  bootstrap.servers: localhost:9092\n" + kafka
            + "schema_registry:\n"
              f"  url: https://fred:{SECRET}-url@registry:8081\n"
              f"  basic.auth.user.info: fred:{SECRET}-ui\n"
              f"  bearer.auth.token: {SECRET}-bt\n"
              "tables:\n  - name: t\n    topic: t\n    columns: {id: int}\n"
              "    primary_key: [id]\n    key_format: int\n")


def test_describe_shows_no_secret() -> None:
    text = describe(load_catalog_text(_declaration(), "tables.yaml"))
    assert SECRET not in text
    assert "bootstrap.servers=localhost:9092" in text
    assert f"sasl.password={MASK}" in text and f"ssl.key.pem={MASK}" in text
    assert f"url https://fred:{MASK}@registry:8081" in text
    assert f"basic.auth.user.info={MASK}" in text
    assert "formats: key int" in text  # declaration fields are not settings


def test_check_prints_no_secret(tmp_path: Path) -> None:
    path = tmp_path / "tables.yaml"
    path.write_text(_declaration())
    done = run_cli("check", str(path))
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    assert f"sasl.oauthbearer.config={MASK}" in done.stdout

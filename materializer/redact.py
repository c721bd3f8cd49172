"""Secrets in client settings are never shown: the one rule for every output.

`redact(key, value)` is what any code that prints, logs or returns a Kafka
(librdkafka) or schema registry client setting shows for it. Guarantees:
- A setting librdkafka itself treats as sensitive (its `_RK_SENSITIVE`
  properties, aliases included) is shown as `****`.
- So is any setting whose name contains `password`, `passphrase`, `secret` or
  `key` (`ssl.key.location`, `sasl.oauthbearer.assertion.private.key.pem`, ...),
  or ends with `token`, `user.info` (the registry's `basic.auth.user.info`) or
  `jaas.config`: settings that hold a secret under a name not listed yet stay
  hidden too. The rule is for client settings only; declaration fields such as
  `key_format` never go through it.
- In any other value, the password of a URL (`https://user:pass@host`) is
  shown as `****`.
"""

from __future__ import annotations

import re

MASK = "****"

# librdkafka's properties flagged _RK_SENSITIVE (src/rdkafka_conf.c, 2.x), with aliases
SENSITIVE_KAFKA = frozenset({
    "ssl.key.location",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl_key",
    "ssl.ca.pem",
    "ssl.keystore.password",
    "sasl.username",
    "sasl.password",
    "sasl.oauthbearer.config",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.client.credentials.client.secret",
    "sasl.oauthbearer.assertion.private.key.file",
    "sasl.oauthbearer.assertion.private.key.passphrase",
    "sasl.oauthbearer.assertion.private.key.pem",
})
# the schema registry client's secrets (confluent-kafka's schema_registry client)
SENSITIVE_REGISTRY = frozenset({
    "basic.auth.user.info",
    "bearer.auth.token",
    "bearer.auth.client.secret",
})
_WORDS = ("password", "passphrase", "secret", "key")
_ENDINGS = ("token", "user.info", "jaas.config")
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@:\s]*:)[^/@\s]*(?=@)")


def is_sensitive(key: str) -> bool:
    """Whether the value of client setting `key` is a secret (see the module rules)."""
    k = key.strip().lower()
    return (k in SENSITIVE_KAFKA or k in SENSITIVE_REGISTRY or any(w in k for w in _WORDS)
            or k.endswith(_ENDINGS))


def redact(key: str, value: str) -> str:
    """What to show for client setting `key` with `value`: `****` for a secret,
    else the value with any URL password masked."""
    if is_sensitive(key):
        return MASK
    return _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, value)


def redacted(settings: tuple[tuple[str, str], ...] | dict[str, str]) -> dict[str, str]:
    """Client settings with every value passed through `redact`, for showing them."""
    pairs = settings.items() if isinstance(settings, dict) else settings
    return {k: redact(k, v) for k, v in pairs}

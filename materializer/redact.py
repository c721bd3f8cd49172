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
  shown as `****`, up to the last `@` before the host (a password may hold `@`).

Text this program did not write (librdkafka's log lines and errors, exception messages
that quote them) goes through `scrub` before it is logged or shown (the command line's
log formatters and exit messages, the librdkafka loggers' filter): URL passwords are
masked as above, and so is every secret value `remember` was given (the sensitive client
settings of the declaration file and of every Kafka client and registry built, and the
API token), each value whole, each of its space-separated parts (librdkafka quotes the
part of `sasl.oauthbearer.config` it cannot read) and the password of a `user.info`.
Values and parts under `MIN_SECRET` characters are not searched for (they would mask
ordinary words). Data (rows, events) is never scrubbed.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping

MASK = "****"
MIN_SECRET = 4

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
# the password runs to the last `@` of the authority (as urllib and browsers read it)
_URL_PASSWORD = re.compile(
    r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/?#@:\s]*:)[^/?#\s]*(?=@[^/?#@\s]*)")


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


_remembered: tuple[str, ...] = ()  # longest first, replaced whole (read without a lock)
_remembering = threading.Lock()  # clients are built from several threads


def secret_values(settings: Mapping[str, object] | Iterable[tuple[str, object]]
                  ) -> set[str]:
    """The secret values among client settings (see `is_sensitive`), whole and in their
    space-separated parts, and the passwords of URLs in any setting."""
    pairs = settings.items() if isinstance(settings, Mapping) else settings
    out: set[str] = set()
    for key, value in pairs:
        if not isinstance(value, str):
            continue
        if is_sensitive(str(key)):
            out.add(value.strip())
            out.update(value.split())
            if str(key).lower().endswith("user.info"):  # user:password
                out.add(value.partition(":")[2])
        for m in _URL_PASSWORD.finditer(value):
            out.add(value[m.end("head"):m.end()])
    return {v for v in out if len(v) >= MIN_SECRET}


def remember(values: Iterable[str]) -> None:
    """Add `values` to the secrets `scrub` masks (for the rest of the process)."""
    global _remembered
    with _remembering:
        new = set(_remembered) | {v for v in values if len(v) >= MIN_SECRET}
        if len(new) != len(_remembered):
            _remembered = tuple(sorted(new, key=len, reverse=True))


def scrub(text: str) -> str:
    """`text` with URL passwords and every remembered secret shown as `****`."""
    if "@" in text:
        text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    for secret in _remembered:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class ScrubFilter(logging.Filter):
    """A logging filter that passes every record with its message scrubbed."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True

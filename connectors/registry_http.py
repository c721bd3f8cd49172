"""HTTP(S) to a Confluent-compatible schema registry (`schema_registry.url`): the
settings, URLs, credentials and TLS of `connectors.rest_registry.RestRegistry`, and one
JSON request at a time. Spoken with the standard library (no extra dependency).

Guarantees: settings it does not know, and URLs that are not http(s), are a ConfigError
at construction; credentials never go to another origin than the one they were given
for (redirects); a request is retried on network failures, 5xx and 429 with backoff (at
least what a `Retry-After` asked, up to `retries.max.wait.ms`); 401/403 and no registry
answering are InfrastructureError; any other non-2xx answer is HttpStatus.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from materializer.errors import ConfigError, InfrastructureError
from materializer.redact import redact, remember, secret_values
from materializer.specs import REGISTRY_CLIENT_KEYS

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"

REST_KEYS = REGISTRY_CLIENT_KEYS  # the settings the client takes (the catalog checks them too)
UNKNOWN_WAIT_MS = "15000"  # `unknown.id.wait.ms`: how long a 404 may be a replica behind


class HttpStatus(Exception):
    """An HTTP answer other than 2xx from a reachable registry."""

    def __init__(self, status: int, body: str, url: str) -> None:
        super().__init__(f"HTTP {status} from {url}: {body[:300]}")
        self.status = status
        self.body = body
        try:
            self.error_code = int(json.loads(body).get("error_code", 0))
        except (ValueError, AttributeError, TypeError):
            self.error_code = 0

    @property
    def not_found(self) -> bool:
        """A registry's own 'not found' (HTTP 404 with a 404xx error code: no such schema,
        subject or version). A 404 without one (an HTML page, a proxy, a wrong base path) is
        no answer from a registry: never taken for an unknown schema."""
        return self.status == 404 and 40400 <= self.error_code <= 40499


def _retry_after(headers: Any) -> float:
    """Seconds a `Retry-After` header asks to wait (0 if absent, a date, or not a number)."""
    try:
        seconds = float(headers.get("Retry-After", "") or 0)
    except (TypeError, ValueError, AttributeError):
        return 0.0
    return seconds if 0 < seconds < 3600 else 0.0


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects as urllib does, but never sends the credentials to another
    origin (scheme, host and port) than the one they were given for."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        old_origin = urllib.parse.urlsplit(req.full_url)[:2]
        if new is not None and urllib.parse.urlsplit(new.full_url)[:2] != old_origin:
            new.remove_header("Authorization")
        return new


class RegistryHttp:
    """The registry's URLs (tried in order), credentials and retry settings. Thread-safe
    (`retries` is a metric, counted without a lock)."""

    def __init__(self, url: str, config: Mapping[str, str] | None = None) -> None:
        conf = dict(config or {})
        unknown = sorted(set(conf) - REST_KEYS)
        if unknown:
            raise ConfigError(
                f"schema_registry: unknown setting(s) {', '.join(unknown)}; "
                f"supported: {', '.join(sorted(REST_KEYS))}")
        self._headers: dict[str, str] = {"Accept": CONTENT_TYPE}
        self._bases: list[str] = []
        source = conf.get("basic.auth.credentials.source", "USER_INFO").upper()
        user_info = conf.get("basic.auth.user.info")
        remember(secret_values([*conf.items(), ("url", url)]))
        for raw in url.split(","):
            raw = raw.strip().rstrip("/")
            if not raw:
                continue
            try:
                parts = urllib.parse.urlsplit(raw)
                port = parts.port  # ValueError past 65535 or not a number
            except ValueError as e:  # the message names no part of the URL
                raise ConfigError(f"schema_registry.url {redact('url', raw)!r} is not a "
                                  f"valid URL: {e}") from None
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(f"schema_registry.url {redact('url', raw)!r} is not an "
                                  "http(s) URL")
            if parts.username is not None:
                if source == "URL" or user_info is None:
                    user_info = (urllib.parse.unquote(parts.username) + ":"
                                 + urllib.parse.unquote(parts.password or ""))
                    remember(secret_values([("basic.auth.user.info", user_info)]))
                host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
                netloc = host + (f":{port}" if port else "")
                raw = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
            self._bases.append(raw)
        if not self._bases:
            raise ConfigError("schema_registry.url is empty")
        if source not in ("USER_INFO", "URL"):
            raise ConfigError(f"basic.auth.credentials.source {source!r} is not supported; "
                              "use USER_INFO or URL")
        if user_info:
            token = base64.b64encode(user_info.encode("utf-8")).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
        elif "bearer.auth.token" in conf:
            self._headers["Authorization"] = f"Bearer {conf['bearer.auth.token']}"
            if "bearer.auth.logical.cluster" in conf:
                self._headers["target-sr-cluster"] = conf["bearer.auth.logical.cluster"]
            if "bearer.auth.identity.pool.id" in conf:
                self._headers["Confluent-Identity-Pool-Id"] = conf["bearer.auth.identity.pool.id"]
        try:
            self._timeout = float(conf.get("timeout", "10"))
            self._retries = int(conf.get("max.retries", "3"))
            self._wait = int(conf.get("retries.wait.ms", "200")) / 1000
            self._max_wait = int(conf.get("retries.max.wait.ms", "2000")) / 1000
            # seconds a 404 for an id is taken for a replica behind (`RestRegistry`)
            self.unknown_wait = int(conf.get("unknown.id.wait.ms", UNKNOWN_WAIT_MS)) / 1000
        except ValueError as e:
            raise ConfigError(f"schema_registry: {e}") from e
        if self.unknown_wait < 0:
            raise ConfigError("schema_registry: unknown.id.wait.ms must be 0 or more")
        self.retries = 0  # requests repeated after a failure so far (a metric)
        self._ssl = self._ssl_context(conf) if any(
            b.startswith("https:") for b in self._bases) else None
        handlers: list[Any] = [_Redirects]
        if self._ssl is not None:
            handlers.append(urllib.request.HTTPSHandler(context=self._ssl))
        self._opener = urllib.request.build_opener(*handlers)
    @staticmethod
    def _ssl_context(conf: Mapping[str, str]) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=conf.get("ssl.ca.location"))
        if conf.get("ssl.certificate.location"):
            ctx.load_cert_chain(conf["ssl.certificate.location"], conf.get("ssl.key.location"),
                                conf.get("ssl.key.password"))
        if conf.get("ssl.endpoint.identification.algorithm", "https").lower() == "none":
            ctx.check_hostname = False
        return ctx

    def __repr__(self) -> str:
        return ", ".join(self._bases)

    @property
    def longest_lookup(self) -> float:
        """Seconds one lookup may take when no registry answers in time: every attempt
        waits `timeout` for every URL, with the backoff between attempts (a Retry-After
        may lengthen it to `retries.max.wait.ms`, counted here)."""
        waits, wait = 0.0, self._wait
        for _ in range(self._retries):
            waits += max(wait, self._max_wait)
            wait = min(wait * 2, self._max_wait)
        return (self._retries + 1) * len(self._bases) * self._timeout + waits

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One JSON request; retries network failures, 5xx and 429 with backoff (waiting
        at least what a `Retry-After: <seconds>` asked, up to `retries.max.wait.ms`).

        Raises HttpStatus for any other non-2xx answer, InfrastructureError when no
        registry answers."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = dict(self._headers)
        if data is not None:
            headers["Content-Type"] = CONTENT_TYPE
        wait = self._wait
        last = ""
        asked = 0.0  # the longest Retry-After of this round
        for attempt in range(self._retries + 1):
            for base in self._bases:
                url = base + path
                req = urllib.request.Request(url, data=data, headers=headers, method=method)
                try:
                    with self._opener.open(req, timeout=self._timeout) as resp:
                        return json.loads(resp.read() or b"null")
                except urllib.error.HTTPError as e:
                    text = e.read().decode("utf-8", "replace")
                    if e.code in (401, 403):
                        raise InfrastructureError(
                            f"schema registry {base} refused the credentials (HTTP {e.code}): "
                            "check basic.auth.user.info or bearer.auth.token") from e
                    if e.code >= 500 or e.code == 429:
                        last = f"HTTP {e.code} from {url}: {text[:200]}"
                        asked = max(asked, _retry_after(e.headers))
                        continue
                    raise HttpStatus(e.code, text, url) from e
                except (urllib.error.URLError, OSError, ValueError,
                        http.client.HTTPException) as e:
                    # ValueError: a reachable server answering something that is not JSON;
                    # HTTPException: an answer cut short or not HTTP (IncompleteRead, ...)
                    last = f"{url}: {getattr(e, 'reason', e)}"
                    continue
            if attempt < self._retries:
                self.retries += 1
                time.sleep(max(wait, min(asked, self._max_wait)))
                wait = min(wait * 2, self._max_wait)
                asked = 0.0
        raise InfrastructureError(
            f"schema registry unreachable after {self._retries + 1} attempt(s): {last}")

"""A Confluent-compatible schema registry over HTTP(S) (`schema_registry.url`).

Spoken with the standard library (no extra dependency); see `connectors.registry` for
the paths, settings and guarantees.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from connectors.avro_schemas import (
    SchemaRejected,
    bad_schema,
    checked,
    parse,
    self_contained,
)
from materializer.errors import (
    ConfigError,
    InfrastructureError,
    RecordError,
)
from materializer.redact import redact, remember, secret_values

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
_NEGATIVE_TTL = 10.0  # seconds an unknown id is remembered as unknown


_REST_KEYS = frozenset({
    "basic.auth.user.info", "basic.auth.credentials.source", "bearer.auth.token",
    "bearer.auth.logical.cluster", "bearer.auth.identity.pool.id", "ssl.ca.location",
    "ssl.certificate.location", "ssl.key.location", "ssl.key.password",
    "ssl.endpoint.identification.algorithm", "timeout", "max.retries", "retries.wait.ms",
    "retries.max.wait.ms", "cache.capacity", "cache.latest.ttl.sec",
})


class _HttpStatus(Exception):
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


class RestRegistry:
    """A Confluent-compatible schema registry over HTTP(S). Thread-safe."""

    def __init__(self, url: str, config: Mapping[str, str] | None = None) -> None:
        conf = dict(config or {})
        unknown = sorted(set(conf) - _REST_KEYS)
        if unknown:
            raise ConfigError(
                f"schema_registry: unknown setting(s) {', '.join(unknown)}; "
                f"supported: {', '.join(sorted(_REST_KEYS))}")
        self._headers: dict[str, str] = {"Accept": _CONTENT_TYPE}
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
        except ValueError as e:
            raise ConfigError(f"schema_registry: {e}") from e
        self.retries = 0  # requests repeated after a failure so far (a metric)
        self._ssl = self._ssl_context(conf) if any(
            b.startswith("https:") for b in self._bases) else None
        handlers: list[Any] = [_Redirects]
        if self._ssl is not None:
            handlers.append(urllib.request.HTTPSHandler(context=self._ssl))
        self._opener = urllib.request.build_opener(*handlers)
        self._cache: dict[int, Any] = {}
        self._texts: dict[Any, dict[str, Any]] = {}
        # ids, and versions of subjects (what references name), the registry said it does not
        # know: until when they are taken for unknown without asking, and the error's text
        self._unknown: dict[Any, tuple[float, str]] = {}
        # ids whose schema is not usable (not Avro, does not parse): a registry never
        # changes the schema of an id, so one request per id, not one per record
        self._bad: dict[int, RecordError] = {}
        self._lock = threading.Lock()

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
        return f"RestRegistry({', '.join(self._bases)})"

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

    # -- transport

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        """One JSON request; retries network failures, 5xx and 429 with backoff (waiting
        at least what a `Retry-After: <seconds>` asked, up to `retries.max.wait.ms`).

        Raises _HttpStatus for any other non-2xx answer, InfrastructureError when no
        registry answers."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = dict(self._headers)
        if data is not None:
            headers["Content-Type"] = _CONTENT_TYPE
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
                    raise _HttpStatus(e.code, text, url) from e
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

    # -- Registry

    def schema(self, schema_id: int) -> Any:
        cached = self._cache.get(schema_id)
        if cached is not None:
            return cached
        self._known_unknown(schema_id)
        bad = self._bad.get(schema_id)
        if bad is not None:
            raise RecordError(str(bad), bad.reason)
        try:
            answer = self._request("GET", f"/schemas/ids/{schema_id}")
        except _HttpStatus as e:
            if e.not_found:
                raise self._remember_unknown(
                    schema_id, f"schema id {schema_id} is unknown to the registry") from e
            raise InfrastructureError(f"schema registry: {e}") from e
        if not isinstance(answer, dict) or not isinstance(answer.get("schema"), str):
            raise InfrastructureError(
                f"schema registry: unexpected answer for schema {schema_id}: {answer!r:.200}")
        kind = answer.get("schemaType") or "AVRO"
        if kind != "AVRO":
            raise self._remember_bad(schema_id, RecordError(
                f"schema {schema_id} is a {kind} schema, not Avro", "bad_schema"))
        named: dict[str, Any] = {}
        try:
            refs = _schema_answer(answer, f"schema {schema_id}")["references"]
            try:
                for ref in refs:
                    self._load_reference(ref, named, depth=0)
            except RecordError as e:  # a reference the registry does not know: this id's
                if e.reason != "unknown_schema":  # records are asked about as seldom as
                    raise  # those of an unknown id
                raise self._remember_unknown(schema_id, f"schema {schema_id}: {e}") from e
            parsed = parse(answer["schema"], named)
            if refs:  # the referenced types defined in it: see self_contained
                parsed = self_contained(parsed, named)
        except (RecordError, InfrastructureError):  # a reference's bad record, or the
            raise  # registry not answering for it: never a bad schema
        except Exception as e:  # noqa: BLE001 - any parse failure is a bad schema
            raise self._remember_bad(schema_id, bad_schema(schema_id, repr(self), e)) from e
        with self._lock:
            self._cache[schema_id] = parsed
        return parsed

    def _known_unknown(self, key: Any) -> None:
        """RecordError(unknown_schema) if the registry said lately that it does not know
        `key` (an id, or ("version", subject, version))."""
        memo = self._unknown.get(key)
        if memo is not None and time.monotonic() < memo[0]:
            raise RecordError(memo[1], "unknown_schema")

    def _remember_unknown(self, key: Any, message: str) -> RecordError:
        """Take `key` for unknown for `_NEGATIVE_TTL` s (it may be registered since)."""
        with self._lock:
            if len(self._unknown) > 10_000:  # garbage ids: keep the memo bounded
                self._unknown.clear()
            self._unknown[key] = (time.monotonic() + _NEGATIVE_TTL, message)
        return RecordError(message, "unknown_schema")

    def _remember_bad(self, schema_id: int, err: RecordError) -> RecordError:
        with self._lock:
            if len(self._bad) > 10_000:  # garbage ids: keep the memo bounded
                self._bad.clear()
            self._bad[schema_id] = err
        return err

    def _load_reference(self, ref: Mapping[str, Any], named: dict[str, Any], depth: int) -> None:
        """Parse the schema a reference names (after its own references) into `named`.
        Asked once per subject and version (`version_text` caches it)."""
        if depth > 32:
            raise RecordError("schema references nest too deeply", "bad_schema")
        answer = self.version_text(ref["subject"], ref["version"])
        for inner in answer["references"]:
            self._load_reference(inner, named, depth + 1)
        parse(answer["schema"], named)

    # -- schemas as the registry keeps them (Protobuf: `formats.protobuf.SchemaTexts`)

    def schema_text(self, schema_id: int, fmt: str | None = None) -> dict[str, Any]:
        """The registry's answer for schema `schema_id` as it is: `schema` (text),
        `schemaType` (absent for Avro) and `references`, asked in format `fmt`
        (`serialized`: a Protobuf schema as a base64 FileDescriptorProto). Cached.

        RecordError(unknown_schema) for an id the registry does not know;
        InfrastructureError when it cannot be asked."""
        key = (schema_id, fmt)
        cached = self._texts.get(key)
        if cached is not None:
            return cached
        self._known_unknown(schema_id)
        query = f"?format={urllib.parse.quote(fmt)}" if fmt else ""
        try:
            answer = self._request("GET", f"/schemas/ids/{schema_id}{query}")
        except _HttpStatus as e:
            if e.not_found:
                raise self._remember_unknown(
                    schema_id, f"schema id {schema_id} is unknown to the registry") from e
            raise InfrastructureError(f"schema registry: {e}") from e
        checked_answer = _schema_answer(answer, f"schema {schema_id}")
        with self._lock:
            self._texts[key] = checked_answer
        return checked_answer

    def version_text(self, subject: str, version: int, fmt: str | None = None
                     ) -> dict[str, Any]:
        """Like `schema_text`, for version `version` of `subject` (what a schema reference
        names). RecordError(unknown_schema) if the registry has no such version."""
        key = (subject, version, fmt)
        cached = self._texts.get(key)
        if cached is not None:
            return cached
        self._known_unknown(("version", subject, version))
        query = f"?format={urllib.parse.quote(fmt)}" if fmt else ""
        path = f"/subjects/{urllib.parse.quote(subject, safe='')}/versions/{version}{query}"
        try:
            answer = self._request("GET", path)
        except _HttpStatus as e:
            if e.not_found:
                raise self._remember_unknown(
                    ("version", subject, version), f"schema reference {subject!r} version "
                    f"{version} is unknown to the registry") from e
            raise InfrastructureError(f"schema registry: {e}") from e
        checked_answer = _schema_answer(answer, f"subject {subject!r} version {version}")
        with self._lock:
            self._texts[key] = checked_answer
        return checked_answer

    def register(self, subject: str, schema: Any) -> int:
        text = checked(subject, schema)
        path = f"/subjects/{urllib.parse.quote(subject, safe='')}/versions"
        try:
            answer = self._request("POST", path, {"schema": text})
        except _HttpStatus as e:
            if e.status in (409, 422):
                raise SchemaRejected(f"schema registry refused a schema for {subject!r}: "
                                     f"{e.body[:300]}") from e
            raise InfrastructureError(f"schema registry: {e}") from e
        try:
            return int(answer["id"])
        except (KeyError, TypeError, ValueError) as e:
            raise InfrastructureError(
                f"schema registry: unexpected answer to a registration: {answer!r:.200}") from e

    def latest_id(self, subject: str) -> int | None:
        path = f"/subjects/{urllib.parse.quote(subject, safe='')}/versions/latest"
        try:
            answer = self._request("GET", path)
        except _HttpStatus as e:
            if e.not_found:
                return None
            raise InfrastructureError(f"schema registry: {e}") from e
        try:
            return int(answer["id"])
        except (KeyError, TypeError, ValueError) as e:
            raise InfrastructureError(
                f"schema registry: unexpected answer for {subject!r}: {answer!r:.200}") from e


def _schema_answer(answer: Any, what: str) -> dict[str, Any]:
    """A registry's answer about one schema, checked: `schema` text, `schemaType` (AVRO
    when absent) and `references` (a list of {name, subject, version})."""
    if not isinstance(answer, dict) or not isinstance(answer.get("schema"), str):
        raise InfrastructureError(
            f"schema registry: unexpected answer for {what}: {answer!r:.200}")
    refs = answer.get("references") or []
    if not isinstance(refs, list) or not all(
            isinstance(r, dict) and isinstance(r.get("name"), str)
            and isinstance(r.get("subject"), str) and type(r.get("version")) is int
            for r in refs):
        raise RecordError(f"{what}: the registry gives references that are not a list of "
                          f"name, subject and version: {refs!r:.200}", "bad_schema")
    return {"schema": answer["schema"], "schemaType": answer.get("schemaType") or "AVRO",
            "references": refs}

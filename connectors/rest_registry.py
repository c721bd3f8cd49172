"""A Confluent-compatible schema registry over HTTP(S) (`schema_registry.url`): schemas
by id and by subject version, references resolved, registration; see `connectors.registry`
for the paths, settings and guarantees. The HTTP side (settings, URLs, credentials,
retries) is `connectors.registry_http`.

Caching: a parsed schema and a registry's answer are kept for good (a registry never
changes the schema of an id or a subject version); an unusable schema is remembered per
id; an id or version the registry does not know is taken for unknown for
`_NEGATIVE_TTL` s (it may be registered since), once `unknown.id.wait.ms` has passed since
its first 404 (before that the 404 is an InfrastructureError: a replica behind). A registry
not answering is never cached.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from connectors.avro_schemas import (
    SchemaRejected,
    bad_schema,
    checked,
    define,
    self_contained,
)
from connectors.registry_http import HttpStatus, RegistryHttp
from materializer.errors import InfrastructureError, MaterializerError, RecordError

_NEGATIVE_TTL = 10.0  # seconds an unknown id is remembered as unknown


class RestRegistry:
    """A Confluent-compatible schema registry over HTTP(S). Thread-safe."""

    def __init__(self, url: str, config: Mapping[str, str] | None = None) -> None:
        self._http = RegistryHttp(url, config)
        self._cache: dict[int, Any] = {}
        self._texts: dict[Any, dict[str, Any]] = {}
        # ids, and versions of subjects (what references name), the registry said it does not
        # know: until when they are taken for unknown without asking, and the error's text
        self._unknown: dict[Any, tuple[float, str]] = {}
        # when the registry first said it does not know a key (monotonic): until
        # `unknown.id.wait.ms` later that is taken for a replica behind, not for unknown
        self._unseen: dict[Any, float] = {}
        # ids whose schema is not usable (not Avro, does not parse): a registry never
        # changes the schema of an id, so one request per id, not one per record
        self._bad: dict[int, RecordError] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RestRegistry({self._http!r})"

    @property
    def retries(self) -> int:
        """Requests repeated after a failure so far (a metric)."""
        return self._http.retries

    @property
    def longest_lookup(self) -> float:
        """Seconds one lookup may take when no registry answers in time (see
        `RegistryHttp.longest_lookup`)."""
        return self._http.longest_lookup

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
            answer = self._http.request("GET", f"/schemas/ids/{schema_id}")
        except HttpStatus as e:
            if e.not_found:
                raise self._not_found(
                    schema_id, f"schema id {schema_id} is unknown to the registry") from e
            raise InfrastructureError(f"schema registry: {e}") from e
        self._unseen.pop(schema_id, None)
        if not isinstance(answer, dict) or not isinstance(answer.get("schema"), str):
            raise InfrastructureError(
                f"schema registry: unexpected answer for schema {schema_id}: {answer!r:.200}")
        kind = answer.get("schemaType") or "AVRO"
        if kind != "AVRO":
            raise self._remember_bad(schema_id, RecordError(
                f"schema {schema_id} is a {kind} schema, not Avro", "bad_schema"))
        named: dict[str, Any] = {}
        origins: dict[str, str] = {}  # which reference defined each named type
        try:
            refs = _schema_answer(answer, f"schema {schema_id}")["references"]
            try:
                for ref in refs:
                    self._load_reference(ref, named, origins, depth=0)
            except RecordError as e:  # a reference the registry does not know: this id's
                if e.reason != "unknown_schema":  # records are asked about as seldom as
                    raise  # those of an unknown id
                raise self._remember_unknown(schema_id, f"schema {schema_id}: {e}") from e
            parsed, aliased = define(answer["schema"], named, origins, "the schema")
            if refs or aliased:  # the referenced types defined in it: see self_contained
                parsed = self_contained(parsed, named)
        except InfrastructureError:  # the registry not answering for a reference: never a
            raise  # bad schema
        except RecordError as e:
            if e.reason != "bad_schema":
                raise
            raise self._remember_bad(schema_id, bad_schema(schema_id, repr(self), e)) from e
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

    def _not_found(self, key: Any, message: str) -> MaterializerError:
        """What the registry's 404 for `key` (an id, or ("version", subject, version)) is:
        for `unknown.id.wait.ms` after the first one, an InfrastructureError (the batch
        waits and asks again: a replica of the registry may not have read a schema just
        registered on its leader), then RecordError(unknown_schema), remembered 10 s. The
        wait is one per key (when it began is kept, bounded), not one per record."""
        now = time.monotonic()
        with self._lock:
            if len(self._unseen) > 10_000:  # garbage ids: keep the memo bounded
                self._unseen.clear()
            since = self._unseen.setdefault(key, now)
        left = self._http.unknown_wait - (now - since)  # not since + wait - now: 0.6 + a large
        # monotonic clock rounds to 0.6000000000058 when `since` is `now`
        if left <= 0:
            return self._remember_unknown(key, message)
        err = InfrastructureError(
            f"{message} (yet): asked again for up to {left:.1f} s more, as a replica of the "
            "registry may not have read a schema just registered "
            "(schema_registry.unknown.id.wait.ms)")
        err.retry_in = left
        return err

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

    def _load_reference(self, ref: Mapping[str, Any], named: dict[str, Any],
                        origins: dict[str, str], depth: int) -> None:
        """Parse the schema a reference names (after its own references) into `named`
        (`avro_schemas.define`: a type two references define differently is refused).
        Asked once per subject and version (`version_text` caches it)."""
        if depth > 32:
            raise RecordError("schema references nest too deeply", "bad_schema")
        answer = self.version_text(ref["subject"], ref["version"])
        for inner in answer["references"]:
            self._load_reference(inner, named, origins, depth + 1)
        define(answer["schema"], named, origins,
               f"reference {ref['subject']!r} version {ref['version']}")

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
            answer = self._http.request("GET", f"/schemas/ids/{schema_id}{query}")
        except HttpStatus as e:
            if e.not_found:
                raise self._not_found(
                    schema_id, f"schema id {schema_id} is unknown to the registry") from e
            raise InfrastructureError(f"schema registry: {e}") from e
        self._unseen.pop(schema_id, None)
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
            answer = self._http.request("GET", path)
        except HttpStatus as e:
            if e.not_found:
                raise self._not_found(
                    ("version", subject, version), f"schema reference {subject!r} version "
                    f"{version} is unknown to the registry") from e
            raise InfrastructureError(f"schema registry: {e}") from e
        self._unseen.pop(("version", subject, version), None)
        checked_answer = _schema_answer(answer, f"subject {subject!r} version {version}")
        with self._lock:
            self._texts[key] = checked_answer
        return checked_answer

    def register(self, subject: str, schema: Any) -> int:
        text = checked(subject, schema)
        path = f"/subjects/{urllib.parse.quote(subject, safe='')}/versions"
        try:
            answer = self._http.request("POST", path, {"schema": text})
        except HttpStatus as e:
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
            answer = self._http.request("GET", path)
        except HttpStatus as e:
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

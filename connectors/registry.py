"""Schema registries: where the Avro schema that a record's schema id names comes from.

Two kinds, one small interface (`Registry`):
- `RestRegistry`: a Confluent-compatible REST registry (`schema_registry.url`),
  spoken with the standard library (no extra dependency). Paths used:
  `GET /schemas/ids/{id}`, `POST /subjects/{subject}/versions`,
  `GET /subjects/{subject}/versions/latest` (and `.../versions/{v}` for schema
  references). Settings (`RegistrySpec.config`, Confluent client names):
  `basic.auth.user.info` (`user:password`), `basic.auth.credentials.source`
  (`USER_INFO` or `URL`), `bearer.auth.token`, `bearer.auth.logical.cluster`,
  `bearer.auth.identity.pool.id`, `ssl.ca.location`, `ssl.certificate.location`,
  `ssl.key.location`, `ssl.key.password`, `ssl.endpoint.identification.algorithm`
  (`none` turns hostname checks off), `timeout` (seconds), `max.retries`,
  `retries.wait.ms`, `retries.max.wait.ms`, `unknown.id.wait.ms` (the list:
  `specs.REGISTRY_CLIENT_KEYS`). `url` may list several registries,
  comma-separated; they are tried in order. `schema_text(id, fmt)` and
  `version_text(subject, version, fmt)` give a schema as the registry keeps it (text, type,
  references; `fmt="serialized"`: a Protobuf schema as a base64 FileDescriptorProto), for
  `value_format: protobuf` (`materializer.formats.protobuf_schemas.SchemaTexts`).
- `FileRegistry`: a directory of `<id>.avsc` files, each the schema with that id,
  plus `subjects.json` (`{"subject": [id of version 1, ...]}`) (`schema_registry.path`).
  Avro only: it has no `schema_text`, so Protobuf needs a REST registry.

Guarantees:
- `schema(id)` returns the fastavro-parsed schema; a schema id is immutable, so a
  parsed schema is cached for the life of the registry object and fetched once.
- An id that a reachable registry does not know (HTTP 404, no such file) raises
  `RecordError(reason="unknown_schema")`: the record is bad, not the registry. So does an
  id whose schema reference it does not know; either is remembered for 10 s (not asked
  again for every record of that id). A REST registry's 404 for an id or a reference is
  first an `InfrastructureError` (with `retry_in`) for `unknown.id.wait.ms` (default
  15 s) after the first one: a replica may not have read a schema just registered. One
  wait per id, not per record; the 10 s memo starts after it.
- Named types across references resolve as Java's parser does
  (`avro_schemas.define`): null-namespace fallback; a type defined twice differently is
  `bad_schema` naming both.
- Avro schema references are resolved into a self-contained schema
  (`avro_schemas.self_contained`: each referenced type defined at its first use), so a
  union of references or a bare reference reads, and a recursive referenced type is read
  by the Python reader (`too_deep`, never a crash). Each subject version is asked once.
  A schema that is not usable Avro raises `RecordError(reason="bad_schema")`.
- An unreachable registry (connection refused, timeout, HTTP 5xx or 429) is retried
  with exponential backoff (`max.retries`, default 3), then raises
  `InfrastructureError` naming the registry; refused credentials (401/403) raise
  `InfrastructureError` at once. Neither is ever reported as a bad record.
- `register(subject, schema)` is idempotent: the same schema (compared as
  normalized JSON) registered again under a subject returns the id it already has,
  and a schema already known under another subject keeps its id (Confluent
  semantics). `FileRegistry.register` is safe for several processes at once: it
  holds an exclusive `fcntl` lock on `<dir>/.lock` and replaces files by atomic
  rename, so readers never see a half-written file.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from connectors.avro_schemas import (
    SchemaRejected,
    bad_schema,
    checked,
    define,
    normalize,
    parse,
    self_contained,
)
from connectors.rest_registry import RestRegistry
from materializer.errors import (
    InfrastructureError,
    RecordError,
)
from materializer.protocols import SchemaRegistry
from materializer.specs import RegistrySpec

__all__ = [
    "FileRegistry",
    "Registry",
    "RestRegistry",
    "SchemaRejected",
    "normalize",
    "open_registry",
    "parse",
]

Registry = SchemaRegistry
"""The interface both registries implement (`materializer.protocols.SchemaRegistry`)."""


class FileRegistry:
    """A registry kept as files: `<dir>/<id>.avsc` and `<dir>/subjects.json`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._cache: dict[int, Any] = {}

    def __repr__(self) -> str:
        return f"FileRegistry({str(self.path)!r})"

    def _file(self, schema_id: int) -> Path:
        return self.path / f"{schema_id}.avsc"

    def schema(self, schema_id: int) -> Any:
        cached = self._cache.get(schema_id)
        if cached is not None:
            return cached
        f = self._file(schema_id)
        try:
            text = f.read_text(encoding="utf-8")
        except FileNotFoundError as e:
            if not self.path.is_dir():
                raise InfrastructureError(
                    f"schema registry directory {str(self.path)!r} does not exist") from e
            raise RecordError(f"schema id {schema_id} is unknown (no file {f})",
                              "unknown_schema") from e
        except (OSError, UnicodeDecodeError) as e:
            raise InfrastructureError(f"cannot read schema file {f}: {e}") from e
        named: dict[str, Any] = {}
        try:
            parsed, aliased = define(text, named, {}, "the schema")
            if aliased:  # a name found in the null namespace: see define
                parsed = self_contained(parsed, named)
        except Exception as e:  # noqa: BLE001 - any parse failure is a bad schema
            raise bad_schema(schema_id, str(f), e) from e
        self._cache[schema_id] = parsed
        return parsed

    def subjects(self) -> dict[str, list[int]]:
        """The subject table as it is on disk now."""
        f = self.path / "subjects.json"
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise InfrastructureError(f"cannot read {f}: {e}") from e
        try:
            if not isinstance(data, dict):
                raise TypeError(type(data).__name__)
            return {str(k): [int(i) for i in v] for k, v in data.items()}
        except (TypeError, ValueError) as e:
            raise InfrastructureError(
                f"{f} must hold an object of subject -> [ids]: {e}") from e

    def latest_id(self, subject: str) -> int | None:
        ids = self.subjects().get(subject)
        return ids[-1] if ids else None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise InfrastructureError(f"cannot lock schema registry {self.path}: {e}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _write_atomic(self, name: str, text: str) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _ids_on_disk(self) -> list[int]:
        out = []
        for p in self.path.glob("*.avsc"):
            if p.stem.isdigit():
                out.append(int(p.stem))
        return sorted(out)

    def register(self, subject: str, schema: Any) -> int:
        text = checked(subject, schema)
        with self._locked():
            try:
                subjects = self.subjects()
                known = None
                ids = self._ids_on_disk()
                for i in ids:
                    try:
                        same = normalize(self._file(i).read_text(encoding="utf-8")) == text
                    except ValueError:  # a broken hand-written file equals nothing
                        continue
                    if same:
                        known = i
                        break
                if known is None:
                    known = (ids[-1] + 1) if ids else 1
                    self._write_atomic(f"{known}.avsc", text + "\n")
                versions = subjects.setdefault(subject, [])
                if known not in versions:
                    versions.append(known)
                    self._write_atomic("subjects.json",
                                       json.dumps(subjects, indent=2, sort_keys=True) + "\n")
            except (OSError, ValueError) as e:
                raise InfrastructureError(f"cannot register in {self.path}: {e}") from e
        return known


def open_registry(spec: RegistrySpec | None) -> Registry | None:
    """The registry a declaration names (`Catalog.schema_registry`), or None if none.

    `url` wins over `path` if both are given. Nothing is contacted here; the first
    lookup is."""
    if spec is None:
        return None
    if spec.url:
        return RestRegistry(spec.url, dict(spec.config))
    if spec.path:
        return FileRegistry(spec.path)
    return None

"""The interfaces that cross package lines: what a record and a schema registry offer.

`connectors` implements them (confluent-kafka messages, the REST and file registries);
`formats`, `ingest` and `changes` depend only on these.
"""

from __future__ import annotations

from typing import Any, Protocol


class SourceRecord(Protocol):
    """What the applier reads of a Kafka message (a confluent-kafka `Message` fits)."""

    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def offset(self) -> int: ...
    def timestamp(self) -> tuple[int, int]: ...


class SchemaRegistry(Protocol):
    """What the decoders and the change-event encoders need of a schema registry."""

    def schema(self, schema_id: int) -> Any:
        """The fastavro-parsed writer schema with this id (cached).

        Raises RecordError(unknown_schema | bad_schema) or InfrastructureError."""
        ...

    def register(self, subject: str, schema: Any) -> int:
        """Register `schema` (a dict, list, JSON text or primitive name) under `subject`;
        its id. Idempotent."""
        ...

    def latest_id(self, subject: str) -> int | None:
        """The id of the subject's latest version, or None for an unknown subject."""
        ...

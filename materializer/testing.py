"""Helpers for tests and benchmarks that feed the applier without a broker."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class FakeRecord:
    """A source record as the applier reads it (`materializer.protocols.SourceRecord`)."""

    k: bytes | None
    v: bytes | None
    off: int
    ts: int = 1_700_000_000_000

    def key(self) -> bytes | None:
        return self.k

    def value(self) -> bytes | None:
        return self.v

    def offset(self) -> int:
        return self.off

    def timestamp(self) -> tuple[int, int]:
        return (1, self.ts)

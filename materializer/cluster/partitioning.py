"""Which partition a key is in: the key's Kafka bytes, hashed as the producers did.

A relation declares how producers partition its topic (`partitioner`): `murmur2` (the Java
client, Kafka Connect, Debezium; librdkafka's `murmur2_random` agrees for keyed records),
`consistent_random` (librdkafka's default: CRC-32 of the key bytes, modulo the partition
count; an empty key goes to a random partition) or `unknown`.

Guarantees:
- `exact` is True only when the Kafka key bytes of a key are determined by its value: key
  formats int, long, string, bytes and kafka (ksqlDB's KAFKA serializers) read into a
  column that stores the value as the format carries it (`_STORED_AS_READ`: not a date
  from a string key, nor a timestamp from a long one), the shard key being the whole key,
  and a known partitioner. Then `partition(key)` is the partition the
  producers chose.
- Otherwise `partition(key)` is a guess (JSON keys written compactly, in column order) or
  None; a lookup routed by a guess confirms a miss with every owner (`router`).
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable, Sequence
from typing import Any

from connectors.partitioners import murmur2

EXACT_KEY_FORMATS = ("int", "long", "string", "bytes", "kafka")
_KAFKA_PACK = {"int": struct.Struct(">i").pack, "long": struct.Struct(">q").pack,
               "double": struct.Struct(">d").pack}
KeyBytes = Callable[[Sequence[Any]], "bytes | None"]


def murmur2_partition(key: bytes, partitions: int) -> int:
    """The partition the Java client's default partitioner picks for a non-null key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def crc32_partition(key: bytes, partitions: int) -> int:
    """librdkafka's `consistent` / `consistent_random` partition of a non-empty key."""
    return zlib.crc32(key) % partitions


_STORED_AS_READ = {"int": ("int", "long"), "long": ("int", "long"), "double": ("double",),
                   "string": ("string",), "bytes": ("bytes",)}
"""Key format -> the column kinds whose stored form is the value the format carries, so the
Kafka bytes follow from it. Others are not: a string key `2024-01-02` read into a date
column, a long key of milliseconds into a timestamp column, text that a uuid or bytes
column normalizes or decodes; their bytes cannot be told from the stored value."""


def _scalar(fmt: str, kind: str) -> Callable[[Any], bytes] | None:
    """Kafka bytes of one key value (stored form) in a one-value key format, or None when
    the stored form does not determine them."""
    if fmt == "kafka":
        fmt = {"int": "int", "long": "long", "double": "double", "string": "string",
               "bytes": "bytes"}.get(kind, "")
    if kind not in _STORED_AS_READ.get(fmt, ()):
        return None
    if fmt in _KAFKA_PACK:
        return _KAFKA_PACK[fmt]
    if fmt == "string":
        return lambda v: v.encode("utf-8")
    return bytes


def _json_guess(columns: Sequence[str]) -> KeyBytes:
    """The compact JSON a producer most likely wrote: the bare value of a one-column key,
    else an object of the key columns in order."""
    def enc(key: Sequence[Any]) -> bytes | None:
        if not all(v is None or isinstance(v, int | float | str | bool) for v in key):
            return None
        obj: Any = key[0] if len(columns) == 1 else dict(zip(columns, key, strict=True))
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
    return enc


class Partitioning:
    """How to find the partition of a key of one relation (see the module doc)."""

    def __init__(self, partitioner: str, key_format: str, columns: Sequence[str],
                 kinds: Sequence[str], shard_key: Sequence[str] = ()) -> None:
        self.partitioner = partitioner
        whole = not shard_key or tuple(shard_key) == tuple(columns)
        self._bytes: KeyBytes | None = None
        exact = False
        if partitioner != "unknown" and whole:
            if key_format in EXACT_KEY_FORMATS and len(kinds) == 1:
                one = _scalar(key_format, kinds[0])
                if one is not None:
                    self._bytes = lambda key, one=one: None if key[0] is None else one(key[0])
                    exact = True
            elif key_format == "json":
                self._bytes = _json_guess(columns)
        self.exact = exact
        self._hash = crc32_partition if partitioner == "consistent_random" \
            else murmur2_partition

    def key_bytes(self, key: Sequence[Any]) -> bytes | None:
        """The Kafka key bytes of a key (stored form), exact or guessed; None if unknown."""
        if self._bytes is None:
            return None
        try:
            return self._bytes(key)
        except (TypeError, ValueError, struct.error, OverflowError):
            return None

    def partition(self, key: Sequence[Any], partitions: int | None) -> int | None:
        """The partition of `key` (exact when `exact`), or None when there is no way to tell
        (unknown partitioner or partition count, a key format without fixed bytes, an empty
        key under consistent_random)."""
        if not partitions or partitions < 1:
            return None
        kb = self.key_bytes(key)
        if kb is None or (not kb and self.partitioner == "consistent_random"):
            return None
        return self._hash(kb, partitions)

    def is_exact(self, key: Sequence[Any]) -> bool:
        """Whether `partition(key)` is certain (not a guess) for this key."""
        return self.exact and not (self.partitioner == "consistent_random"
                                   and self.key_bytes(key) == b"")

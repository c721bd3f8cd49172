"""Partitioners: where a producer puts a keyed record (Kafka's Java-client default).

`murmur2` is Kafka's murmur2 hash as the Java client, Kafka Connect and Debezium use
it; `partition_for(key, n)` is the partition their default partitioner picks for a
non-null key (librdkafka's `murmur2_random` agrees).
"""

from __future__ import annotations


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash (the Java client's default partitioner), as a signed int32."""
    m = 0x5BD1E995
    length = len(data)
    h = 0x9747B28C ^ length
    end = length & ~3
    for i in range(0, end, 4):
        k = (data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24) * m \
            & 0xFFFFFFFF
        k = ((k ^ k >> 24) * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    extra = length & 3
    if extra == 3:
        h ^= data[end + 2] << 16
    if extra >= 2:
        h ^= data[end + 1] << 8
    if extra >= 1:
        h = ((h ^ data[end]) * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition the Java client's default partitioner picks for a non-null key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions

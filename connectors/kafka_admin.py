"""confluent-kafka wrappers for what is not a worker's source: topic admin (create,
describe, count partitions), one-off reads of partition watermarks, and the client
settings every client takes (`client_conf`, `ungrouped_conf`). Errors are raised as
InfrastructureError naming the topic."""

from __future__ import annotations

import concurrent.futures
import ctypes
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, cast

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    TopicCollection,
    TopicPartition,
    Uuid,
)
from confluent_kafka import version as confluent_kafka_version
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # what confluent_kafka.admin re-exports, unlisted

from connectors.kafka_log import with_logging
from materializer.errors import ConfigError, InfrastructureError


def create_topic(bootstrap: str | Mapping[str, str], name: str, partitions: int = 1,
                 config: dict[str, str] | None = None, timeout: float = 15.0) -> None:
    """Create a topic (an existing one is fine) and wait until its metadata shows it.
    `bootstrap`: the servers, or the whole `kafka:` settings (security included)."""
    settings = {"bootstrap.servers": bootstrap} if isinstance(bootstrap, str) \
        else client_conf(dict(bootstrap))
    admin = AdminClient(with_logging({**settings, "allow.auto.create.topics": False}))
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions,
                                            replication_factor=1, config=config or {})])
    for fut in futures.values():
        try:
            fut.result(timeout)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise InfrastructureError(f"cannot create topic {name}: {e}") from e
        except concurrent.futures.TimeoutError as e:
            raise InfrastructureError(f"no answer creating topic {name} within {timeout} s"
                                      ) from e
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            md = admin.list_topics(name, timeout=5).topics.get(name)
        except KafkaException as e:
            raise InfrastructureError(f"cannot read the metadata of topic {name}: {e}") from e
        if md is not None and md.error is None and len(md.partitions) >= partitions:
            return
        time.sleep(0.05)
    raise InfrastructureError(f"topic {name} did not appear within {timeout} s")


def create_missing_topic(conf: dict[str, str], name: str, partitions: int,
                         replicas: int | None = None, timeout: float = 15.0) -> bool:
    """Create `name` with `partitions` partitions and replication factor `replicas` (the
    broker's default when None), with the full client settings of `conf` (security
    included). True if this call created it, False if it existed already.
    InfrastructureError naming the topic when the broker refuses (a replication factor
    above the number of brokers, no permission) or does not answer within `timeout`."""
    admin = AdminClient(with_logging(client_conf(conf)))
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions,
                                            replication_factor=replicas or -1)],
                                  request_timeout=timeout)
    for fut in futures.values():
        try:
            fut.result(timeout)
        except concurrent.futures.TimeoutError as e:
            raise InfrastructureError(f"no answer creating topic {name} within {timeout} s"
                                      ) from e
        except KafkaException as e:
            err = e.args[0] if e.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return False
            raise InfrastructureError(f"cannot create topic {name} ({partitions} partitions, "
                                      f"replication factor {replicas or 'default'}): {e}"
                                      ) from e
    return True


def brokers(conf: Mapping[str, str]) -> str:
    """The brokers a client of `conf` asks, for a message that they did not answer."""
    return f"the Kafka broker(s) at {conf.get('bootstrap.servers', '?')} (bootstrap.servers)"


class TopicState(NamedTuple):
    """A topic as the broker describes it: its id (a topic deleted and created again gets
    a new one) and its partition count."""

    id: str
    partitions: int


def describe_topics(conf: dict[str, str], topics: Sequence[str], timeout: float = 3.0
                    ) -> dict[str, TopicState | None]:
    """Each topic's id and partition count (None: the topic does not exist).
    InfrastructureError if the broker cannot be asked."""
    admin = AdminClient(with_logging(client_conf(conf)))
    out: dict[str, TopicState | None] = {}
    for topic, fut in admin.describe_topics(TopicCollection(list(topics)),
                                            request_timeout=timeout).items():
        try:
            described = fut.result(timeout)
            release_leaked_topic_id(described)
            out[topic] = TopicState(str(described.topic_id), len(described.partitions))
        except concurrent.futures.TimeoutError as e:
            raise InfrastructureError(f"no answer describing topic {topic} within "
                                      f"{timeout} s from {brokers(conf)}") from e
        except KafkaException as e:
            err = e.args[0] if e.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                out[topic] = None
            else:
                raise InfrastructureError(f"cannot describe topic {topic} at {brokers(conf)}: "
                                          f"{e}") from e
    return out



def topic_max_message_bytes(conf: dict[str, str], topic: str, timeout: float = 5.0
                            ) -> int | None:
    """The largest record batch `topic` takes (its `max.message.bytes`, its own or the
    broker's default), or None when the broker does not say (the topic is missing, the
    request is refused or not answered in `timeout` seconds)."""
    # what confluent_kafka.admin re-exports, unlisted
    from confluent_kafka.admin._config import ConfigResource  # noqa: PLC0415

    admin = AdminClient(with_logging(client_conf(conf)))
    try:
        for fut in admin.describe_configs([ConfigResource("topic", topic)],
                                          request_timeout=timeout).values():
            entry = fut.result(timeout).get("max.message.bytes")
            return int(entry.value) if entry is not None and entry.value else None
    except (KafkaException, concurrent.futures.TimeoutError, ValueError, TypeError):
        return None
    return None


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:3] if p.isdigit())


LAST_LEAKING_VERSION = (2, 16, 2)
"""The newest confluent-kafka seen to leak a TopicDescription's `topic_id` (probe h98).
A newer one is left alone (a fix there could hold the reference some other way, and
releasing it then would free an object in use); tests/ingest/test_topic_check_leak.py
fails if the installed one still leaks, which says to raise this."""
_TOPIC_ID_LEAKS = _version(confluent_kafka_version()[0]) <= LAST_LEAKING_VERSION

_DEC_REF = ctypes.pythonapi.Py_DecRef
_DEC_REF.argtypes = [ctypes.py_object]
_DEC_REF.restype = None


def release_leaked_topic_id(described: Any) -> None:
    """Give back the reference confluent-kafka leaks on a TopicDescription's `topic_id`.

    Its C code (2.16 and earlier: `Admin_c_TopicDescription_to_py`) puts the new Uuid into
    the constructor's keyword arguments and never drops its own reference, so every Uuid of
    every `describe_topics` answer lives for ever: the worker's topic check (every 10 s, one
    per source topic) grew by one such object per topic and check, without bound (probe
    h98: 3 topics, +18 objects a minute per worker process, about 1.2 MB a day; 20 MB a day
    with 50 topics). The reference is dropped only when it is exactly that leak: the
    description's attribute, `uid` here and getrefcount's argument account for 3; a
    fourth is the leaked one. A release that does not leak (3) or holds it elsewhere too
    (more than 4) is left alone. Only for a description fresh from `describe_topics`,
    before anything else refers to its `topic_id` (another holder would pass for the
    leak)."""
    if not _TOPIC_ID_LEAKS:
        return
    uid = vars(described).get("topic_id") if hasattr(described, "__dict__") else None
    if type(uid) is Uuid and sys.getrefcount(uid) == 4:
        _DEC_REF(uid)


_SILENT = logging.getLogger("materializer.kafka.settings-check")
_SILENT.addHandler(logging.NullHandler())
_SILENT.propagate = False


def check_settings(conf: dict[str, str]) -> None:
    """ConfigError (exit 2) with librdkafka's reason when it refuses the client settings
    `conf` (a private key it cannot read, a keystore, an unknown value): a client is made and
    dropped at once, saying nothing, so that a command stops on this plain message before
    its threads build clients of their own (which raised it as a traceback)."""
    try:
        settings: dict[str, Any] = {**client_conf(conf), "logger": _SILENT,
                                    "error_cb": lambda _e: None}
        held = [AdminClient(settings)]
    except KafkaException as e:
        err = e.args[0] if e.args else None
        if not isinstance(err, KafkaError) or err.code() != KafkaError._INVALID_ARG:
            raise
        raise ConfigError(f"the Kafka client refused its settings (`kafka:`): {err.str()}") \
            from None
    # dropped in a thread of its own: librdkafka's teardown waits for a token request in
    # flight (20 s for an OIDC endpoint that does not answer), which must not delay a start
    threading.Thread(target=held.clear, name="kafka-settings-check", daemon=True).start()


def partition_count(bootstrap_conf: dict[str, str], topic: str, timeout: float = 5.0) -> int:
    """Number of partitions of `topic` (0 if it does not exist; asking never creates it,
    which an admin client's metadata request would by default on a broker that allows it)."""
    admin = AdminClient(with_logging({**client_conf(bootstrap_conf),
                                      "allow.auto.create.topics": False}))
    try:
        md = admin.list_topics(topic, timeout=timeout).topics.get(topic)
    except KafkaException as e:
        raise InfrastructureError(f"cannot read the metadata of topic {topic} from "
                                  f"{brokers(bootstrap_conf)}: {e}") from e
    if md is None or md.error is not None:
        return 0
    return len(md.partitions)


_CONSUMER_ONLY = ("group.id", "auto.offset.reset", "enable.auto.commit", "session.timeout.ms",
                  "max.poll.interval.ms", "partition.assignment.strategy",
                  "enable.auto.offset.store", "fetch.min.bytes", "fetch.wait.max.ms",
                  "queued.min.messages", "heartbeat.interval.ms", "isolation.level")


MAX_POLL_INTERVAL_MS = 300_000  # librdkafka's default max.poll.interval.ms


def max_poll_interval_s(conf: Mapping[str, Any]) -> float | None:
    """The group consumer's `max.poll.interval.ms` in seconds (librdkafka's default when
    unset): the longest the worker may go without polling it before it leaves its group;
    None when the setting is no number."""
    try:
        return float(conf.get("max.poll.interval.ms", MAX_POLL_INTERVAL_MS)) / 1000
    except (TypeError, ValueError):
        return None


def client_conf(conf: dict[str, str]) -> dict[str, str | int | float | bool]:
    """Settings that any client accepts (consumer-only ones removed)."""
    return {k: v for k, v in conf.items() if k not in _CONSUMER_ONLY}


def ungrouped_conf(conf: dict[str, str]) -> dict[str, Any]:
    """Settings of a consumer outside any group (`rebuild`, replicated tables, standby
    copies): the group's own removed, `isolation.level` kept, so that they read the same
    records as the worker's group consumer (the worker's readers set it to
    `read_committed` whatever it says: `connectors.kafka_reader`)."""
    kept = {k: conf[k] for k in ("isolation.level",) if k in conf}
    return {**client_conf(conf), **kept}


def cached_watermarks(consumer: Consumer, topic: str, partition: int
                       ) -> tuple[int, int] | None:
    """(log start, high watermark) of a partition from the consumer's last fetch response
    (no broker round trip); None before the first one."""
    try:
        lo, hi = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
    except KafkaException:
        return None
    if lo is None or hi is None or hi < 0:
        return None
    return max(0, int(lo)), int(hi)


def end_offsets(conf: dict[str, str], topic: str, timeout: float = 10.0) -> dict[int, int]:
    """High watermarks of every partition of a topic (see `watermarks`)."""
    return {p: hi for p, (lo, hi) in watermarks(conf, topic, {}, timeout).items()}


def watermarks(conf: dict[str, str], topic: str, start: dict[int, int],
               timeout: float = 5.0) -> dict[int, tuple[int, int]]:
    """(log start, high watermark) of every partition of a topic, {} if it does not exist.

    Read from fetch responses (a short-lived consumer, no group, fetching at `start`'s
    offset of each partition, else the beginning): some brokers (Tansu) answer a
    ListOffsets request with a figure below the true end, a fetch response never does.
    A partition with no answer within `timeout` is left out (its end is unknown).
    InfrastructureError if the broker cannot be asked at all."""
    c = Consumer(with_logging({**client_conf(conf), "group.id": "materializer-status",
                               "enable.auto.commit": False, "auto.offset.reset": "error",
                               "fetch.wait.max.ms": 50, "max.partition.fetch.bytes": 1,
                               "enable.partition.eof": True}))
    try:
        md = c.list_topics(topic, timeout=timeout).topics.get(topic)
        if md is None or md.error is not None:
            return {}
        parts = sorted(md.partitions)
        c.assign([TopicPartition(topic, p, start.get(p) or OFFSET_BEGINNING) for p in parts])
        out: dict[int, tuple[int, int]] = {}
        deadline = time.monotonic() + timeout
        while True:
            for p in parts:
                if p not in out:
                    marks = cached_watermarks(c, topic, p)
                    if marks is not None:
                        out[p] = marks
            if len(out) == len(parts) or time.monotonic() >= deadline:
                return out
            for m in c.consume(1000, 0.05):  # fetch responses update the cached watermarks
                err = m.error()
                if err is not None and err.code() == KafkaError._AUTO_OFFSET_RESET:
                    # Kafka refuses a fetch out of range (its ListOffsets answer is exact)
                    p = cast(int, m.partition())
                    lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
                    out[p] = (max(0, int(lo)), int(hi))
    except KafkaException as e:
        raise InfrastructureError(f"cannot read the end offsets of topic {topic}: {e}") from e
    finally:
        c.close()


def live_keys(conf: dict[str, str], topic: str, timeout: float = 60.0
              ) -> set[tuple[int, bytes]]:
    """(partition, key) of every key whose last message in `topic` (read from its start to
    the end it has now) has a value, i.e. is not a tombstone: what a compacted read of the
    topic holds. Empty for a missing topic; InfrastructureError if the topic cannot be
    read to its end within `timeout` seconds."""
    live: dict[tuple[int, bytes], bool] = {}

    def visit(p: int, key: bytes, value: bytes | None) -> None:
        live[(p, key)] = value is not None
    _read_to_end(conf, topic, timeout, visit)
    return {pk for pk, alive in live.items() if alive}


def last_values(conf: dict[str, str], topic: str, wanted: set[tuple[int, bytes]],
                timeout: float = 60.0) -> dict[tuple[int, bytes], bytes | None]:
    """The last message's value (None: a tombstone) of each (partition, key) of `wanted`
    that `topic` holds, read from its start to the end it has now (the rows a snapshot
    deletes, see materializer.changes.readback); InfrastructureError as `live_keys`."""
    out: dict[tuple[int, bytes], bytes | None] = {}
    if not wanted:
        return out

    def visit(p: int, key: bytes, value: bytes | None) -> None:
        if (p, key) in wanted:
            out[(p, key)] = value
    _read_to_end(conf, topic, timeout, visit)
    return out


def _read_to_end(conf: dict[str, str], topic: str, timeout: float,
                 visit: Callable[[int, bytes, bytes | None], None]) -> None:
    """`visit(partition, key, value)` for every keyed message of `topic`, in each
    partition's order, from its start to the end it has now (nothing for a missing topic)."""
    n = partition_count(conf, topic)
    if n == 0:
        return
    consumer = Consumer(with_logging({
        **ungrouped_conf(conf), "group.id": "materializer-change-topic-keys",
        "enable.auto.commit": False, "enable.partition.eof": True}))
    try:
        # every partition to its end as fetch responses give it (EOF): a ListOffsets
        # answer can be below the true end (Tansu), so the watermarks are not asked
        waiting = set(range(n))
        parts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(n)]
        consumer.assign(parts)
        deadline = time.monotonic() + timeout
        while waiting:
            if time.monotonic() > deadline:
                raise InfrastructureError(f"could not read change topic {topic} to its end "
                                          f"within {timeout:.0f} s")
            for m in consumer.consume(10_000, 0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        waiting.discard(m.partition())
                        continue
                    raise InfrastructureError(f"reading change topic {topic}: {err}")
                key = m.key()
                if key is not None:
                    visit(cast(int, m.partition()), key, m.value())
    finally:
        consumer.close()

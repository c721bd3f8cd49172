"""A producer writing a topic without a pause, in a thread (plain, or in transactions back
to back as an exactly-once application writes): what a replay or a snapshot must finish
under, where no poll comes back empty and, with transactions, a transaction is nearly
always open."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from confluent_kafka import Producer

from materializer.devbroker import DevBroker
from tests.support.workers import unique

STRING_TABLE = """\
tables:
  - name: t
    topic: {topic}
    columns: {{id: string, v: long}}
    primary_key: [id]
    key_format: string
    value_format: json
"""
"""The table these tests declare over such a topic (`.format(topic=...)`): `t`, a string
key `id` and a long `v`, JSON values."""


def _write_until(stop: threading.Event, broker: DevBroker, topic: str, transactions: bool,
                 written: list[int]) -> None:
    """A record `{"id": str(i % 50), "v": i}` (key its id) every 20 ms into partition 0 until
    `stop` (in transactions of 5 with `transactions`); `written` gets the count after each 5."""
    conf = {"bootstrap.servers": broker.bootstrap, "linger.ms": 0}
    if transactions:
        conf["transactional.id"] = unique("tx")
    producer = Producer(conf)
    if transactions:
        producer.init_transactions(30)
    i = 0
    while not stop.is_set():
        if transactions:
            producer.begin_transaction()
        for _ in range(5):
            i += 1
            producer.produce(topic, json.dumps({"id": str(i % 50), "v": i}).encode(),
                             str(i % 50).encode(), partition=0)
            time.sleep(0.02)
        if transactions:
            producer.commit_transaction(30)
        else:
            producer.flush(30)
        written.append(i)
    producer.flush(30)


@contextmanager
def writing(broker: DevBroker, topic: str, transactions: bool, timeout: float = 30
            ) -> Iterator[threading.Thread]:
    """Write `topic` without a pause while inside; entered once some records are in it. The
    thread is given, to check that it was still writing."""
    stop = threading.Event()
    written: list[int] = []
    writer = threading.Thread(target=_write_until,
                              args=(stop, broker, topic, transactions, written), daemon=True)
    writer.start()
    try:
        deadline = time.monotonic() + timeout
        while len(written) < 5:
            assert time.monotonic() < deadline and writer.is_alive(), "the producer wrote nothing"
            time.sleep(0.05)
        yield writer
    finally:
        stop.set()
        writer.join(60)

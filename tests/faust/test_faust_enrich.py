"""examples/faust_enrich: a faust agent enriches orders with the users a materializer
worker keeps (`Store.open(...).table("shop.users").get(k)`), both as real processes on the
embedded broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from materializer.devbroker import DevBroker, free_port
from materializer.errors import NotFound
from materializer.store import Store
from tests.faust.support import ROOT
from tests.support.workers import STARTED, start_worker, wait_until, write_config

pytestmark = pytest.mark.integration
EXAMPLE = ROOT / "examples" / "faust_enrich"


def _users_in(data: Path, n: int) -> bool:
    try:
        return len(Store.open(data).table("shop.users")) >= n
    except NotFound:
        return False


def test_a_faust_agent_enriches_orders_from_a_materializer_table(session_broker: DevBroker,
                                                                  tmp_path: Path) -> None:
    users_topic = session_broker.create_topic(f"users-{uuid.uuid4().hex[:8]}", partitions=2)
    orders_topic = session_broker.create_topic(f"orders-{uuid.uuid4().hex[:8]}", partitions=2)
    out_topic = session_broker.create_topic(f"enriched-{uuid.uuid4().hex[:8]}", partitions=2)
    tables = (EXAMPLE / "tables.yaml").read_text()
    body = tables[tables.index("tables:"):].replace("${USERS_TOPIC:-users}", users_topic)
    config = write_config(tmp_path / "tables.yaml", session_broker, body)
    data = tmp_path / "data"
    start_worker(config)
    p = Producer({"bootstrap.servers": session_broker.bootstrap})
    for uid, name in ((1, "Alice"), (2, "Bob"), (3, "Carol")):
        p.produce(users_topic, key=json.dumps(uid).encode(),
                  value=json.dumps({"id": uid, "name": name}).encode())
    assert p.flush(10) == 0
    wait_until(lambda: _users_in(data, 3), 60, "the materializer worker to keep the users")

    env = {"BROKER": session_broker.bootstrap, "APP_ID": f"enrich-{uuid.uuid4().hex[:8]}",
           "ORDERS_TOPIC": orders_topic, "ENRICHED_TOPIC": out_topic,
           "MATERIALIZER_DATA": str(data), "FAUST_DATADIR": str(tmp_path / "faust"),
           "PYTHONPATH": str(ROOT), "SESSION_TIMEOUT": "6", "HEARTBEAT_INTERVAL": "0.5"}
    faust_proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE / "app.py"), "worker", "-l", "warn",
         "--web-host", "127.0.0.1", "--web-port", str(free_port())],
        env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        cwd=tmp_path)
    STARTED.append(faust_proc)
    for oid, uid in ((100, 1), (101, 2), (102, 3), (103, 9)):
        p.produce(orders_topic, key=str(oid).encode(),
                  value=json.dumps({"order_id": oid, "user_id": uid, "total": 9.5}).encode())
    assert p.flush(10) == 0

    c = Consumer({"bootstrap.servers": session_broker.bootstrap, "group.id": uuid.uuid4().hex,
                  "enable.auto.commit": False})
    c.assign([TopicPartition(out_topic, p, 0) for p in range(2)])
    got: dict[int, dict[str, object]] = {}

    def enriched() -> bool:
        msg = c.poll(0.2)
        if msg is not None and not msg.error():
            v = json.loads(msg.value())
            got[v["order_id"]] = v
        return len(got) == 4

    try:
        wait_until(enriched, 90, "four enriched orders", faust_proc)
    finally:
        c.close()
        faust_proc.send_signal(signal.SIGTERM)
        faust_proc.wait(30)
    assert {o: v["user_name"] for o, v in got.items()} == {100: "Alice", 101: "Bob",
                                                           102: "Carol", 103: None}

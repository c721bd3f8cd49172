"""Readers survive a rebuild: `materializer rebuild` (another process) replaces a table's
files while a `Store` view held by user code and a `materializer serve` process keep
answering, from the old state and then from the new one, never with an error."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.producer import produce_records
from materializer.devbroker import DevBroker, free_port
from materializer.store import Store
from tests.support.api import wait_serving
from tests.support.workers import materialize, run_cli, unique, wait_until, write_config

pytestmark = pytest.mark.integration

TABLE = """\
api:
  listen: 127.0.0.1:{port}
tables:
  - name: shop.users
    topic: {topic}
    columns: {{id: long, name: string}}
    primary_key: [id]
    key_format: long
    value_format: json
"""
OLD = range(0, 300)
NEW = range(1000, 1050)


def _records(keys: range, tag: str) -> list[tuple[bytes | None, bytes | None]]:
    return [(k.to_bytes(8, "big", signed=True), json.dumps({"name": f"{tag}{k}"}).encode())
            for k in keys]


class Hammer:
    """Reads in a loop on a thread until stopped, counting answers and keeping errors."""

    def __init__(self, read: Any) -> None:
        self.read = read
        self.answers: Counter[Any] = Counter()
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            try:
                self.answers.update(self.read(i))
            except Exception as e:  # noqa: BLE001 - any error is what this test looks for
                self.errors.append(repr(e))
                if len(self.errors) > 20:
                    return

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(30)


def test_views_and_the_http_api_answer_through_a_rebuild(session_broker: DevBroker,
                                                          tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("users"), partitions=3)
    conf = session_broker.kafka_config()
    ends = produce_records(conf, topic, _records(OLD, "old"))
    port = free_port()
    cfg = write_config(tmp_path / "t.yaml", session_broker, TABLE.format(port=port, topic=topic))
    store_path = tmp_path / "data"
    materialize(cfg, {"shop.users": ends})
    produce_records(conf, topic, _records(NEW, "new"))  # only the rebuild will apply them

    store = Store.open(store_path)
    view = store.table("shop.users")  # held across the rebuild, as user code would
    assert view.get(5) == {"id": 5, "name": "old5"} and view.get(1001) is None

    def read_view(i: int) -> list[Any]:
        old, new = view.get(OLD[i % len(OLD)]), view.get(NEW[i % len(NEW)])
        many = view.get_many([1, 2, NEW[0]])
        return [("old", old is not None), ("new", new is not None),
                ("many", many[0] is not None and many[1] is not None),
                ("scan", len(view.scan(limit=3)) == 3), ("len", len(view) >= len(OLD))]

    serve = subprocess.Popen([sys.executable, "-m", "materializer", "serve", str(cfg)],
                             stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_serving(url, serve), "serve did not start"
        client = httpx.Client(base_url=url, timeout=10)

        def read_http(i: int) -> list[Any]:
            old = client.get(f"/tables/shop.users/rows/{OLD[i % len(OLD)]}").status_code
            new = client.get(f"/tables/shop.users/rows/{NEW[i % len(NEW)]}").status_code
            return [("old", old), ("new", new)]

        hammers = [Hammer(read_view), Hammer(read_http)]
        wait_until(lambda: all(sum(h.answers.values()) > 20 for h in hammers), 30,
                   "reads before the rebuild")
        rebuilt = run_cli("rebuild", str(cfg), "shop.users", timeout=120)
        assert rebuilt.returncode == 0, rebuilt.stderr
        wait_until(lambda: view.get(NEW[-1]) is not None, 10, "the view to see the rebuild")
        wait_until(lambda: client.get(f"/tables/shop.users/rows/{NEW[-1]}").status_code == 200,
                   10, "the API to see the rebuild")
        before = [sum(h.answers.values()) for h in hammers]
        wait_until(lambda: all(sum(h.answers.values()) > b + 20
                               for h, b in zip(hammers, before, strict=True)), 30,
                   "reads after the rebuild")
        for h in hammers:
            h.finish()
        client.close()
    finally:
        serve.terminate()
        _, err = serve.communicate(timeout=30)
    view_hammer, http_hammer = hammers
    assert not view_hammer.errors, view_hammer.errors[:3]
    assert not http_hammer.errors, http_hammer.errors[:3]
    # a row that exists before and after is found by every read, throughout
    assert view_hammer.answers[("old", False)] == 0
    assert view_hammer.answers[("many", False)] == 0
    assert view_hammer.answers[("scan", False)] == 0 and view_hammer.answers[("len", False)] == 0
    assert view_hammer.answers[("new", True)] > 0 and view_hammer.answers[("new", False)] > 0
    statuses = {status for (_, status) in http_hammer.answers}
    assert statuses <= {200, 404}, http_hammer.answers
    assert http_hammer.answers[("old", 404)] == 0
    assert http_hammer.answers[("new", 200)] > 0
    assert b"Traceback" not in err, err.decode(errors="replace")[-3000:]
    assert view.get(1049) == {"id": 1049, "name": "new1049"}
    assert len(view) == len(OLD) + len(NEW)
    store.close()


def test_a_failed_rebuild_leaves_the_state_as_it_was(session_broker: DevBroker,
                                                      tmp_path: Path) -> None:
    topic = session_broker.create_topic(unique("users"), partitions=2)
    ends = produce_records(session_broker.kafka_config(), topic, _records(OLD, "old"))
    cfg = write_config(tmp_path / "t.yaml", session_broker,
                       TABLE.format(port=free_port(), topic=topic))
    store_path = tmp_path / "data"
    materialize(cfg, {"shop.users": ends})
    relations = store_path / "relations"
    before = sorted(p.name for p in relations.iterdir())
    link = next(p for p in relations.iterdir() if p.is_symlink())
    (relations / f"{link.name}@0123456789ab").mkdir()  # what a rebuild killed -9 leaves
    broken = tmp_path / "broken.yaml"
    broken.write_text(cfg.read_text().replace(f"topic: {topic}", f"topic: {unique('gone')}"))
    failed = run_cli("rebuild", str(broken), "shop.users", timeout=120)
    assert failed.returncode == 1, failed.stderr
    assert "does not exist" in failed.stderr and "Traceback" not in failed.stderr
    assert sorted(p.name for p in relations.iterdir()) == before  # the leftover went too
    with Store.open(store_path) as store:
        assert len(store.table("shop.users")) == len(OLD)

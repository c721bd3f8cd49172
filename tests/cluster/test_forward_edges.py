"""Forwarded requests between two real workers name the same key, and a miss at a worker that
owns every partition of a table is an authoritative 404.

One-partition topics make the roles certain: one worker owns the partition (and so answers
the table alone), the other owns none and forwards every point lookup and stream read to it.
Keys `.`, `..` and `` (empty) live side by side: a forwarded path normalised by the HTTP
client (`/rows/%2E` sent as `/rows/`) answers the row of another key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connectors.producer import produce_records
from materializer import Client
from materializer.devbroker import DevBroker
from tests.cluster.helpers import Node, cluster_yaml, start_node, wait_serving
from tests.support.workers import unique, wait_until

BODY = """\
tables:
  - name: edge.words
    topic: {words}
    columns: {{w: string, v: string}}
    primary_key: [w]
    key_format: string
streams:
  - name: edge.says
    topic: {says}
    columns: {{w: string, v: string}}
    key: [w]
    key_format: string
"""
KEYS = [".", "..", "", "x", "a/b", "%2E", "..."]
PATHS = {".": "%2E", "..": "%2E%2E", "": "", "x": "x", "a/b": "a%2Fb", "%2E": "%252E",
         "...": "..."}


def _row(key: str) -> dict[str, str]:
    return {"w": key, "v": f"row of {key!r}"}


Roles = tuple["Pair", dict[str, tuple[Node, Node]]]


class Pair:
    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = nodes
        self.http = httpx.Client(timeout=10)
        self.last: Any = None  # what `roles` saw last (for a timeout's message)

    def view(self, node: Node) -> dict[str, Any]:
        r: dict[str, Any] = self.http.get(f"{node.url}/cluster").json()
        return r

    def roles(self) -> dict[str, tuple[Node, Node]] | None:
        """Per relation (owner, other) of its one partition, once both workers agree on it
        and see each other live, and the owners hold every row and event."""
        views = [self.view(n) for n in self.nodes]
        self.last = views
        out = {}
        for rel in ("edge.words", "edge.says"):
            owners = {v["relations"].get(rel, {}).get("owners", {}).get("0") for v in views}
            if len(owners) != 1 or None in owners:
                return None
            owner = next(n for n in self.nodes if n.name in owners)
            out[rel] = owner, next(n for n in self.nodes if n is not owner)
        if any({m["id"] for m in v["members"] if m["live"]} != {"a", "b"} for v in views):
            return None
        owner = out["edge.words"][0]
        held = self.http.post(f"{owner.url}/tables/edge.words/lookup",
                              json={"keys": [[k] for k in KEYS]},
                              headers={"x-materializer-forwarded": "test"})
        self.last = held.text
        if held.status_code != 200 or held.json()["rows"] != [_row(k) for k in KEYS]:
            return None
        owner = out["edge.says"][0]
        events = self.http.get(f"{owner.url}/streams/edge.says/keys/x/events",
                               headers={"x-materializer-forwarded": "test"})
        self.last = events.text
        if events.status_code != 200 or len(events.json()["events"]) != 2:
            return None
        return out


@pytest.fixture(scope="module")
def pair(session_broker: DevBroker, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[Pair, dict[str, tuple[Node, Node]]]]:
    conf = session_broker.kafka_config()
    words = session_broker.create_topic(unique("words"), partitions=1)
    says = session_broker.create_topic(unique("says"), partitions=1)
    produce_records(conf, words, [(k.encode(), json.dumps({"v": f"row of {k!r}"}).encode())
                                  for k in KEYS])
    produce_records(conf, says, [(k.encode(), json.dumps({"v": f"{k!r} said {i}"}).encode())
                                 for i in range(2) for k in KEYS])
    cfg = tmp_path_factory.mktemp("forward-edges") / "cluster.yaml"
    cfg.write_text(cluster_yaml(session_broker, unique("g"),
                                BODY.format(words=words, says=says)))
    nodes = [start_node(cfg, "a", register=False), start_node(cfg, "b", register=False)]
    p = Pair(nodes)
    try:
        for n in nodes:
            wait_serving(n)
        try:
            roles = wait_until(p.roles, 60, "each relation's one partition owned, its rows "
                                            "held, the two workers seeing each other")
        except BaseException:
            print("last seen:", p.last)
            raise
        yield p, roles
    finally:
        p.http.close()
        for n in nodes:
            if n.proc.poll() is None:
                n.proc.kill()
                n.proc.wait(10)


def test_a_forwarded_point_lookup_answers_the_key_asked(pair: Roles) -> None:
    p, roles = pair
    for node in roles["edge.words"]:  # the other forwards each of them to the owner
        for key in KEYS:
            r = p.http.get(f"{node.url}/tables/edge.words/rows/{PATHS[key]}")
            assert (r.status_code, r.json()) == (200, _row(key)), (node.name, key, r.text)


def test_a_forwarded_stream_read_answers_the_key_asked(pair: Roles) -> None:
    p, roles = pair
    for node in roles["edge.says"]:
        for key in KEYS:
            r = p.http.get(f"{node.url}/streams/edge.says/keys/{PATHS[key]}/events")
            assert r.status_code == 200, (node.name, key, r.text)
            assert r.json()["events"] == [{"w": key, "v": f"{key!r} said {i}"}
                                          for i in (1, 0)], (node.name, key)


def test_a_miss_at_the_owner_of_every_partition_is_a_404_everywhere(pair: Roles) -> None:
    p, roles = pair
    owner, other = roles["edge.words"]
    for node in (other, owner):
        r = p.http.get(f"{node.url}/tables/edge.words/rows/nope")
        assert r.status_code == 404, (node.name, r.status_code, r.text)
        assert "retry-after" not in r.headers
    # the owner, asked as a forwarding worker asks: a miss saying what it covered
    r = p.http.get(f"{owner.url}/tables/edge.words/rows/nope",
                   headers={"x-materializer-forwarded": "test"})
    assert r.status_code == 404 and r.headers["x-materializer-partitions"] == "0"
    r = p.http.get(f"{owner.url}/tables/edge.words/rows/x",
                   headers={"x-materializer-forwarded": "test"})
    assert (r.status_code, r.json()) == (200, _row("x"))
    for node in roles["edge.says"]:
        r = p.http.get(f"{node.url}/streams/edge.says/keys/nope/events")
        assert (r.status_code, r.json()) == (200, {"events": []}), node.name


def test_the_client_sends_dot_keys_encoded(pair: Roles) -> None:
    p, roles = pair
    for node in p.nodes:
        with Client(node.url, retry_for=5) as client:
            words = client.table("edge.words")
            for key in KEYS:
                assert words.get(key) == _row(key), (node.name, key)
            assert words.get("nope") is None
            assert words.get_many([".", "..", "nope"]) == [_row("."), _row(".."), None]
            assert client.stream("edge.says").events("..", limit=1) == \
                [{"w": "..", "v": "'..' said 1"}]


def test_scans_across_the_workers_read_prefixes_strictly(pair: Roles) -> None:
    p, roles = pair
    for node in roles["edge.words"]:
        r = p.http.get(f"{node.url}/tables/edge.words/rows?prefix=%ff")
        assert r.status_code == 400 and "not UTF-8" in r.json()["detail"], node.name
        for key in (".", "..", "a/b"):
            r = p.http.get(f"{node.url}/tables/edge.words/rows", params={"prefix": key})
            assert r.json() == {"rows": [_row(key)], "next": None}, (node.name, key)
        r = p.http.get(f"{node.url}/tables/edge.words%2Frows")  # no table of that name
        assert r.status_code == 404, (node.name, r.text)

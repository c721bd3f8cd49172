"""The three-worker cluster of tests/cluster/test_cluster.py: started once, then each phase
of that test asks it about its members, owners, standbys and answers (`Cluster`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from connectors.producer import produce_records
from materializer.devbroker import DevBroker
from tests.cluster.helpers import (
    TABLES,
    Node,
    carts_changelog,
    clicks_log,
    cluster_yaml,
    start_node,
    users_changelog,
    users_table_fold,
    wait_serving,
)
from tests.support.workers import unique, wait_until

N_USERS, N_CARTS = 240, 120
MEMBER_TIMEOUT = 4.0  # cluster.member_timeout_ms in tests.cluster.helpers.cluster_yaml


class Cluster:
    def __init__(self, nodes: list[Node], users: dict[int, str | None],
                 carts: dict[str, int | None], cfg: Path, ends: dict[int, int],
                 conf: dict[str, str], topic: str) -> None:
        self.nodes, self.users, self.carts, self.cfg = nodes, users, carts, cfg
        self.ends, self.conf, self.users_topic = ends, conf, topic
        self.http = httpx.Client(timeout=10)

    def get(self, node: Node, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(node.url + path, **kw)

    def view(self, node: Node) -> dict[str, Any]:
        return self.get(node, "/cluster").json()

    def owners(self, node: Node, relation: str = "shop.users") -> dict[int, str | None]:
        rel = self.view(node)["relations"].get(relation, {})
        return {int(p): o for p, o in rel.get("owners", {}).items()}

    def live(self, node: Node) -> set[str]:
        return {m["id"] for m in self.view(node)["members"] if m["live"]}

    def settled(self, node: Node, members: set[str]) -> bool:
        """The group's rebalance is over: every partition of every relation owned by one of
        `members`, and each of them owning some (cooperative-sticky balances the count over
        all topics: a member may own every partition of one table and none of another)."""
        rels = self.view(node)["relations"]
        owners = [o for rel in rels.values() for o in rel.get("owners", {}).values()
                  if o is not None]
        return len(rels) == 3 and len(owners) == 18 and set(owners) == members

    def quiet(self, node: Node, members: set[str], seconds: float = 3.0) -> bool:
        """Settled, and no member's assignment changed in the last `seconds` (on the
        embedded broker, members leaving within a second of a rebalance's end were once
        seen to leave the survivor without their partitions for over a minute)."""
        if not self.settled(node, members):
            return False
        newest = max(m["assigned_at"] for m in self.view(node)["members"] if m["live"])
        return time.time() * 1000 - newest >= seconds * 1000

    def warm(self, node: Node, members: set[str]) -> bool:
        """Every partition of shop.users owned by one of `members`, with a caught-up
        standby among the others."""
        view = self.view(node)
        rel = view["relations"].get("shop.users")
        if not rel or len(rel["owners"]) != 6 or self.live(node) != members:
            return False
        lag = {m["id"]: m["relations"]["shop.users"]["lag"] for m in view["members"]
               if m["live"]}
        return all(o in members and rel["standbys"].get(p) and rel["standbys"][p][0] != o
                   and lag[rel["standbys"][p][0]].get(p) == 0
                   for p, o in rel["owners"].items())


@contextmanager
def running_cluster(session_broker: DevBroker, tmp: Path) -> Iterator[Cluster]:
    """Three workers as described in the module doc, stopped (killed) on leaving."""

    conf = session_broker.kafka_config()
    users, carts, clicks = (session_broker.create_topic(unique(t), partitions=6)
                            for t in ("users", "carts", "clicks"))
    u_records, u_fold = users_changelog(N_USERS)
    c_records, c_fold = carts_changelog(N_CARTS)
    ends = produce_records(conf, users, u_records)
    produce_records(conf, carts, c_records, partitioner="consistent_random")
    produce_records(conf, clicks, clicks_log(12, 3))
    cfg = tmp / "cluster.yaml"
    cfg.write_text(cluster_yaml(session_broker, unique("g"),
                                TABLES.format(users=users, carts=carts, clicks=clicks),
                                extra="standby_replicas: 1\n"))
    nodes = [start_node(cfg, "a", flags=False, register=False),
             start_node(cfg, "b", register=False), start_node(cfg, "c", register=False)]
    c = Cluster(nodes, u_fold, c_fold, cfg, ends, conf, users)
    try:
        for n in nodes:
            wait_serving(n)
        wait_until(lambda: all(c.warm(n, {"a", "b", "c"}) for n in nodes), 90,
                   "three workers to split every partition, each with a warm standby")
        wait_until(lambda: users_table_fold(c, nodes[0]) == u_fold, 60,
                   "the users table to equal the fold")
        yield c
    finally:
        c.http.close()
        for n in c.nodes:
            if n.proc.poll() is None:
                n.proc.kill()
                n.proc.wait(10)

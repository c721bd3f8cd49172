"""The cluster's figures in `/metrics` (Prometheus text), from the API's own router and the
routing table its worker keeps.

- `materializer_cluster_members{state}`: live and expired members of the group;
- `materializer_cluster_generation`: the group generation of this worker's assignment;
- `materializer_cluster_partitions{relation,role}`: partitions this worker owns / keeps
  as standby;
- `materializer_standby_lag{relation,partition}`: records each standby partition of this
  worker is behind its topic's end;
- `materializer_forwarded_total{member,request,outcome}` and `materializer_forward_seconds`
  (a histogram per member): lookups this API forwarded to other workers;
- rebalances are `materializer_rebalances_total` (the worker's assignments).
"""

from __future__ import annotations

from typing import Any

from materializer.api.metrics import Exposition


def add_cluster_metrics(exp: Exposition, router: Any) -> None:
    """Add the cluster figures of `router` (a `ClusterRouter`, or None: nothing)."""
    if router is None:
        return
    routing = router.view.routing()
    if routing is not None:
        for state, group in (("live", routing.members), ("expired", routing.expired)):
            exp.add("materializer_cluster_members", "gauge",
                    "Members of the group in this worker's routing table.", len(group),
                    state=state)
        me = routing.me
        if me is not None:
            if me.generation is not None:
                exp.add("materializer_cluster_generation", "gauge",
                        "Consumer group generation of this worker's assignment.",
                        me.generation)
            for name, st in sorted(me.relations.items()):
                if st.replicated:
                    continue
                for role, parts in (("owned", st.assigned), ("standby", st.standby)):
                    exp.add("materializer_cluster_partitions", "gauge",
                            "Partitions this worker owns or keeps as a standby copy.",
                            len(parts), relation=name, role=role)
                for p in st.standby:
                    lag = st.lag.get(p)
                    if lag is not None:
                        exp.add("materializer_standby_lag", "gauge",
                                "Records a standby partition is behind its topic's end.",
                                lag, relation=name, partition=p)
    fwd = router.forwarder
    for (member, what), n in sorted(fwd.outcomes.items()):
        kind, _, outcome = what.partition(":")
        exp.add("materializer_forwarded_total", "counter",
                "Lookups this API forwarded to another worker, by target, request and outcome.",
                n, member=member, request=kind, outcome=outcome)
    hist, _ = fwd.latency.snapshot()
    for member, (counts, total) in sorted(hist.items()):
        cum, pairs = 0, []
        for le, c in zip(fwd.latency.buckets, counts, strict=False):
            cum += c
            pairs.append((le, cum))
        exp.histogram("materializer_forward_seconds",
                      "Latency of lookups forwarded to another worker, by target.",
                      pairs, total, sum(counts), member=member)

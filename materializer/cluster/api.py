"""What the lookup API answers about the cluster (`GET /cluster`)."""

from __future__ import annotations

from typing import Any

from materializer.cluster.view import ClusterView


def cluster_answer(view: ClusterView | None) -> dict[str, Any]:
    """Members (live, then expired) with their partitions, standbys, lag, generation and
    last heartbeat, and per relation the owner and standbys of each partition; or
    `standalone: true` when no worker runs beside this API."""
    routing = view.routing() if view is not None else None
    if routing is None:
        return {"standalone": True, "self": None, "members": [], "relations": {}}
    return {"standalone": False, **routing.describe()}

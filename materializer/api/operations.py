"""The operations endpoints of the API: `/healthz`, `/readyz`, `/metrics`, `/cluster` (and
the internal partition copy of cluster failover). Handlers read through `ApiState` as the
lookup endpoints (`materializer.api.routes`) do."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from materializer.api.metrics import (
    CONTENT_TYPE,
    Exposition,
    add_latency_metrics,
    add_process_metrics,
    add_store_metrics,
    add_worker_metrics,
)
from materializer.api.models import ClusterResponse, Health, Readiness
from materializer.api.readiness import HEALTHY, ready_answer
from materializer.api.routes import api_state, dumps
from materializer.errors import MaterializerError
from materializer.status import read_status

router = APIRouter()


@router.get("/cluster", response_model=ClusterResponse, tags=["operations"],
            summary="The cluster: members, their partitions and standbys, lag, heartbeats",
            description="As this worker last read the membership topic of its group; "
                        "`standalone: true` when no worker runs beside this API.")
async def cluster(request: Request) -> Response:
    from materializer.cluster.api import cluster_answer  # noqa: PLC0415

    routing = api_state(request).cluster
    answer = cluster_answer(routing.view if routing is not None else None)
    return Response(dumps(answer), media_type="application/json")


@router.get("/cluster/copy/{relation}/{partition}", include_in_schema=False)
async def cluster_copy(relation: str, partition: int, request: Request) -> Response:
    """A partition of this worker's store for a worker taking it over (cluster failover)."""
    from materializer.cluster.handover import copy_answer  # noqa: PLC0415

    answer: Response = await copy_answer(api_state(request), relation, partition)
    return answer


@router.get("/healthz", response_model=Health, tags=["operations"], summary="Alive")
async def healthz() -> Response:
    return Response(HEALTHY, media_type="application/json")


@router.get("/readyz", response_model=Readiness, tags=["operations"],
            summary="Caught up with every assigned partition",
            responses={503: {"model": Readiness, "description": "Not ready."}})
async def readyz(request: Request) -> Response:
    status, body = ready_answer(api_state(request).store_path)
    return Response(body, status, media_type="application/json")


@router.get("/metrics", tags=["operations"], summary="Prometheus text exposition",
            response_class=Response,
            responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}},
                             "description": "Prometheus text format 0.0.4."}})
async def metrics(request: Request) -> Response:
    state = api_state(request)
    exp = Exposition()
    stats = {}
    for name in state.store.names():
        try:
            stats[name] = state.store.relation(name).partition_stats()
        except MaterializerError:
            continue
    add_store_metrics(exp, stats)
    add_worker_metrics(exp, read_status(state.store_path))
    own = {} if state.api_process is None else {"api_process": state.api_process}
    add_latency_metrics(exp, state.latency, **own)
    from materializer.cluster.metrics import add_cluster_metrics  # noqa: PLC0415

    add_cluster_metrics(exp, state.cluster)  # members, forwarded lookups, standby lag
    add_process_metrics(exp, **own)
    return Response(exp.text(), media_type=CONTENT_TYPE)

"""``GET /metrics``: Prometheus text exposition of the request counters and latency histogram."""

from __future__ import annotations

from litestar import Response, get
from litestar.datastructures import State
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


@get("/metrics", summary="Prometheus metrics", tags=["operations"], security=[{}], include_in_schema=False)
async def metrics(state: State) -> Response[bytes]:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

"""``GET /metrics``: Prometheus text exposition of the request counters and latency histogram."""

from __future__ import annotations

from litestar import Response, get
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from patron.api.edge import Injected
from patron.api.observe import Metrics


@get("/metrics", summary="Prometheus metrics", tags=["operations"], security=[{}], include_in_schema=False)
async def metrics(metrics: Injected[Metrics]) -> Response[bytes]:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

"""``GET /metrics``: Prometheus text exposition of every process's counters and the database's values
(``api.observe.Metrics``; docs/operations.md lists them)."""

from __future__ import annotations

from litestar import Response, get
from prometheus_client import CONTENT_TYPE_LATEST

from patron.api.edge import Injected
from patron.api.observe import Metrics


@get("/metrics", summary="Prometheus metrics", tags=["operations"], security=[{}], include_in_schema=False)
async def metrics(metrics: Injected[Metrics]) -> Response[bytes]:
    return Response(await metrics.scrape(), media_type=CONTENT_TYPE_LATEST)

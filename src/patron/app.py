"""Builds the Litestar application: routes, guards, error handling, OpenAPI, and its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.static_files import create_static_files_router

from patron.accounts import KeyResolver
from patron.api import (
    account,
    docs,
    email,
    entities,
    gdpr,
    health,
    links,
    lists,
    metrics,
    profiles,
    push,
    tracking,
    unsubscribes,
)
from patron.api.auth import authorise, current_account, send_rate_headers
from patron.api.observe import Metrics, Observer
from patron.api.paging import EmptyParameters
from patron.api.problems import EXCEPTION_HANDLERS
from patron.config import Settings
from patron.email.sandbox import Renderer
from patron.ingest.supervisor import NoWorker, WorkerProcess
from patron.ratelimits import RateLimiter
from patron.store import Store

#: Every Data API route, all behind the API key and the account's rate limits.
V2_HANDLERS = [
    account.read_account,
    push.push,
    push.push_errors,
    push.push_status,
    *entities.HANDLERS,
    *profiles.HANDLERS,
    *lists.HANDLERS,
    *unsubscribes.HANDLERS,
    *gdpr.HANDLERS,
    *email.HANDLERS,
]


def create_app(settings: Settings, store: Store) -> Litestar:
    """The application for ``store``; the lifespan starts the store and closes it on shutdown."""

    worker = WorkerProcess(settings) if settings.run_worker else NoWorker()
    # Processes that share a database (PostgreSQL, or `serve --workers N`) and no Redis count
    # requests in the database.
    several = store.parallel_workers or settings.api_processes > 1
    shared = store if several and not settings.redis_url else None
    limiter = RateLimiter(settings.redis_url, shared)
    renderer = Renderer()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        store.start()
        worker.start()
        try:
            yield
        finally:
            worker.stop()
            await limiter.close()
            renderer.close()
            store.close()

    v2 = Router(
        path="/v2",
        route_handlers=[*V2_HANDLERS, *([push.noop] if settings.bench_noop else [])],
        guards=[authorise],
        dependencies={"account": Provide(current_account, sync_to_thread=False)},
        security=[{"apikey": []}],
    )
    metrics_state = Metrics()
    app = Litestar(
        route_handlers=[
            v2,
            health.health,
            health.ready,
            metrics.metrics,
            docs.swagger_json,
            *links.HANDLERS,
            *tracking.HANDLERS,
            create_static_files_router(
                path=docs.ASSETS_PATH, directories=[docs.ASSETS], include_in_schema=False
            ),
        ],
        state=State(
            {
                "store": store,
                "key_resolver": KeyResolver(store),
                "limiter": limiter,
                "renderer": renderer,
                "track_limiter": RateLimiter(),
                "track_accounts": tracking.Accounts(),
                "metrics": metrics_state,
                "worker": worker,
                "settings": settings,
            }
        ),
        lifespan=[lifespan],
        before_send=[send_rate_headers],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=docs.openapi_config(),
        request_max_body_size=settings.max_body_bytes,
        logging_config=None,
        debug=False,
    )
    app.asgi_handler = Observer(EmptyParameters(app.asgi_handler), metrics_state)
    return app

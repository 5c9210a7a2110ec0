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
    bench,
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
    report,
    segments,
    tracking,
    unsubscribes,
    webhooks,
)
from patron.api.auth import authorise, current_account, send_rate_headers
from patron.api.edge import EDGE, Edge
from patron.api.observe import Metrics, Observer
from patron.api.paging import EmptyParameters
from patron.api.problems import EXCEPTION_HANDLERS
from patron.config import Settings
from patron.console import router as console_router
from patron.email.sandbox import Renderer
from patron.ingest.submit import Submitter
from patron.ingest.supervisor import NoWorker, WorkerProcess
from patron.ratelimits import RateLimiter
from patron.store import Store
from patron.tracking.collect import Collector

#: Every Data API route, all behind the API key and the account's rate limits.
V2_HANDLERS = [
    account.read_account,
    *report.HANDLERS,
    push.push,
    push.push_errors,
    push.push_status,
    *entities.HANDLERS,
    *profiles.HANDLERS,
    *lists.HANDLERS,
    *segments.HANDLERS,
    *unsubscribes.HANDLERS,
    *gdpr.HANDLERS,
    *email.HANDLERS,
    *webhooks.HANDLERS,
]


def create_app(settings: Settings, store: Store) -> Litestar:
    """The application for ``store``; the lifespan starts the store and closes it on shutdown."""

    worker = WorkerProcess(settings) if settings.run_worker else NoWorker()
    # Processes that share a database (PostgreSQL, or `serve --workers N`) and no Redis count
    # requests in the database.
    several = store.parallel_workers or settings.api_processes > 1
    shared = store if several and not settings.redis_url else None
    submit = Submitter(store, worker.wake)
    edge = Edge(
        settings=settings,
        store=store,
        worker=worker,
        key_resolver=KeyResolver(store),
        limiter=RateLimiter(settings.redis_url, shared),
        renderer=Renderer(),
        metrics=Metrics(store),
        submit=submit,
        collector=Collector(submit, RateLimiter(), settings.track_per_address, settings.track_per_visitor),
    )

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        store.start()
        worker.start()
        try:
            yield
        finally:
            worker.stop()
            await edge.limiter.close()
            edge.renderer.close()
            store.close()

    v2 = Router(
        path="/v2",
        # the benchmark's no-op push only in a server started for the benchmark (bench/push.py)
        route_handlers=[*V2_HANDLERS, *([bench.noop] if settings.bench_noop else [])],
        guards=[authorise],
        dependencies={"account": Provide(current_account, sync_to_thread=False)},
        security=[{"apikey": []}],
    )
    app = Litestar(
        route_handlers=[
            v2,
            health.health,
            health.ready,
            metrics.metrics,
            docs.swagger_json,
            links.ROUTER,
            *tracking.HANDLERS,
            console_router(),
            create_static_files_router(
                path=docs.ASSETS_PATH, directories=[docs.ASSETS], include_in_schema=False
            ),
        ],
        state=State({EDGE: edge}),
        dependencies=edge.dependencies(),
        lifespan=[lifespan],
        before_send=[send_rate_headers],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=docs.openapi_config(),
        request_max_body_size=settings.max_body_bytes,
        logging_config=None,
        debug=False,
    )
    app.asgi_handler = Observer(EmptyParameters(app.asgi_handler))
    return app

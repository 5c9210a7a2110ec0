"""The console (an extension): a web interface at ``/console`` where operators (:mod:`patron.operators`)
see, check and act on the accounts granted to them. Server-rendered Jinja2 pages, htmx for partial
updates, installed from npm with the other third-party front-end code; nothing from elsewhere."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, Router
from litestar.static_files import create_static_files_router

from patron.console import (
    accounts,
    catalogue,
    charts,
    customers,
    email_pages,
    imports,
    lists_pages,
    live,
    segments_pages,
    session,
    settings,
    webhooks_pages,
)
from patron.console.render import ASSETS_PATH, OWN, VENDOR, VENDOR_PATH, page
from patron.errors import Forbidden, NotFound, PatronError

#: The third-party packages the console serves (and nothing else of ``node_modules``).
VENDORED = ("htmx.org/dist", "uplot/dist")


def _said(exc: PatronError) -> str:
    """What a person is told: the messages, without the fields' names."""
    return "; ".join(e.message for e in exc.errors) or str(exc)


def _not_found(request: Request[Any, Any, Any], exc: NotFound) -> Response[str]:
    return page("problem.html", "Not found", status=404, detail=_said(exc))


def _forbidden(request: Request[Any, Any, Any], exc: Forbidden) -> Response[str]:
    return page("problem.html", "Not allowed", status=403, detail=_said(exc))


def router() -> Router:
    """Every console route, with its session dependencies and its own error pages."""
    return Router(
        path="/",
        route_handlers=[
            *session.HANDLERS,
            *accounts.HANDLERS,
            *customers.HANDLERS,
            *imports.HANDLERS,
            *live.HANDLERS,
            *catalogue.HANDLERS,
            *lists_pages.HANDLERS,
            *segments_pages.HANDLERS,
            *webhooks_pages.HANDLERS,
            *email_pages.HANDLERS,
            *settings.HANDLERS,
            *charts.HANDLERS,
            create_static_files_router(path=ASSETS_PATH, directories=[OWN], include_in_schema=False),
            *(
                create_static_files_router(
                    path=f"{VENDOR_PATH}/{name}", directories=[VENDOR / name], include_in_schema=False
                )
                for name in VENDORED
            ),
        ],
        dependencies=session.DEPENDENCIES,
        exception_handlers={
            session.SignInNeeded: session.to_sign_in,
            NotFound: _not_found,
            Forbidden: _forbidden,
        },
        include_in_schema=False,
    )

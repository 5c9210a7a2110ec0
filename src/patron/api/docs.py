"""The OpenAPI 3.1 document at ``/v2/swagger.json`` and Swagger UI at ``/v2/docs``, from bundled assets.

Litestar builds the document from the same msgspec types the handlers use. Swagger UI comes from the
npm package ``swagger-ui-dist`` copied into ``patron/static/swagger-ui``: no page loads anything from a
CDN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Request, Response, Router, get
from litestar.exceptions import NotFoundException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from patron import __version__
from patron.api.auth import AUTH_HEADER

ASSETS = Path(__file__).parent.parent / "static" / "swagger-ui"
DOCS_PATH = "/v2/docs"
ASSETS_PATH = f"{DOCS_PATH}/assets"


def _not_found_as_problem(response: Response[Any]) -> Response[Any]:
    """Litestar answers unknown paths under the docs with an HTML page; make it a problem like the rest."""
    if response.status_code == 404:
        raise NotFoundException()
    return response


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Patron: Ometria Data API v2",
        version=__version__,
        description=(
            "A self-hosted implementation of the Ometria Data API v2. Every `/v2` route needs the"
            f" `{AUTH_HEADER}` header; errors are RFC 9457 `application/problem+json`."
        ),
        path=DOCS_PATH,
        openapi_router=Router(
            DOCS_PATH, route_handlers=[], include_in_schema=False, after_request=_not_found_as_problem
        ),
        components=Components(
            security_schemes={
                "apikey": SecurityScheme(type="apiKey", name=AUTH_HEADER, security_scheme_in="header")
            }
        ),
        render_plugins=[
            SwaggerRenderPlugin(
                path="/",
                js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
                css_url=f"{ASSETS_PATH}/swagger-ui.css",
                standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
                favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
            ),
        ],
    )


@get("/v2/swagger.json", include_in_schema=False, media_type="application/json", sync_to_thread=False)
def swagger_json(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The OpenAPI document, at the path Ometria's reference uses for its swagger file."""
    return request.app.openapi_schema.to_schema()

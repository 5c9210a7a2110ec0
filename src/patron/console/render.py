"""The console's pages: Jinja2 templates of ``console/templates`` (every value escaped), sent with the
headers of every HTML page of Patron and a Content-Security-Policy that lets only this server's
scripts and styles run (no inline script: ``static/console/console.js`` wires htmx and the charts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from litestar import Response
from litestar.enums import MediaType

from patron.api.pages import secure

TEMPLATES = Path(__file__).parent / "templates"
#: The console's own stylesheet and script, and the third-party code installed from npm.
OWN = Path(__file__).parent.parent / "static" / "console"
VENDOR = Path(__file__).parent.parent / "static" / "vendor" / "node_modules"
ASSETS_PATH = "/console/assets"
VENDOR_PATH = "/console/vendor"
#: This server's scripts, styles and images; forms post here; live updates come from here.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_environment = Environment(
    loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True
)
#: A value as JSON text, shown as it is (then escaped like everything else; ``tojson`` is for scripts).
_environment.filters["json"] = lambda value: json.dumps(value, ensure_ascii=False)


def page(template: str, title: str, status: int = 200, **context: Any) -> Response[str]:
    """A console page: ``template`` (which extends ``base.html``), never cached."""
    html = _environment.get_template(template).render(
        title=title, assets=ASSETS_PATH, vendor=VENDOR_PATH, **context
    )
    headers = {"Cache-Control": "no-store"}
    return secure(Response(html, status_code=status, media_type=MediaType.HTML, headers=headers), POLICY)

"""The few pages people (not programs) see: the unsubscribe page, the preference centre and a refused
link. Plain server-rendered HTML that works without JavaScript: one heading, labelled controls, a
status line announced to screen readers. They are Jinja2 templates in ``api/templates`` (every value
escaped) with one stylesheet, ``static/pages.css``.

Every HTML answer of Patron (these pages, the tracking collector's empty page, Swagger UI) goes out
through ``secure``: a Content-Security-Policy (here: nothing but the stylesheet loads, no script
runs, forms post only to this server, no other page may frame it), ``X-Content-Type-Options:
nosniff``, ``Referrer-Policy: no-referrer`` and ``X-Frame-Options: DENY``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from litestar import Response, get
from litestar.enums import MediaType

from patron.email.preferences import Choices

TEMPLATES = Path(__file__).parent / "templates"
STYLESHEET_PATH = "/assets/pages.css"
_STYLESHEET = (Path(__file__).parent.parent / "static" / "pages.css").read_text()
#: What the people's pages may load and do: their stylesheet, and forms posted here.
PAGE_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none';"
    " base-uri 'none'"
)
_environment = Environment(
    loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True
)


def secure(response: Response[Any], policy: str = PAGE_POLICY) -> Response[Any]:
    """``response`` with the headers of an HTML page, if it is one (other answers are left as they
    are). Also an ``after_request`` hook."""
    media_type = response.media_type
    if isinstance(media_type, str) and media_type.startswith(MediaType.HTML.value):
        response.headers.update(
            {
                "Content-Security-Policy": policy,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "X-Frame-Options": "DENY",
            }
        )
    return response


def render(template: str, **context: Any) -> str:
    """A template of ``api/templates``, filled in."""
    return _environment.get_template(template).render(**context)


def page(template: str, title: str, status: int = 200, **context: Any) -> Response[str]:
    """A people's page: ``template`` (which extends ``page.html``), never cached."""
    html = render(template, title=title, stylesheet=STYLESHEET_PATH, **context)
    headers = {"Cache-Control": "no-store"}
    return secure(Response(html, status_code=status, media_type=MediaType.HTML, headers=headers))


def refused(reason: str, status: int = 400) -> Response[str]:
    """A link (or a form) that is not honoured: a plain page saying why, and nothing to follow."""
    return page("refused.html", "This link cannot be used", status, reason=reason)


def unsubscribe_form(action: str) -> Response[str]:
    return page("unsubscribe.html", "Unsubscribe", action=action)


def unsubscribed() -> Response[str]:
    return page("unsubscribed.html", "You are unsubscribed")


def preference_centre(action: str, choices: Choices, saved: bool) -> Response[str]:
    """The form: one checkbox per channel the person can be reached on, with the state shown kept in
    hidden fields, so that saving changes only what they changed, and the token of the page."""
    channels = [
        {"name": name, "address": address, "on": on, "what": what}
        for name, address, on, what in (
            ("email", choices.email, choices.email_on, "Marketing email"),
            ("sms", choices.phone, choices.sms_on, "Marketing text messages (SMS)"),
        )
        if address
    ]
    return page(
        "preferences.html",
        "Your preferences",
        action=action,
        channels=channels,
        saved=saved,
        form_token=choices.form_token,
    )


@get(STYLESHEET_PATH, include_in_schema=False, sync_to_thread=False)
def stylesheet() -> Response[str]:
    """The pages' stylesheet."""
    headers = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
    return Response(_STYLESHEET, media_type="text/css; charset=utf-8", headers=headers)

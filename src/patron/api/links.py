"""The links of email, for people: the one-click unsubscribe (RFC 8058: ``POST /u/{token}`` from a
mail client's button; ``GET`` shows a page with the same button), the preference centre
(``/p/{account hash}/{token}``) and verified links (``GET /c/{token}``: recorded, then redirected).
No API key: a link's signature is its authority. A link that was not made here, has expired or leads
off the account's link domains gets a plain page saying so (whatever is wrong with it: these paths
take any string, so that nothing answers with a problem document), never a redirect.

The preference centre's form is saved only when it carries the token of its page and was not posted
from another site (its ``Origin`` is another's, or ``Sec-Fetch-Site`` says ``cross-site`` or
``same-site``): anything else gets a 403 page and changes nothing. The one-click unsubscribe takes a
POST from anywhere, as RFC 8058 requires of it: mail clients send it."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import parse_qs

import ada_url
import msgspec
from litestar import Request, Response, Router, get, post
from litestar.params import PathParameter
from sqlalchemy import Connection

from patron.accounts import now
from patron.api import pages
from patron.api.edge import Injected
from patron.api.problems import status_of
from patron.config import Site
from patron.email import links, preferences
from patron.email.links import Forbidden, Refused
from patron.ingest.queue import enqueue_operation
from patron.ingest.submit import Submitter
from patron.profiles.operations import EMAIL_CLICK, PREFERENCES, UNSUBSCRIBE
from patron.profiles.requests import EmailClick, Unsubscribe
from patron.store import Store

#: Any string: a link that is wrong in any way gets the refusal page.
Text = Annotated[str, PathParameter()]


def _queue(
    conn: Connection, limit: int | None, account_id: int, operation: str, body: msgspec.Struct
) -> None:
    """In order with the account's pushes (what people do through a link is submitted with no limit:
    never refused for a backlog)."""
    enqueue_operation(conn, account_id, limit, str(uuid.uuid4()), operation, body, now())


def refused(request: Request[Any, Any, Any], exc: Refused) -> Response[str]:
    """A link (or a form) that is not honoured, whatever the handler was doing: the page saying why,
    with the status of its kind (403 for a form from elsewhere, else 400)."""
    return pages.refused(str(exc), status_of(exc) or 400)


@get(f"{links.UNSUBSCRIBE_PATH}/{{token:str}}", include_in_schema=False)
async def unsubscribe_page(token: Text, store: Injected[Store]) -> Response[str]:
    await store.read(lambda conn: links.verify_unsubscribe(conn, token))
    return pages.unsubscribe_form(f"{links.UNSUBSCRIBE_PATH}/{token}")


@post(f"{links.UNSUBSCRIBE_PATH}/{{token:str}}", include_in_schema=False, status_code=200)
async def unsubscribe(
    token: Text, request: Request[Any, Any, Any], submit: Injected[Submitter]
) -> Response[str]:
    """The address the message went to is unsubscribed: ``list_unsubscribe`` from a mail client's
    one-click POST, ``link_unsubscribe`` from the page's button."""
    one_click = b"List-Unsubscribe=One-Click" in await request.body()

    def record(conn: Connection, limit: int | None) -> None:
        found = links.verify_unsubscribe(conn, token)
        kind = "list_unsubscribe" if one_click else "link_unsubscribe"
        _queue(conn, limit, found.account_id, UNSUBSCRIBE, Unsubscribe(found.email, kind))

    await submit.queue(record, limit=None)
    return pages.unsubscribed()


@get(f"{links.PREFERENCES_PATH}/{{account_hash:str}}/{{token:str}}", include_in_schema=False)
async def preference_centre(account_hash: Text, token: Text, store: Injected[Store]) -> Response[str]:
    shown = await store.read(lambda conn: preferences.current(conn, account_hash, token))
    return _centre(account_hash, token, shown, saved=False)


@post(
    f"{links.PREFERENCES_PATH}/{{account_hash:str}}/{{token:str}}", include_in_schema=False, status_code=200
)
async def save_preferences(
    account_hash: Text,
    token: Text,
    request: Request[Any, Any, Any],
    submit: Injected[Submitter],
    site: Injected[Site],
) -> Response[str]:
    if _from_elsewhere(request, site.base_url):
        raise Forbidden(links.FORM_NOT_OURS)
    form = parse_qs((await request.body()).decode("utf-8", "replace"))

    def record(conn: Connection, limit: int | None) -> preferences.Choices:
        change, after = preferences.changes(preferences.current(conn, account_hash, token), form)
        if change.email is not None or change.sms is not None:
            _queue(conn, limit, after.account_id, PREFERENCES, change)
        return after

    after = await submit.queue(record, limit=None)
    return _centre(account_hash, token, after, saved=True)


def _from_elsewhere(request: Request[Any, Any, Any], base_url: str) -> bool:
    """Whether a form was posted from a page of another site, as the browser tells: ``Sec-Fetch-Site``
    other than ``same-origin`` (or ``none``, the person's own doing), or an ``Origin`` that is not this
    server's (``null`` is not another site's: browsers send it for a page with ``Referrer-Policy:
    no-referrer``, as ours are, and the form token still has to match)."""
    fetched = request.headers.get("sec-fetch-site")
    if fetched is not None and fetched.lower() not in ("same-origin", "none"):
        return True
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return False
    try:
        return ada_url.URL(origin).origin != ada_url.URL(base_url).origin
    except ValueError:
        return True


def _centre(account_hash: str, token: str, choices: preferences.Choices, *, saved: bool) -> Response[str]:
    return pages.preference_centre(f"{links.PREFERENCES_PATH}/{account_hash}/{token}", choices, saved)


@get(f"{links.CLICK_PATH}/{{token:str}}", include_in_schema=False)
async def follow(token: Text, submit: Injected[Submitter]) -> Response[str]:
    """A verified link: the click is recorded on the recipient's profile, then the browser goes on (with
    the recipient's identity for the website tag, when they have a profile)."""
    at = now()

    def record(conn: Connection, limit: int | None) -> str:
        click = links.verify_click(conn, token, at)
        body = EmailClick(click.message_id, click.target, click.recipient, click.profile)
        _queue(conn, limit, click.account_id, EMAIL_CLICK, body)
        return click.landing

    target = await submit.queue(record, limit=None)
    return Response("", status_code=302, headers={"Location": target, "Cache-Control": "no-store"})


#: The links' routes and their pages, under the site's root: any of them answers a link it does not
#: honour (``Refused``) with the refusal page.
ROUTER = Router(
    path="/",
    route_handlers=[
        unsubscribe_page,
        unsubscribe,
        preference_centre,
        save_preferences,
        follow,
        pages.stylesheet,
    ],
    exception_handlers={Refused: refused},
)

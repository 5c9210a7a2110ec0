"""Signing in to the console and the session every page is given.

The session cookie (``HttpOnly``, ``Secure``, ``SameSite=Strict``, the console's path only) holds a
random token; :mod:`patron.operators` keeps its hash. Pages take ``session: Signed`` (a GET without a
live session is sent to the sign-in page); forms take ``session: Checked``, which also requires the
session's CSRF token, as the form field ``csrf`` or the header ``X-CSRF-Token`` (htmx), and refuses
the request with a 403 before anything changes. The password is checked in a thread (argon2 is slow
on purpose), a few at a time, and a refused sign-in answers a second late."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, TypeAlias

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, SkipValidation
from litestar.response import Redirect

from patron import operators
from patron.api.edge import Injected
from patron.console.render import page
from patron.errors import Forbidden
from patron.store import Store

COOKIE = "patron_console"
PATH = "/console"
SIGN_IN = f"{PATH}/sign-in"
#: Password checks at once in this process (each takes a core for tens of milliseconds).
_checks = asyncio.Semaphore(2)
#: How late a refused sign-in is answered.
REFUSED_DELAY = 1.0


class SignInNeeded(Exception):
    """No live session: the page is answered with the sign-in page."""


class CsrfRefused(Forbidden):
    """A form without the session's CSRF token: nothing was changed."""


def _cookie(token: str, max_age: int | None = None) -> Cookie:
    return Cookie(
        key=COOKIE, value=token, path=PATH, httponly=True, secure=True, samesite="strict", max_age=max_age
    )


async def signed(request: Request[Any, Any, Any], store: Injected[Store]) -> operators.Session:
    """The live session of the request's cookie, or :class:`SignInNeeded`."""
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 100:
        raise SignInNeeded()
    found = await store.read(lambda conn: operators.session(conn, token))
    if found is None:
        raise SignInNeeded()
    session, stale = found
    if stale:
        await store.write(lambda conn: operators.seen(conn, token))
    return session


async def checked(request: Request[Any, Any, Any], store: Injected[Store]) -> operators.Session:
    """:func:`signed`, and the session's CSRF token on the request, or nothing is done."""
    session = await signed(request, store)
    given = request.headers.get("x-csrf-token")
    if given is None and request.method == "POST":
        form = await request.form()
        value = form.get("csrf")
        given = value if isinstance(value, str) else None
    if not operators.same_csrf(given, session.csrf):
        raise CsrfRefused("this form has expired or did not come from the console: sign in again and retry")
    return session


#: A page's handler takes ``session: Signed``; a form's, ``checked: Signed`` (the name says which).
Signed: TypeAlias = NamedDependency[SkipValidation[operators.Session]]
DEPENDENCIES = {"session": Provide(signed), "checked": Provide(checked)}


def require(session: operators.Session, role: operators.Role) -> None:
    """Refuse (403, nothing done) an operator whose role is below ``role``."""
    if not session.operator.may(role):
        raise Forbidden(f"only an {role} or above may do this; you are a {session.operator.role}")


def to_sign_in(request: Request[Any, Any, Any], exc: SignInNeeded) -> Response[Any]:
    if request.headers.get("hx-request"):  # htmx follows this header rather than a redirect
        return Response("", status_code=401, headers={"HX-Redirect": SIGN_IN})
    return Redirect(SIGN_IN, status_code=303)


@get(SIGN_IN, include_in_schema=False)
async def sign_in_form() -> Response[str]:
    return page("sign_in.html", "Sign in to Patron", refused=False)


@post(SIGN_IN, include_in_schema=False)
async def sign_in(
    store: Injected[Store],
    data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Response[Any]:
    email, password = str(data.get("email", ""))[:254], str(data.get("password", ""))
    stored = await store.read(lambda conn: operators.password_hash_of(conn, email))
    async with _checks:
        verified = await asyncio.to_thread(operators.verify, stored, password)
    signed_in = await store.write(lambda conn: operators.sign_in(conn, email, verified))
    if signed_in is None:  # the page does not say whether the email, the password or the state was wrong
        await asyncio.sleep(REFUSED_DELAY)
        return page("sign_in.html", "Sign in to Patron", status=403, refused=True, email=email)
    token, _ = signed_in
    response: Response[Any] = Redirect(PATH + "/", status_code=303)
    response.set_cookie(_cookie(token))
    return response


@post(f"{PATH}/sign-out", include_in_schema=False)
async def sign_out(request: Request[Any, Any, Any], store: Injected[Store], checked: Signed) -> Response[Any]:
    token = request.cookies.get(COOKIE, "")
    await store.write(lambda conn: operators.sign_out(conn, token))
    response: Response[Any] = Redirect(SIGN_IN, status_code=303)
    response.set_cookie(_cookie("", max_age=0))
    return response


HANDLERS = [sign_in_form, sign_in, sign_out]

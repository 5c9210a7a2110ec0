"""The console's email pages: an account's templates, a template with its sources and a preview
rendered by the same sandbox as the API's (``email.sandbox``), and the outbox, newest first.

A rendered template is never part of a console page: its HTML is shown as text, and in an
``<iframe sandbox>`` whose document is served on its own with a policy that runs no script, loads
nothing from elsewhere and may be framed by the console only."""

from __future__ import annotations

from typing import Annotated, Any, Final

from litestar import Response, get
from litestar.enums import MediaType
from litestar.params import PathParameter, QueryParameter
from sqlalchemy import Connection

from patron import accounts, operators
from patron.api.edge import Injected
from patron.console import pages_reads
from patron.console.accounts import AccountHash
from patron.console.render import POLICY, page
from patron.console.session import PATH, Signed
from patron.email import templates
from patron.email.sandbox import Renderer, RenderFailed
from patron.errors import NotFound
from patron.store import Store

TemplateId = Annotated[int, PathParameter(ge=1, le=templates.MAX_TEMPLATE_ID)]
#: The data a preview is rendered with (what a message gives every template, and nothing else).
PREVIEW_DATA: Final[dict[str, Any]] = {
    "to": {"email": "preview@example.com", "name": "Preview"},
    "unsubscribe_url": "#unsubscribe",
    "preferences_url": "#preferences",
}
#: The rendered HTML's own document: no script, no request anywhere (images inline only), a unique
#: origin, framed by the console alone.
PREVIEW_POLICY: Final = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox; form-action 'none';"
    " frame-ancestors 'self'; base-uri 'none'"
)
#: The template page, which frames its preview.
TEMPLATE_PAGE_POLICY: Final = POLICY + "; frame-src 'self'"


class Preview:
    """A template's parts rendered with :data:`PREVIEW_DATA`, or why they could not be."""

    def __init__(self, rendered: dict[str, str] | None, failed: str | None) -> None:
        self.rendered = rendered or {}
        self.failed = failed


async def _preview(renderer: Renderer, template: templates.Template) -> Preview:
    names, parts = templates.parts(template)
    try:
        return Preview(dict(zip(names, await renderer.render(parts, PREVIEW_DATA), strict=True)), None)
    except RenderFailed as exc:
        which = "" if exc.part is None else f"{names[exc.part]}: "
        return Preview(None, which + exc.message)


@get(f"{PATH}/accounts/{{account_hash:str}}/email", include_in_schema=False)
async def email(
    account_hash: AccountHash,
    session: Signed,
    store: Injected[Store],
    offset: Annotated[int, QueryParameter(ge=0, le=pages_reads.MAX_OFFSET)] = 0,
    before: Annotated[int | None, QueryParameter(ge=1)] = None,
) -> Response[str]:
    def read(conn: Connection) -> tuple[Any, ...]:
        account = operators.account_for(session.operator, conn, account_hash)
        return (
            account,
            pages_reads.templates_page(conn, account.id, offset),
            pages_reads.outbox(conn, account.id, before),
        )

    account, (found, more), (sent, following) = await store.read(read)
    return page(
        "email.html",
        "Email",
        session=session,
        account=account,
        templates=found,
        more=more,
        offset=offset,
        page_size=pages_reads.PAGE,
        messages=sent,
        following=following,
        before=before,
    )


async def _template(
    store: Store, session: Signed, account_hash: str, template_id: int
) -> tuple[accounts.Account, templates.Template]:
    def read(conn: Connection) -> tuple[accounts.Account, templates.Template | None]:
        account = operators.account_for(session.operator, conn, account_hash)
        return account, templates.get(conn, account.id, template_id)

    account, found = await store.read(read)
    if found is None:
        raise NotFound.at("template_id", f"no template {template_id} in this account")
    return account, found


@get(f"{PATH}/accounts/{{account_hash:str}}/email/templates/{{template_id:int}}", include_in_schema=False)
async def template(
    account_hash: AccountHash,
    template_id: TemplateId,
    session: Signed,
    store: Injected[Store],
    renderer: Injected[Renderer],
) -> Response[str]:
    account, found = await _template(store, session, account_hash, template_id)
    preview = await _preview(renderer, found)
    answer = page(
        "template.html",
        f"Template {found.id}" + (f": {found.name}" if found.name else ""),
        session=session,
        account=account,
        shown=found,
        preview=preview,
    )
    answer.headers["Content-Security-Policy"] = TEMPLATE_PAGE_POLICY
    return answer


@get(
    f"{PATH}/accounts/{{account_hash:str}}/email/templates/{{template_id:int}}/preview",
    include_in_schema=False,
)
async def preview_document(
    account_hash: AccountHash,
    template_id: TemplateId,
    session: Signed,
    store: Injected[Store],
    renderer: Injected[Renderer],
) -> Response[str]:
    """The rendered HTML alone, for the template page's sandboxed frame."""
    _, found = await _template(store, session, account_hash, template_id)
    preview = await _preview(renderer, found)
    html = preview.rendered.get("html", "")
    return Response(
        html,
        media_type=MediaType.HTML,
        headers={
            "Content-Security-Policy": PREVIEW_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "SAMEORIGIN",
            "Cache-Control": "no-store",
        },
    )


HANDLERS = [email, template, preview_document]

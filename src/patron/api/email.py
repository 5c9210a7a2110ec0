"""Transactional email: ``POST /v2/transactional-email/send`` (reference section 5.10), the message's
status (``GET /v2/transactional-email/{id}``) and templates (``/v2/templates``), the last two
extensions. A template or message that does not check out is a 400 naming the field (a template or
profile it names that the account does not have, a 404): ``templates.TemplateInvalid`` and
``messages.NotFound``, answered by ``problems``."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post, put
from litestar.params import PathParameter

from patron import entities
from patron.accounts import now
from patron.api.auth import BODY_TYPE, RATE_CLASS, CurrentAccount
from patron.api.body import decode, read_json
from patron.api.edge import Injected
from patron.api.paging import Limit, Offset
from patron.api.problems import ERRORS, ITEM_ERRORS, or_404
from patron.config import Site
from patron.email import messages, templates
from patron.email.sandbox import Renderer
from patron.email.templates import MAX_TEMPLATE_ID
from patron.records.fields import MAX_MADE_ID_LENGTH, NO_NUL_PATTERN
from patron.store import Store

MessageId = Annotated[str, PathParameter(pattern=NO_NUL_PATTERN, max_length=MAX_MADE_ID_LENGTH)]
TemplateId = Annotated[int, PathParameter(ge=1, le=MAX_TEMPLATE_ID)]
_send = msgspec.json.Decoder(messages.SendRequest)
_template = msgspec.json.Decoder(templates.TemplateBody)


@post(
    "/transactional-email/send",
    status_code=202,
    summary="Send a transactional email (rendered and kept in the outbox before the reply)",
    tags=["email"],
    responses=ITEM_ERRORS,
    opt={RATE_CLASS: "email", BODY_TYPE: "patron.email.messages:SendBody"},
)
async def send(
    request: Request[Any, Any, Any],
    account: CurrentAccount,
    store: Injected[Store],
    renderer: Injected[Renderer],
    site: Injected[Site],
) -> Response[messages.SendReply]:
    body = decode(await read_json(request), _send)
    reply = await messages.send(store, renderer, account, body, site, now())
    return Response(reply, status_code=202)


@get(
    "/transactional-email/{message_id:str}",
    summary="A message: queued, sending, sent, failed (with the reason) or sandbox (an extension)",
    tags=["email"],
    responses=ITEM_ERRORS,
)
async def read_message(
    message_id: MessageId, account: CurrentAccount, store: Injected[Store]
) -> messages.MessageView:
    found = await store.read(lambda conn: messages.read(conn, account.id, message_id))
    return or_404(found, "message_id", f"no message {message_id!r} in this account")


@post(
    "/templates",
    status_code=201,
    summary="Save an email template (Jinja2; an extension)",
    tags=["email"],
    responses=ERRORS,
    opt={BODY_TYPE: "patron.email.templates:TemplateBody"},
)
async def create_template(
    request: Request[Any, Any, Any],
    account: CurrentAccount,
    store: Injected[Store],
    renderer: Injected[Renderer],
) -> Response[templates.Template]:
    body = await _template_body(request, renderer)
    at = now()
    created = await store.write(lambda conn: templates.create(conn, account.id, body, at))
    return Response(created, status_code=201)


@put(
    "/templates/{template_id:int}",
    summary="Replace an email template (an extension)",
    tags=["email"],
    responses=ITEM_ERRORS,
    opt={BODY_TYPE: "patron.email.templates:TemplateBody"},
)
async def replace_template(
    request: Request[Any, Any, Any],
    template_id: TemplateId,
    account: CurrentAccount,
    store: Injected[Store],
    renderer: Injected[Renderer],
) -> templates.Template:
    body = await _template_body(request, renderer)
    at = now()
    found = await store.write(lambda conn: templates.replace(conn, account.id, template_id, body, at))
    return or_404(found, "template_id", f"no template {template_id} in this account")


@get("/templates", summary="Email templates (an extension)", tags=["email"], responses=ERRORS)
async def list_templates(
    account: CurrentAccount, store: Injected[Store], limit: Limit = entities.DEFAULT_LIMIT, offset: Offset = 0
) -> list[templates.Template]:
    page = entities.Page.of(limit, offset, None)
    return await store.read(lambda conn: templates.list_templates(conn, account.id, page.limit, page.offset))


@get(
    "/templates/{template_id:int}",
    summary="One email template (an extension)",
    tags=["email"],
    responses=ITEM_ERRORS,
)
async def read_template(
    template_id: TemplateId, account: CurrentAccount, store: Injected[Store]
) -> templates.Template:
    found = await store.read(lambda conn: templates.get(conn, account.id, template_id))
    return or_404(found, "template_id", f"no template {template_id} in this account")


async def _template_body(request: Request[Any, Any, Any], renderer: Renderer) -> templates.TemplateBody:
    """The body of a template write, every part tried in the sandbox (``TemplateInvalid`` naming the
    part that does not compile or breaks a rendering limit)."""
    body = decode(await read_json(request), _template)
    await templates.check(renderer, body)
    return body


HANDLERS = [send, read_message, create_template, replace_template, list_templates, read_template]

"""Transactional email: ``POST /v2/transactional-email/send`` (reference section 5.10), the message's
status (``GET /v2/transactional-email/{id}``) and templates (``/v2/templates``), the last two
extensions."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Request, Response, get, post, put
from litestar.datastructures import State
from litestar.params import PathParameter

from patron import entities
from patron.accounts import now
from patron.api.auth import BODY_TYPE, RATE_CLASS, CurrentAccount
from patron.api.body import decode, read_json
from patron.api.paging import Limit, Offset
from patron.api.problems import ERRORS, ITEM_ERRORS, field_problem, or_404
from patron.email import messages, templates
from patron.email.messages import NotFound
from patron.email.templates import TemplateInvalid
from patron.records.fields import NO_NUL_PATTERN
from patron.store import Work

MessageId = Annotated[str, PathParameter(pattern=NO_NUL_PATTERN, max_length=64)]
TemplateId = Annotated[int, PathParameter(ge=1, le=2**31 - 1)]
T = TypeVar("T")
_send = msgspec.json.Decoder(messages.SendRequest)
_template = msgspec.json.Decoder(templates.TemplateBody)


async def _write(state: State, work: Work[Any]) -> Any:
    """Run ``work``; a template or message that does not check out is a 400 naming the field."""
    return await _checked(state.store.write(work))


async def _checked(outcome: Awaitable[T]) -> T:
    """``outcome``; a template or message that does not check out is a 400 (or 404) naming the field."""
    try:
        return await outcome
    except NotFound as exc:
        raise field_problem(404, exc.field, exc.message) from exc
    except TemplateInvalid as exc:
        raise field_problem(400, exc.field, exc.message) from exc


@post(
    "/transactional-email/send",
    status_code=202,
    summary="Send a transactional email (rendered and kept in the outbox before the reply)",
    tags=["email"],
    responses=ITEM_ERRORS,
    opt={RATE_CLASS: "email", BODY_TYPE: "patron.email.messages:SendBody"},
)
async def send(
    request: Request[Any, Any, Any], account: CurrentAccount, state: State
) -> Response[messages.SendReply]:
    body = decode(await read_json(request), _send)
    sending = messages.send(state.store, state.renderer, account, body, state.settings.site, now())
    reply: messages.SendReply = await _checked(sending)
    return Response(reply, status_code=202)


@get(
    "/transactional-email/{message_id:str}",
    summary="A message: queued, sending, sent, failed (with the reason) or sandbox (an extension)",
    tags=["email"],
    responses=ITEM_ERRORS,
)
async def read_message(message_id: MessageId, account: CurrentAccount, state: State) -> messages.MessageView:
    found: messages.MessageView | None = await state.store.read(
        lambda conn: messages.read(conn, account.id, message_id)
    )
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
    request: Request[Any, Any, Any], account: CurrentAccount, state: State
) -> Response[templates.Template]:
    body = await _template_body(request, state)
    at = now()
    created: templates.Template = await _write(
        state, lambda conn: templates.create(conn, account.id, body, at)
    )
    return Response(created, status_code=201)


@put(
    "/templates/{template_id:int}",
    summary="Replace an email template (an extension)",
    tags=["email"],
    responses=ITEM_ERRORS,
    opt={BODY_TYPE: "patron.email.templates:TemplateBody"},
)
async def replace_template(
    request: Request[Any, Any, Any], template_id: TemplateId, account: CurrentAccount, state: State
) -> templates.Template:
    body = await _template_body(request, state)
    at = now()
    found: templates.Template | None = await _write(
        state, lambda conn: templates.replace(conn, account.id, template_id, body, at)
    )
    return or_404(found, "template_id", f"no template {template_id} in this account")


@get("/templates", summary="Email templates (an extension)", tags=["email"], responses=ERRORS)
async def list_templates(
    account: CurrentAccount, state: State, limit: Limit = entities.DEFAULT_LIMIT, offset: Offset = 0
) -> list[templates.Template]:
    page = entities.Page.of(limit, offset, None)
    found: list[templates.Template] = await state.store.read(
        lambda conn: templates.list_templates(conn, account.id, page.limit, page.offset)
    )
    return found


@get(
    "/templates/{template_id:int}",
    summary="One email template (an extension)",
    tags=["email"],
    responses=ITEM_ERRORS,
)
async def read_template(template_id: TemplateId, account: CurrentAccount, state: State) -> templates.Template:
    found: templates.Template | None = await state.store.read(
        lambda conn: templates.get(conn, account.id, template_id)
    )
    return or_404(found, "template_id", f"no template {template_id} in this account")


async def _template_body(request: Request[Any, Any, Any], state: State) -> templates.TemplateBody:
    """The body of a template write, every part tried in the sandbox (a 400 naming the part that
    does not compile or breaks a rendering limit)."""
    body = decode(await read_json(request), _template)
    try:
        await templates.check(state.renderer, body)
    except TemplateInvalid as exc:
        raise field_problem(400, exc.field, exc.message) from exc
    return body


HANDLERS = [send, read_message, create_template, replace_template, list_templates, read_template]

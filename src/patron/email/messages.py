"""``POST /v2/transactional-email/send`` (reference section 5.10): a message is checked, rendered and
put in the outbox (``messages``) before the 202; the sender delivers it (``outbox.py``).

Transactional sends ignore marketing suppression, as in Ometria. ``sandbox: true`` renders and keeps
the message without delivering it. Nothing of a message is rendered on the writer or the event loop
(``send``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import uuid
from datetime import datetime
from typing import Annotated, Any, NamedTuple

import msgspec
from msgspec import UNSET, Meta, UnsetType
from sqlalchemy import Connection, func, insert, select

from patron import signing
from patron.accounts import Account
from patron.config import Site
from patron.email import links, templates
from patron.email.addresses import LINE_REFUSED, Address, Line, breaks_line
from patron.email.sandbox import MAX_OUTPUT, Renderer, RenderFailed
from patron.email.templates import MAX_LINE, TemplateId, TemplateInvalid
from patron.errors import FieldError, FieldInvalid
from patron.errors import NotFound as Missing
from patron.profiles.build import survivor
from patron.profiles.read import email_holder
from patron.records.fields import MAX_MADE_ID_LENGTH, NO_NUL_PATTERN
from patron.store import Store
from patron.store.schema import messages, profiles

#: The largest attachment, decoded (the request body itself is capped at 8 MiB).
MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024
QUEUED, SENDING, SENT, FAILED, SANDBOX = "queued", "sending", "sent", "failed", "sandbox"
#: A given HTML or text body: no longer than a rendered one may be.
Body = Annotated[str, Meta(max_length=MAX_OUTPUT, pattern=NO_NUL_PATTERN)]
#: The most characters of a subject, rendered or given (RFC 5322's line).
MAX_SUBJECT = MAX_LINE
#: The most characters of the HTML the outbox keeps, once its links are verified links.
MAX_STORED_HTML = 3 * MAX_OUTPUT
#: Base64 of a PDF: "%PDF-" encodes to "JVBERi0" (the size is checked once decoded).
PdfBase64 = Annotated[
    str,
    Meta(
        max_length=(MAX_ATTACHMENT_BYTES + 2) // 3 * 4,
        pattern=r"^(?=JVBERi0)(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$(?!\n)",
    ),
]


class NotFound(Missing):
    """The message names a template or a profile the account does not have (``field``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", errors=[FieldError(field, message)])


class Attachment(msgspec.Struct, forbid_unknown_fields=True):
    filename: Annotated[str, Meta(min_length=1, max_length=255, pattern=r"^[^/\\\r\n\x00]+$(?!\n)")]
    content: PdfBase64


class SendRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, rename={"sender": "from"}):
    """Section 5.10's body. ``html`` (and ``text``) carry a rendered message instead of a template
    (Ometria's field name for it is not known)."""

    sender: Address
    subject: Line | UnsetType = UNSET
    template_id: TemplateId | UnsetType = UNSET
    data: dict[str, Any] = {}
    html: Body | UnsetType = UNSET
    text: Body | UnsetType = UNSET
    to: Address | UnsetType = UNSET
    profile_id: (
        Annotated[str, Meta(min_length=1, max_length=MAX_MADE_ID_LENGTH, pattern=NO_NUL_PATTERN)] | UnsetType
    ) = UNSET
    reply_to: Address | UnsetType = UNSET
    stream: Line | UnsetType = UNSET
    attachments: Annotated[list[Attachment], Meta(max_length=10)] = []
    sandbox: bool = False
    transactional: bool = True

    def __post_init__(self) -> None:
        if (self.template_id is UNSET) == (self.html is UNSET):
            raise FieldInvalid("template_id", "give either template_id (with data) or html")
        if self.to is UNSET and not self.profile_id:
            raise FieldInvalid("to", "is required (or profile_id)")
        if self.template_id is UNSET and self.subject is UNSET:
            raise FieldInvalid("subject", "is required with html")
        for name, line in (("subject", self.subject), ("stream", self.stream)):
            if isinstance(line, str) and breaks_line(line):
                raise FieldInvalid(name, LINE_REFUSED)


#: The body as the OpenAPI document gives it: a template or a rendered message, and a recipient.
SendBody = Annotated[
    SendRequest,
    Meta(
        extra_json_schema={
            "allOf": [
                {
                    "oneOf": [
                        {"required": ["template_id"], "not": {"required": ["html"]}},
                        {"required": ["html", "subject"], "not": {"required": ["template_id"]}},
                    ]
                },
                {"anyOf": [{"required": ["to"]}, {"required": ["profile_id"]}]},
            ]
        }
    ),
]


class SendReply(msgspec.Struct):
    status: str
    message_id: str
    sandbox: bool


class MessageView(msgspec.Struct):
    """A message as ``GET /v2/transactional-email/{id}`` shows it (an extension)."""

    id: str
    status: str
    to: str
    subject: str
    stream: str | None
    attempts: int
    error: str | None
    html: str | None
    text: str | None
    attachments: list[str]
    unsubscribe_url: str | None
    timestamp_created: str
    timestamp_sent: str | None


def _check_attachments(attachments: list[Attachment]) -> None:
    for index, attachment in enumerate(attachments):
        field = f"root > attachments > {index} > content"
        try:
            data = base64.b64decode(attachment.content, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise TemplateInvalid(field, "is not base64") from exc
        if len(data) > MAX_ATTACHMENT_BYTES:
            raise TemplateInvalid(
                field, f"is {len(data):,} bytes; an attachment may have {MAX_ATTACHMENT_BYTES:,}"
            )
        if not data.startswith(b"%PDF-"):
            raise TemplateInvalid(field, "is not a PDF (attachments are PDF documents)")


def _recipient(conn: Connection, account_id: int, body: SendRequest) -> tuple[str, str | None, str | None]:
    """The address, name and profile a message goes to."""
    if body.to is not UNSET:
        return body.to.email, body.to.name, None
    profile = survivor(conn, account_id, str(body.profile_id))
    email = None
    if profile is not None:
        p = profiles
        email = conn.execute(
            select(p.c.email).where(p.c.account_id == account_id, p.c.profile_id == profile)
        ).scalar()
    if not email or email.endswith("@anonymous.ometria"):
        raise NotFound("root > profile_id", f"no profile {body.profile_id!r} with an email in this account")
    return email, None, profile


class Draft(NamedTuple):
    """A send request once read: where it goes, what to render, and the account's link key."""

    recipient: str
    name: str | None
    profile: str | None  # the profile it was sent to (by profile_id)
    owner: str | None  # the profile whose preference centre it links to
    template: templates.Template | None
    key: str | None  # none until the account's first message


def plan(conn: Connection, account_id: int, body: SendRequest) -> Draft:
    """Read what a message needs (``NotFound`` for a template or profile the account does not have)."""
    recipient, name, profile = _recipient(conn, account_id, body)
    template = None
    if body.template_id is not UNSET:
        template = templates.get(conn, account_id, body.template_id)
        if template is None:
            raise NotFound("root > template_id", f"no template {body.template_id} in this account")
    owner = profile or email_holder(conn, account_id, recipient)
    return Draft(recipient, name, profile, owner, template, signing.stored_key(conn, account_id))


async def send(
    store: Store, renderer: Renderer, account: Account, body: SendRequest, site: Site, at: datetime
) -> SendReply:
    """Check, render and keep the message (``TemplateInvalid`` names what is wrong; nothing is kept).

    Everything but the insert happens before the write and off the event loop: the message is read
    for (``plan``), rendered in the sandbox's processes (``sandbox.py``), and its links made verified
    links (``links.py``) in a thread; the writer only inserts the row. A template may use
    ``unsubscribe_url`` and ``preferences_url`` (empty when the recipient has no profile)."""
    await asyncio.to_thread(_check_attachments, body.attachments)
    draft = await store.read(lambda conn: plan(conn, account.id, body))
    key = draft.key
    if key is None:  # the account's first message
        key = await store.write(lambda conn: signing.account_key(conn, account.id))
    message_id = str(uuid.uuid4())
    unsubscribe = links.unsubscribe_url(site.base_url, key, message_id)
    preferences = (
        links.preferences_url(site.base_url, account.hash, key, draft.owner) if draft.owner else None
    )
    if draft.template is None:
        subject, html, text = str(body.subject), str(body.html), (None if body.text is UNSET else body.text)
    else:
        data = {
            **body.data,
            "to": {"email": draft.recipient, "name": draft.name},
            "unsubscribe_url": unsubscribe,
            "preferences_url": preferences,
        }
        subject, html, text = await _render(renderer, draft.template, body, data)
    tracked = await asyncio.to_thread(links.track, html, site, key, message_id, at)
    if len(tracked) > MAX_STORED_HTML:
        field = "root > html" if draft.template is None else "root > template_id"
        raise TemplateInvalid(
            field,
            f"the HTML is {len(tracked):,} characters once its links are tracked;"
            f" a message may have {MAX_STORED_HTML:,}",
        )
    row = {
        "account_id": account.id,
        "message_id": message_id,
        "status": SANDBOX if body.sandbox else QUEUED,
        "profile": draft.profile,
        "stream": None if body.stream is UNSET else body.stream,
        "sender": body.sender.header(),
        "reply_to": None if body.reply_to is UNSET else body.reply_to.header(),
        "recipient": draft.recipient,
        "recipient_name": draft.name,
        "subject": subject,
        "html": tracked,
        "text": text,
        "unsubscribe_url": unsubscribe,
        "attachments": msgspec.json.encode(
            [{"filename": a.filename, "content": a.content} for a in body.attachments]
        ).decode(),
        "created_at": at,
    }
    await store.write(lambda conn: conn.execute(insert(messages).values(**row)))
    return SendReply("OK", message_id, body.sandbox)


async def _render(
    renderer: Renderer, template: templates.Template, body: SendRequest, data: dict[str, Any]
) -> tuple[str, str, str | None]:
    """The template's subject (unless the request gives one), HTML and text, rendered with ``data``;
    ``TemplateInvalid`` naming the template when it fails or breaks a limit."""
    names, parts = templates.parts(template)
    if body.subject is not UNSET:
        names, parts = names[1:], parts[1:]
    try:
        rendered = dict(zip(names, await renderer.render(parts, data), strict=True))
    except RenderFailed as exc:
        which = "" if exc.part is None else f" ({names[exc.part]})"
        raise TemplateInvalid("root > template_id", f"template {template.id}{which}: {exc.message}") from exc
    subject = str(body.subject) if body.subject is not UNSET else rendered["subject"]
    if breaks_line(subject) or len(subject) > MAX_SUBJECT:
        raise TemplateInvalid(
            "root > template_id",
            f"template {template.id} (subject): the rendered subject {LINE_REFUSED} and may have"
            f" {MAX_SUBJECT} characters",
        )
    return subject, rendered["html"], rendered.get("text")


def count_by_status(conn: Connection) -> dict[str, int]:
    """Messages of every account by status (counted on the status index)."""
    rows = conn.execute(select(messages.c.status, func.count()).group_by(messages.c.status))
    return {status: int(count) for status, count in rows}


def read(conn: Connection, account_id: int, message_id: str) -> MessageView | None:
    m = messages
    row = conn.execute(select(m).where(m.c.account_id == account_id, m.c.message_id == message_id)).first()
    if row is None:
        return None
    attached = [a["filename"] for a in msgspec.json.decode(row.attachments)]
    return MessageView(
        row.message_id,
        row.status,
        row.recipient,
        row.subject,
        row.stream,
        row.attempts,
        row.error,
        row.html,
        row.text,
        attached,
        row.unsubscribe_url,
        row.created_at.isoformat(),
        row.sent_at.isoformat() if row.sent_at else None,
    )

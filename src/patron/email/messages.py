"""``POST /v2/transactional-email/send`` (reference section 5.10): a message is checked, rendered and
put in the outbox (``messages``) before the 202; the sender delivers it (``outbox.py``).

Transactional sends ignore marketing suppression, as in Ometria. ``sandbox: true`` renders and keeps
the message without delivering it.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from email.utils import formataddr
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, UnsetType
from sqlalchemy import Connection, insert, select

from patron.accounts import Account
from patron.config import Site
from patron.email import links, templates
from patron.email.templates import TemplateInvalid
from patron.profiles.build import survivor
from patron.profiles.read import email_holder
from patron.records.fields import NO_NUL_PATTERN, Email
from patron.store.schema import messages, profiles

#: The largest attachment, decoded (the request body itself is capped at 8 MiB).
MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024
QUEUED, SENDING, SENT, FAILED, SANDBOX = "queued", "sending", "sent", "failed", "sandbox"
Line = Annotated[str, Meta(max_length=998, pattern=r"^[^\r\n\x00]*$(?!\n)")]
Body = Annotated[str, Meta(max_length=4_000_000, pattern=NO_NUL_PATTERN)]
#: Base64 of a PDF: "%PDF-" encodes to "JVBERi0" (the size is checked once decoded).
PdfBase64 = Annotated[
    str,
    Meta(
        max_length=(MAX_ATTACHMENT_BYTES + 2) // 3 * 4,
        pattern=r"^(?=JVBERi0)(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$(?!\n)",
    ),
]


class NotFound(TemplateInvalid):
    """The message names a template or a profile the account does not have."""


class Address(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    name: Line | None = None

    def header(self) -> str:
        try:
            return formataddr((self.name or "", self.email))
        except UnicodeEncodeError:  # an address beyond ASCII: kept as given (delivery needs SMTPUTF8)
            return f"{self.name} <{self.email}>" if self.name else self.email


class Attachment(msgspec.Struct, forbid_unknown_fields=True):
    filename: Annotated[str, Meta(min_length=1, max_length=255, pattern=r"^[^/\\\r\n\x00]+$(?!\n)")]
    content: PdfBase64


class SendRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, rename={"sender": "from"}):
    """Section 5.10's body. ``html`` (and ``text``) carry a rendered message instead of a template
    (Ometria's field name for it is not known)."""

    sender: Address
    subject: Line | UnsetType = UNSET
    template_id: Annotated[int, Meta(ge=1, le=2**31 - 1)] | UnsetType = UNSET
    data: dict[str, Any] = {}
    html: Body | UnsetType = UNSET
    text: Body | UnsetType = UNSET
    to: Address | UnsetType = UNSET
    profile_id: Annotated[str, Meta(min_length=1, max_length=64, pattern=NO_NUL_PATTERN)] | UnsetType = UNSET
    reply_to: Address | UnsetType = UNSET
    stream: Line | UnsetType = UNSET
    attachments: Annotated[list[Attachment], Meta(max_length=10)] = []
    sandbox: bool = False
    transactional: bool = True

    def __post_init__(self) -> None:
        if (self.template_id is UNSET) == (self.html is UNSET):
            raise ValueError("template_id :: give either template_id (with data) or html")
        if self.to is UNSET and not self.profile_id:
            raise ValueError("to :: is required (or profile_id)")
        if self.template_id is UNSET and self.subject is UNSET:
            raise ValueError("subject :: is required with html")


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


def _pdf(index: int, attachment: Attachment) -> None:
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


def queue(conn: Connection, account: Account, body: SendRequest, at: datetime, site: Site) -> SendReply:
    """Check, render and keep the message (``TemplateInvalid`` names what is wrong; nothing is kept).
    A template may use ``unsubscribe_url`` and ``preferences_url`` (empty when the recipient has no
    profile); the links of the HTML become verified links (``links.py``)."""
    for index, attachment in enumerate(body.attachments):
        _pdf(index, attachment)
    recipient, name, profile = _recipient(conn, account.id, body)
    message_id = str(uuid.uuid4())
    key = links.account_key(conn, account.id)
    unsubscribe = links.unsubscribe_url(site.base_url, key, message_id)
    owner = profile or email_holder(conn, account.id, recipient)
    preferences = links.preferences_url(site.base_url, account.hash, key, owner) if owner else None
    data = {
        **body.data,
        "to": {"email": recipient, "name": name},
        "unsubscribe_url": unsubscribe,
        "preferences_url": preferences,
    }
    if body.template_id is not UNSET:
        template = templates.get(conn, account.id, body.template_id)
        if template is None:
            raise NotFound("root > template_id", f"no template {body.template_id} in this account")
        subject = (
            body.subject
            if body.subject is not UNSET
            else templates.render(template.subject, data, html=False)
        )
        html = templates.render(template.html, data, html=True)
        text = templates.render(template.text, data, html=False) if template.text else None
    else:
        subject = str(body.subject)
        html = str(body.html)
        text = None if body.text is UNSET else body.text
    conn.execute(
        insert(messages).values(
            account_id=account.id,
            message_id=message_id,
            status=SANDBOX if body.sandbox else QUEUED,
            profile=profile,
            stream=None if body.stream is UNSET else body.stream,
            sender=body.sender.header(),
            reply_to=None if body.reply_to is UNSET else body.reply_to.header(),
            recipient=recipient,
            recipient_name=name,
            subject=subject.replace("\r", " ").replace("\n", " "),
            html=links.track(html, site, key, message_id, at),
            text=text,
            unsubscribe_url=unsubscribe,
            attachments=msgspec.json.encode(
                [{"filename": a.filename, "content": a.content} for a in body.attachments]
            ).decode(),
            created_at=at,
        )
    )
    return SendReply("OK", message_id, body.sandbox)


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

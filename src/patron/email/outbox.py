"""Delivering the outbox over SMTP (``PATRON_SMTP_URL``), from the worker process.

A message is claimed (``queued`` -> ``sending``, its attempt counted and leased) and that is committed
**before** the SMTP exchange; the outcome is committed after it. A failure the server calls temporary
(a 4xx answer, a refused or dropped connection) is retried with exponential backoff; after
:data:`ATTEMPTS` attempts, or at once for a permanent (5xx) answer, the message is ``failed`` with the
server's answer. If the process dies during an exchange, the message is left ``sending``: once its
lease expires it is marked ``failed`` ("interrupted"), **never sent again**, because the server may
have accepted it. Delivery is therefore at most once; every message ends ``sent`` or ``failed``.
Without ``PATRON_SMTP_URL``, nothing is delivered: messages stay ``queued``, readable through the API.

The headers are built from structured parts (``email.headerregistry``): To from the message's
``recipient`` and ``recipient_name``; From and Reply-To from the text ``messages.py`` stored, parsed
back and accepted only as exactly one mailbox that ``addresses.mailbox`` would have given, so a row
written some other way cannot bring a second address. The SMTP envelope names ``recipient`` alone,
never an address read from a header. A message that cannot be built is ``failed`` with the reason.
Log lines name the message by its id, never by an address or a name, and carry no SMTP answer (which
may quote both) but its code.
"""

from __future__ import annotations

import base64
import logging
import smtplib
import ssl
import threading
import traceback
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec
from sqlalchemy import Connection, select, update

from patron.accounts import now
from patron.email.addresses import POLICY, check_line, defects, mailbox
from patron.email.messages import FAILED, QUEUED, SENDING, SENT
from patron.email.templates import TemplateInvalid
from patron.store import Store
from patron.store.schema import messages
from patron.webhooks import outbox as webhooks

log = logging.getLogger("patron.email")
ATTEMPTS = 5
BACKOFF = 2.0  # seconds before the second attempt; doubles each time
LEASE = 300.0  # seconds: an attempt not finished by then was interrupted (PATRON_SMTP_LEASE)
INTERRUPTED = "delivery was interrupted during the SMTP exchange; not retried, so that it cannot arrive twice"


@dataclass(frozen=True)
class Smtp:
    """``smtp://[user:password@]host[:port][?starttls=true]`` or ``smtps://...`` (implicit TLS);
    ``&cafile=/path/ca.pem`` trusts a private relay's certificate authority besides the system's."""

    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    user: str | None
    password: str | None
    cafile: str | None = None

    @classmethod
    def parse(cls, url: str) -> Smtp:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(
                f"PATRON_SMTP_URL must be smtp://host[:port] or smtps://host[:port], not {url!r}"
            )
        query = parse_qs(parts.query)
        implicit = parts.scheme == "smtps"
        return cls(
            parts.hostname,
            parts.port or (465 if implicit else 25),
            implicit,
            query.get("starttls", ["false"])[0].lower() in ("1", "true", "yes"),
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
            query.get("cafile", [None])[0],
        )

    def send(self, message: EmailMessage, sender: str, recipient: str, timeout: float = 30) -> None:
        """One SMTP exchange, from ``sender`` to ``recipient`` alone (the lease must outlast
        ``timeout``)."""
        context = ssl.create_default_context()
        if self.cafile:
            context.load_verify_locations(self.cafile)
        client: smtplib.SMTP = (
            smtplib.SMTP_SSL(self.host, self.port, timeout=timeout, context=context)
            if self.implicit_tls
            else smtplib.SMTP(self.host, self.port, timeout=timeout)
        )
        with client:
            if self.starttls:
                client.starttls(context=context)
            if self.user is not None:
                client.login(self.user, self.password or "")
            client.send_message(message, from_addr=sender, to_addrs=[recipient])


class Unbuildable(Exception):
    """The message cannot be put on the wire as it is kept; the reason quotes no address or name."""


def _stored(text: str, header: str) -> Address:
    """The one mailbox of a stored header's text (From, Reply-To), checked as a request's is."""
    try:
        parsed = POLICY.header_factory(header, text)
        [group] = parsed.groups
        [address] = group.addresses
        if defects(parsed) or group.display_name is not None:
            raise ValueError("not one mailbox")
        return mailbox(address.addr_spec, address.display_name or None)
    except (ValueError, HeaderParseError) as exc:
        raise Unbuildable(f"the {header} header is not one address that can be sent") from exc


def mime(row: Any) -> EmailMessage:
    """The message as it goes on the wire: text and HTML alternatives, PDF attachments
    (``Unbuildable`` when its addresses or subject cannot be sent as they are)."""
    try:
        recipient = mailbox(row.recipient, row.recipient_name)
    except ValueError as exc:
        raise Unbuildable("the recipient is not an address or name that can be sent") from exc
    try:
        check_line("subject", row.subject)
    except TemplateInvalid as exc:
        raise Unbuildable("the subject holds a control character or a line separator") from exc
    message = EmailMessage()
    message["Message-ID"] = f"<{row.message_id}@patron>"
    message["Date"] = format_datetime(row.created_at)
    message["From"] = _stored(row.sender, "From")
    message["To"] = recipient
    if row.reply_to:
        message["Reply-To"] = _stored(row.reply_to, "Reply-To")
    message["Subject"] = row.subject
    if row.unsubscribe_url:  # RFC 8058 one-click
        message["List-Unsubscribe"] = f"<{row.unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(row.text or "This message is in HTML.")
    if row.html:
        message.add_alternative(row.html, subtype="html")
    for attachment in msgspec.json.decode(row.attachments):
        data = base64.b64decode(attachment["content"])
        message.add_attachment(data, maintype="application", subtype="pdf", filename=attachment["filename"])
    # the parts are encoded as the default policy has them (lines beyond 78 characters quoted); the
    # headers are folded as POLICY has them, which keeps a long quoted name one address
    message.policy = POLICY
    return message


def _claim(conn: Connection, row_id: int, until: datetime) -> bool:
    m = messages
    done = conn.execute(
        update(m)
        .where(m.c.id == row_id, m.c.status == QUEUED)
        .values(status=SENDING, attempts=m.c.attempts + 1, next_attempt_at=until)
    )
    return done.rowcount == 1


def _finish(conn: Connection, row: Any, values: dict[str, Any]) -> None:
    m = messages
    done = conn.execute(update(m).where(m.c.id == row.id, m.c.status == SENDING).values(**values))
    if done.rowcount == 1 and values["status"] in (SENT, FAILED):
        _told(conn, row.account_id, row.message_id, row.profile, values["status"], now())


def _told(
    conn: Connection, account_id: int, message_id: str, profile: str | None, status: str, at: datetime
) -> None:
    """``email.sent`` or ``email.failed``, in the transaction that marks the message so."""
    event_type = "email.sent" if status == SENT else "email.failed"
    data = {"message_id": message_id, "profile_id": profile}
    webhooks.emit(conn, account_id, event_type, data, at, profile=profile)


def _interrupted(conn: Connection, at: datetime) -> int:
    m = messages
    done = conn.execute(
        update(m)
        .where(m.c.status == SENDING, m.c.next_attempt_at < at)
        .values(status=FAILED, error=INTERRUPTED, next_attempt_at=None)
        .returning(m.c.account_id, m.c.message_id, m.c.profile)
    ).all()
    for account_id, message_id, profile in done:
        _told(conn, account_id, message_id, profile, FAILED, at)
    return len(done)


def _due(conn: Connection, at: datetime) -> list[Any]:
    m = messages
    query = (
        select(m)
        .where(m.c.status == QUEUED, (m.c.next_attempt_at.is_(None)) | (m.c.next_attempt_at <= at))
        .order_by(m.c.id)
        .limit(20)
    )
    return list(conn.execute(query))


class Sender:
    """Delivers due messages until ``stop`` is set (a thread of ``patron worker``)."""

    def __init__(
        self,
        store: Store,
        smtp: Smtp,
        stop: threading.Event,
        *,
        backoff: float = BACKOFF,
        lease: float = LEASE,
        poll: float = 0.5,
    ) -> None:
        self.store, self.smtp, self.stop, self.backoff, self.poll = store, smtp, stop, backoff, poll
        self.lease = timedelta(seconds=lease)
        self.thread = threading.Thread(target=self.run, name="patron-sender", daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.store.write_blocking(lambda conn: _interrupted(conn, now()))
                sent = self.deliver_due()
            except Exception as exc:  # its text may quote a row (an address): its kind and frames only
                failure = {"error": type(exc).__name__, "at": _frames(exc)}
                log.error("the sender failed; retrying", extra=failure)
                sent = 0
            if not sent:
                self.stop.wait(self.poll)

    def deliver_due(self) -> int:
        rows = self.store.read_blocking(lambda conn: _due(conn, now()))
        for row in rows:
            if self.stop.is_set():
                break
            until = now() + self.lease
            if self.store.write_blocking(lambda conn, r=row, u=until: _claim(conn, r.id, u)):  # type: ignore[misc]
                self._attempt(row)
        return len(rows)

    def _attempt(self, row: Any) -> None:
        attempt = row.attempts + 1
        try:
            message = mime(row)
        except Unbuildable as exc:
            self._failed(row, attempt, f"the message could not be built: {exc}", permanent=True)
            return
        except Exception as exc:  # a bug, or a row no check foresaw: it must not stay ``sending``
            error = f"the message could not be built ({type(exc).__name__})"
            self._failed(row, attempt, error, permanent=True, reason=type(exc).__name__)
            return
        sender = message["From"].addresses[0].addr_spec
        try:
            self.smtp.send(message, sender, row.recipient)
        except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused) as exc:
            code, answer = _answer(exc)
            permanent = code >= 500
            self._failed(row, attempt, f"{code} {answer}", permanent=permanent, reason=str(code))
        except (OSError, smtplib.SMTPException) as exc:  # refused, dropped, timed out
            reason = type(exc).__name__
            self._failed(row, attempt, f"{reason}: {exc}", permanent=False, reason=reason)
        else:
            self.store.write_blocking(
                lambda conn: _finish(
                    conn, row, {"status": SENT, "sent_at": now(), "error": None, "next_attempt_at": None}
                )
            )
            log.info("sent", extra={"message_id": row.message_id, "attempt": attempt})

    def _failed(
        self, row: Any, attempt: int, error: str, *, permanent: bool, reason: str = "unbuildable"
    ) -> None:
        """Keep ``error`` (the SMTP answer, or why) on the message; log only ``reason``, the SMTP code
        or the kind of failure, which names no one."""
        if permanent or attempt >= ATTEMPTS:
            values: dict[str, Any] = {"status": FAILED, "error": error, "next_attempt_at": None}
        else:
            delay = timedelta(seconds=self.backoff * 2 ** (attempt - 1))
            values = {"status": QUEUED, "error": error, "next_attempt_at": now() + delay}
        self.store.write_blocking(lambda conn: _finish(conn, row, values))
        log.warning(
            "delivery failed",
            extra={
                "message_id": row.message_id,
                "attempt": attempt,
                "reason": reason,
                "final": values["status"] == FAILED,
            },
        )


def _frames(exc: BaseException) -> list[str]:
    return [f"{f.filename}:{f.lineno} {f.name}" for f in traceback.extract_tb(exc.__traceback__)]


def _answer(exc: smtplib.SMTPResponseException | smtplib.SMTPRecipientsRefused) -> tuple[int, str]:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(exc.recipients.values()))
        return code, text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    answer: bytes | str = exc.smtp_error
    return exc.smtp_code, answer.decode("utf-8", "replace") if isinstance(answer, bytes) else answer

"""What the console's customers pages read: profiles found by an identifier, the latest updated
profiles, and one profile with its consent, orders, timeline, sessions, the emails sent to it and
their clicks. Every query is indexed and bounded (the profile's own rows, at most :data:`LIMIT` of
each)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Connection, select

from patron.entities import Page
from patron.profiles import consent, read
from patron.profiles.build import survivor
from patron.profiles.identity import Kind, normalise
from patron.store import among
from patron.store.schema import (
    consents,
    email_clicks,
    identities,
    messages,
    orders,
    profiles,
    tracking_sessions,
)
from patron.tracking import read as tracking

#: The most rows of each kind a page shows.
LIMIT = 50
#: The longest search text looked up (an identifier is never longer).
MAX_QUERY = 254
_decode = msgspec.json.decode


class Found(msgspec.Struct):
    """A profile in a list: who it is and how much they bought."""

    profile_id: str
    email: str | None
    name: str | None
    customer_id: str | None
    orders: int
    revenue: float
    updated_at: datetime
    anonymised: bool


def _found(conn: Connection, account_id: int, ids: list[str]) -> list[Found]:
    """The profiles ``ids``, in that order."""
    if not ids:
        return []
    p = profiles
    rows = conn.execute(
        select(p.c.profile_id, p.c.data, p.c.updated_at, p.c.anonymised_at).where(
            p.c.account_id == account_id, among(conn, p.c.profile_id, ids)
        )
    )
    by_id = {row.profile_id: _summary(row) for row in rows}
    return [by_id[i] for i in ids if i in by_id]


def _summary(row: Any) -> Found:
    doc = _decode(row.data)
    stats = doc.get("stats") or {}
    return Found(
        row.profile_id,
        doc.get("email"),
        doc.get("name"),
        doc.get("customer_id"),
        int(stats.get("orders") or 0),
        float(stats.get("revenue") or 0),
        row.updated_at,
        row.anonymised_at is not None,
    )


def recent(conn: Connection, account_id: int, limit: int = LIMIT) -> list[Found]:
    """The live profiles updated last (``ix_profiles_account_updated``, read backwards)."""
    p = profiles
    rows = conn.execute(
        select(p.c.profile_id, p.c.data, p.c.updated_at, p.c.anonymised_at)
        .where(p.c.account_id == account_id, p.c.merged_into.is_(None))
        .order_by(p.c.updated_at.desc(), p.c.id.desc())
        .limit(limit)
    )
    return [_summary(row) for row in rows]


def search(conn: Connection, account_id: int, text: str, limit: int = LIMIT) -> list[Found]:
    """The profiles ``text`` names: as a profile id (a merged one gives its survivor), a customer id
    or a phone number (the identities that hold it), or an email (its holder, then the profiles
    showing it, as ``GET /v2/profiles?email=``)."""
    text = text.strip()[:MAX_QUERY]
    if not text:
        return []
    ids: list[str] = []
    live = survivor(conn, account_id, text)
    if live is not None:
        ids.append(live)
    i = identities
    kinds: tuple[Kind, ...] = ("customer_id", "phone_number")
    for kind in kinds:
        wanted = normalise(kind, text)
        if wanted is not None:
            ids += conn.execute(
                select(i.c.profile).where(i.c.account_id == account_id, i.c.kind == kind, i.c.value == wanted)
            ).scalars()
    if "@" in text:
        shown = read.by_email(conn, account_id, text, Page(limit, 0))
        ids += [_decode(doc)["id"] for doc in shown]
    live_ids = [survivor(conn, account_id, found) for found in dict.fromkeys(ids)]
    return _found(conn, account_id, [x for x in dict.fromkeys(live_ids) if x is not None][:limit])


class Consent(msgspec.Struct):
    channel: str
    status: str
    source: str
    address: str | None
    reason: str | None
    occurred_at: datetime


class Line(msgspec.Struct):
    product_id: str | None
    sku: str | None
    quantity: Any
    unit_price: Any
    total: Any


class Order(msgspec.Struct):
    order_id: str
    placed_at: str | None
    status: str | None
    currency: str | None
    grand_total: Any
    lines: list[Line]


class Session(msgspec.Struct):
    session_id: str
    started_at: datetime
    last_at: datetime
    page_views: int
    product_views: int
    outcome: str | None


class Sent(msgspec.Struct):
    message_id: str
    subject: str
    recipient: str
    status: str
    attempts: int
    created_at: datetime


class Click(msgspec.Struct):
    message_id: str
    subject: str | None
    url: str
    clicked_at: datetime


class Customer(msgspec.Struct):
    """One profile as its page shows it."""

    profile: dict[str, Any]
    anonymised: bool
    merged: list[str]
    email_status: str | None
    sms_status: str | None
    consent: list[Consent]
    orders: list[Order]
    timeline: list[tracking.Activity]
    sessions: list[Session]
    sent: list[Sent]
    clicks: list[Click]


def customer(conn: Connection, account_id: int, live: str, limit: int = LIMIT) -> Customer | None:
    """The live profile ``live`` (see :func:`patron.profiles.build.survivor`) and its latest rows."""
    p = profiles
    row = conn.execute(
        select(p.c.data, p.c.anonymised_at).where(p.c.account_id == account_id, p.c.profile_id == live)
    ).first()
    if row is None:
        return None
    merged = conn.execute(
        select(p.c.profile_id)
        .where(p.c.account_id == account_id, p.c.merged_into == live)
        .order_by(p.c.id)
        .limit(limit)
    ).scalars()
    email = consent.latest(conn, account_id, live, "email")
    sms = consent.latest(conn, account_id, live, "sms")
    k = consents
    history = conn.execute(
        select(k)
        .where(k.c.account_id == account_id, k.c.profile == live)
        .order_by(k.c.id.desc())
        .limit(limit)
    )
    return Customer(
        profile=_decode(row.data),
        anonymised=row.anonymised_at is not None,
        merged=list(merged),
        email_status=email.status if email else None,
        sms_status=sms.status if sms else None,
        consent=[Consent(r.channel, r.status, r.source, r.address, r.reason, r.occurred_at) for r in history],
        orders=_orders(conn, account_id, live, limit),
        timeline=tracking.activity(conn, account_id, live, Page(limit, 0)) or [],
        sessions=_sessions(conn, account_id, live, limit),
        sent=_sent(conn, account_id, live, limit),
        clicks=_clicks(conn, account_id, live, limit),
    )


def _orders(conn: Connection, account_id: int, live: str, limit: int) -> list[Order]:
    """The profile's latest orders (``ix_orders_account_profile``), with their lines."""
    o = orders
    rows = conn.execute(
        select(o.c.order_id, o.c.placed_at, o.c.data)
        .where(o.c.account_id == account_id, o.c.profile == live)
        .order_by(o.c.placed_at.desc(), o.c.id.desc())
        .limit(limit)
    )
    found = []
    for row in rows:
        doc = _decode(row.data)
        lines = [
            Line(
                line.get("product_id"),
                line.get("sku"),
                line.get("quantity"),
                line.get("unit_price"),
                line.get("total"),
            )
            for line in doc.get("lineitems") or []
            if isinstance(line, dict)
        ]
        found.append(
            Order(
                row.order_id,
                row.placed_at,
                doc.get("status"),
                doc.get("currency"),
                doc.get("grand_total"),
                lines,
            )
        )
    return found


def _sessions(conn: Connection, account_id: int, live: str, limit: int) -> list[Session]:
    s = tracking_sessions
    rows = conn.execute(
        select(s.c.session_id, s.c.started_at, s.c.last_at, s.c.page_views, s.c.product_views, s.c.outcome)
        .where(s.c.account_id == account_id, s.c.profile == live)
        .order_by(s.c.last_at.desc(), s.c.id.desc())
        .limit(limit)
    )
    return [
        Session(r.session_id, r.started_at, r.last_at, r.page_views, r.product_views, r.outcome) for r in rows
    ]


def _sent(conn: Connection, account_id: int, live: str, limit: int) -> list[Sent]:
    """The emails sent to the profile, latest first (``ix_messages_account_profile``)."""
    m = messages.c
    rows = conn.execute(
        select(m.message_id, m.subject, m.recipient, m.status, m.attempts, m.created_at)
        .where(m.account_id == account_id, m.profile == live)
        .order_by(m.id.desc())
        .limit(limit)
    )
    return [Sent(*row) for row in rows]


def _clicks(conn: Connection, account_id: int, live: str, limit: int) -> list[Click]:
    """The profile's latest clicks on links of emails (``ix_email_clicks_account_profile``), each with
    its message's subject (a message by its unique id)."""
    e, m = email_clicks, messages
    rows = conn.execute(
        select(e.c.message_id, e.c.url, e.c.clicked_at)
        .where(e.c.account_id == account_id, e.c.profile == live)
        .order_by(e.c.clicked_at.desc(), e.c.id.desc())
        .limit(limit)
    ).all()
    ids = list({r.message_id for r in rows})
    subjects = (
        dict(
            conn.execute(
                select(m.c.message_id, m.c.subject).where(
                    m.c.account_id == account_id, among(conn, m.c.message_id, ids)
                )
            ).all()
        )
        if ids
        else {}
    )
    return [Click(r.message_id, subjects.get(r.message_id), r.url, r.clicked_at) for r in rows]


def unsubscribable(conn: Connection, account_id: int, live: str) -> str | None:
    """The email an unsubscribe of ``live`` would be made for: the profile's email, when the
    unsubscribe operation (which finds the profile by email) would find this profile first."""
    p = profiles
    email: str | None = conn.execute(
        select(p.c.email).where(p.c.account_id == account_id, p.c.profile_id == live)
    ).scalar()
    if not email:
        return None
    first = read.by_email(conn, account_id, email, Page(1, 0))
    return email if first and _decode(first[0])["id"] == live else None

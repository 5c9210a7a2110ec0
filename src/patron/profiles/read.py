"""Reading the customer view: profiles, merge jobs and unsubscribes, as the API answers them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Connection, select

from patron.entities import Page
from patron.profiles.build import survivor
from patron.profiles.consent import UNSUBSCRIBED
from patron.profiles.identity import normalise
from patron.store import among
from patron.store.schema import (
    consents,
    contacts,
    custom_events,
    email_clicks,
    identities,
    list_members,
    orders,
    profiles,
)


def list_profiles(conn: Connection, account_id: int, page: Page, updated_since: datetime | None) -> list[str]:
    """Live profiles (not merged away) as JSON documents, oldest first."""
    p = profiles
    query = select(p.c.data).where(p.c.account_id == account_id, p.c.merged_into.is_(None))
    if updated_since is not None:
        query = query.where(p.c.updated_at >= updated_since)
    return list(conn.execute(query.order_by(p.c.id).limit(page.limit).offset(page.offset)).scalars())


def email_holder(conn: Connection, account_id: int, email: str) -> str | None:
    """The profile that holds an email as its identifier, if one does."""
    i = identities
    wanted = normalise("email", email)
    found: str | None = conn.execute(
        select(i.c.profile).where(i.c.account_id == account_id, i.c.kind == "email", i.c.value == wanted)
    ).scalar()
    return found


def by_email(conn: Connection, account_id: int, email: str, page: Page) -> list[str]:
    """The profiles with this email: the one that holds it as an identifier, then any other showing it
    (another customer id's profile may show the same email, section 5.2)."""
    wanted = normalise("email", email)
    if wanted is None:
        return []
    p = profiles
    owner = email_holder(conn, account_id, wanted)
    shown = select(p.c.profile_id).where(
        p.c.account_id == account_id, p.c.email == wanted, p.c.merged_into.is_(None)
    )
    ids = list(dict.fromkeys([*([owner] if owner else []), *conn.execute(shown.order_by(p.c.id)).scalars()]))
    ids = ids[page.offset : page.offset + page.limit]
    found = conn.execute(
        select(p.c.profile_id, p.c.data).where(p.c.account_id == account_id, among(conn, p.c.profile_id, ids))
    )
    docs = {row.profile_id: row.data for row in found}
    return [docs[i] for i in ids if i in docs]


def get_profile(conn: Connection, account_id: int, profile_id: str) -> str | None:
    """A profile by id; an id merged away answers with the profile it was merged into."""
    live = survivor(conn, account_id, profile_id)
    if live is None:
        return None
    p = profiles
    found: str | None = conn.execute(
        select(p.c.data).where(p.c.account_id == account_id, p.c.profile_id == live)
    ).scalar()
    return found


def unsubscribe_timestamp(moment: datetime) -> str:
    """``2017-05-17 22:08:07+00``: the form of section 5.8."""
    return moment.strftime("%Y-%m-%d %H:%M:%S+00")


class UnsubscribeView(msgspec.Struct, rename={"kind": "type"}):
    """An unsubscribe as ``GET /v2/unsubscribes`` shows it (reference section 5.8)."""

    email_address: str | None
    profile_id: str
    reason: str | None
    timestamp: str  # 2017-05-17 22:08:07+00
    kind: str


def unsubscribes(
    conn: Connection,
    account_id: int,
    page: Page,
    since: datetime | None,
    before: datetime | None,
    kind: str | None,
) -> list[UnsubscribeView]:
    """Unsubscribes, oldest first; those made by pushing contacts are not included, as in Ometria."""
    k = consents
    query = select(k).where(k.c.account_id == account_id, k.c.status == UNSUBSCRIBED, k.c.source != "api")
    if since is not None:
        query = query.where(k.c.occurred_at >= since)
    if before is not None:
        query = query.where(k.c.occurred_at < before)
    if kind is not None:
        query = query.where(k.c.source == kind)
    rows = conn.execute(query.order_by(k.c.occurred_at, k.c.id).limit(page.limit).offset(page.offset))
    return [
        UnsubscribeView(
            r.address if r.channel == "email" else None,
            r.profile,
            r.reason,
            unsubscribe_timestamp(r.occurred_at),
            r.source,
        )
        for r in rows
    ]


def export(conn: Connection, account_id: int, profile_id: str) -> dict[str, Any] | None:
    """Everything held about the person a profile is (an access request): the profile, its
    contacts, orders and custom events as stored, its lists and its whole consent history."""
    live = survivor(conn, account_id, profile_id)
    if live is None:
        return None
    p, m, k = profiles, list_members, consents
    profile = conn.execute(
        select(p.c.data).where(p.c.account_id == account_id, p.c.profile_id == live)
    ).scalar()
    merged = conn.execute(
        select(p.c.profile_id).where(p.c.account_id == account_id, p.c.merged_into == live).order_by(p.c.id)
    ).scalars()
    records = {
        name: [
            msgspec.json.decode(doc)
            for doc in conn.execute(
                select(table.c.data)
                .where(table.c.account_id == account_id, table.c.profile == live)
                .order_by(table.c.id)
            ).scalars()
        ]
        for name, table in (("contacts", contacts), ("orders", orders), ("custom_events", custom_events))
    }
    memberships = conn.execute(
        select(m.c.list_id, m.c.created_at)
        .where(m.c.account_id == account_id, m.c.profile == live)
        .order_by(m.c.id)
    )
    history = conn.execute(
        select(k).where(k.c.account_id == account_id, k.c.profile == live).order_by(k.c.id)
    ).all()
    e = email_clicks
    clicks = conn.execute(
        select(e).where(e.c.account_id == account_id, e.c.profile == live).order_by(e.c.id)
    ).all()
    return {
        "profile": msgspec.json.decode(profile or "{}"),
        "merged_profiles": list(merged),
        **records,
        "lists": [{"id": r.list_id, "timestamp_joined": r.created_at.isoformat()} for r in memberships],
        "consent": [
            {
                "channel": r.channel,
                "status": r.status,
                "source": r.source,
                "address": r.address,
                "collection": r.collection,
                "contact_id": r.contact_id,
                "reason": r.reason,
                "timestamp": r.occurred_at.isoformat(),
            }
            for r in history
        ],
        "email_clicks": [
            {"message_id": r.message_id, "url": r.url, "timestamp": r.clicked_at.isoformat()} for r in clicks
        ],
    }

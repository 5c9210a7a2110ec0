"""Reading what tracking built: a profile's timeline (``GET /v2/profiles/{id}/activity``) and an
order's sources (the ``@attribution`` of ``GET /v2/orders/{id}``); both extensions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Column, Connection, Row, Table, select

from patron.entities import Page, get_document
from patron.profiles.build import survivor
from patron.store import among
from patron.store.schema import (
    custom_events,
    email_clicks,
    order_sources,
    orders,
    segment_changes,
    tracking_events,
    tracking_sessions,
)
from patron.tracking.events import VIEWPRODUCT, counted_view, latest_page

_decode = msgspec.json.decode


class Activity(msgspec.Struct, omit_defaults=True):
    """One thing a person did, newest first: on the site (``web``: page views, product views,
    baskets, checkout steps, transactions, tag events), through the Data API (``api``: orders and
    custom events, abandonment events included), in an email (``email``: a verified link clicked) or in
    a dynamic segment (``segment``: ``segment_enter`` / ``segment_exit``, ``id`` the segment's).
    ``product_id`` marks a product view (``events.counted_view``: a ``viewproduct``, or a product
    page's view), with its product: one per view, as the session counts them."""

    timestamp: str
    channel: str
    type: str
    session_id: str | None = None
    url: str | None = None
    page_type: str | None = None
    product_id: str | None = None
    id: str | None = None
    data: dict[str, Any] = {}


def activity(conn: Connection, account_id: int, profile_id: str, page: Page) -> list[Activity] | None:
    """The profile's timeline, newest first (``None``: no such profile)."""
    live = survivor(conn, account_id, profile_id)
    if live is None:
        return None
    wanted = page.offset + page.limit
    e, s = tracking_events, tracking_sessions
    found: list[tuple[datetime, int, Activity]] = []
    web = conn.execute(
        select(e.c.id, e.c.kind, e.c.session_id, e.c.url, e.c.page_type, e.c.data, e.c.occurred_at)
        .join(
            s,
            (s.c.account_id == e.c.account_id) & (s.c.cid == e.c.cid) & (s.c.session_id == e.c.session_id),
        )
        .where(e.c.account_id == account_id, s.c.profile == live)
        .order_by(e.c.occurred_at.desc(), e.c.id.desc())
        .limit(wanted)
    ).all()
    pages = _pages(conn, [row.id for row in web if row.kind == VIEWPRODUCT])
    for row in web:
        item = Activity(_time(row.occurred_at), "web", row.kind, row.session_id, row.url, row.page_type)
        item.data = _decode(row.data)
        item.product_id = counted_view(row.kind, item.data, pages.get(row.id))
        found.append((row.occurred_at, row.id, item))
    for event in _newest(conn, custom_events, custom_events.c.updated_at, account_id, live, wanted):
        doc = _decode(event.data)
        item = Activity(_time(event.when), "api", event.event_type, id=event.event_id)
        item.data = doc.get("properties") or {}
        found.append((event.when, event.id, item))
    for order in _newest(conn, orders, orders.c.updated_at, account_id, live, wanted):
        doc = _decode(order.data)
        item = Activity(_time(order.when), "api", "order", id=order.order_id)
        item.data = {k: doc[k] for k in ("status", "grand_total", "currency", "timestamp") if k in doc}
        found.append((order.when, order.id, item))
    for click in _newest(conn, email_clicks, email_clicks.c.clicked_at, account_id, live, wanted):
        item = Activity(_time(click.when), "email", "email_click", url=click.url, id=click.message_id)
        found.append((click.when, click.id, item))
    c = segment_changes
    for change in conn.execute(
        select(c.c.id, c.c.segment_id, c.c.event, c.c.created_at)
        .where(c.c.account_id == account_id, c.c.profile == live)
        .order_by(c.c.created_at.desc(), c.c.id.desc())
        .limit(wanted)
    ):
        item = Activity(_time(change.created_at), "segment", change.event, id=str(change.segment_id))
        found.append((change.created_at, change.id, item))
    found.sort(key=lambda f: (f[0], f[1]), reverse=True)
    return [item for _, _, item in found[page.offset : wanted]]


def _pages(conn: Connection, event_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The ``d`` of the page each of these events was on (its session's latest page view before it),
    by event id: what :func:`counted_view` needs to tell a ``viewproduct`` from its page's repeat."""
    if not event_ids:
        return {}
    e = tracking_events
    shown = latest_page(tracking_events.alias("page"), e.c.account_id, e.c.cid, e.c.session_id, e.c.id)
    rows = conn.execute(
        select(e.c.id, shown.scalar_subquery().label("page")).where(among(conn, e.c.id, event_ids))
    )
    return {row.id: _decode(row.page) for row in rows if row.page is not None}


def _newest(
    conn: Connection, table: Table, when: Column[datetime], account_id: int, profile: str, limit: int
) -> Sequence[Row[Any]]:
    """The profile's latest ``limit`` rows of ``table``, newest first, with ``when`` as ``when``."""
    return conn.execute(
        select(table, when.label("when"))
        .where(table.c.account_id == account_id, table.c.profile == profile)
        .order_by(when.desc(), table.c.id.desc())
        .limit(limit)
    ).all()


def _time(moment: datetime) -> str:
    return moment.isoformat()


def order_with_attribution(conn: Connection, account_id: int, order_id: str) -> str | None:
    """The stored order, with ``@attribution`` (the session that confirmed it on the site and the
    visitor's first and that session's traffic source) when the tag saw it."""
    document = get_document(conn, "order", account_id, order_id)
    if document is None:
        return None
    o = order_sources
    row = conn.execute(select(o).where(o.c.account_id == account_id, o.c.order_id == order_id)).first()
    if row is None:
        return document
    doc = _decode(document)
    doc["@attribution"] = {
        "session_id": row.session_id,
        "first_touch": _decode(row.first_touch) if row.first_touch else None,
        "last_touch": _decode(row.last_touch) if row.last_touch else None,
        "timestamp": row.created_at.isoformat(),
    }
    return msgspec.json.encode(doc).decode()

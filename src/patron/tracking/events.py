"""What each tag event does, applied by the worker in arrival order with the account's pushes: the
visitor and its session are kept up to date (counts, the latest basket, the checkout step, the
orders confirmed), the event is kept, ``identify`` links the visitor and its earlier sessions to a
profile, and ``transaction`` gives the order its sources (first touch and last touch).

What a product view is (:func:`product_view`, :func:`counted_view`) is said here once, for the
session's count, browse abandonment and the activity timeline."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, Connection, FromClause, Select, insert, select, update

from patron.model.rounds import Op, QueueKind, Registry, Round
from patron.profiles.identity import normalise
from patron.records.fields import EMAIL_PATTERN, ID_PATTERN, MAX_ID_LENGTH
from patron.signing import identified, stored_key
from patron.store.schema import order_sources, tracking_events, tracking_sessions, visitors
from patron.tracking import sources
from patron.tracking.wire import Beacon

TRACK = "track"
PAGEVIEW, VIEWPRODUCT = "pageview", "viewproduct"
#: The page type of a product page (``init("product", {pid})``), as the tag sends it.
PRODUCT_PAGE = "product"
_EMAIL = re.compile(EMAIL_PATTERN)
#: A product id as a pushed product's: no whitespace, at most ``MAX_ID_LENGTH`` characters.
_PRODUCT_ID = re.compile(ID_PATTERN)
#: What the tag sends for a JavaScript null or undefined.
_NOTHING = frozenset(("null", "undefined"))
_INTEGER = re.compile(r"-?[0-9]{1,15}")
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode


class Hit(msgspec.Struct):
    """A decoded beacon as it is queued: the event and when it arrived."""

    beacon: Beacon
    at: datetime


def product_view(kind: str, d: Mapping[str, Any]) -> str | None:
    """The product an event says the visitor viewed, or ``None``: a ``viewproduct``, or a page view
    of a product page (``d[type]`` ``product``: what ``init("product", {pid})`` sends, the only sign
    of a product view that Ometria's own tag and its Shopify build give), with its product id
    ``d[pid]`` shaped as a product's id."""
    if kind != VIEWPRODUCT and (kind != PAGEVIEW or d.get("type") != PRODUCT_PAGE):
        return None
    pid = d.get("pid")
    if isinstance(pid, str) and len(pid) <= MAX_ID_LENGTH and pid not in _NOTHING and _PRODUCT_ID.match(pid):
        return pid
    return None


def counted_view(kind: str, d: Mapping[str, Any], page: Mapping[str, Any] | None) -> str | None:
    """The product an event counts one view of, or ``None``; ``page`` is the ``d`` of its session's
    latest page view before it. A ``viewproduct`` of the product whose page that is repeats the page
    view's own count (a product page may send both: ``viewProduct(pid)`` and ``init("product",
    {pid})``), so it counts for nothing."""
    product = product_view(kind, d)
    repeat = kind == VIEWPRODUCT and page is not None and product_view(PAGEVIEW, page) == product
    return None if repeat else product


def may_be_product_view(events: FromClause) -> ColumnElement[bool]:
    """The events of ``events`` (``tracking_events``) that :func:`product_view` may take, in SQL."""
    c = events.c
    return (c.kind == VIEWPRODUCT) | ((c.kind == PAGEVIEW) & (c.page_type == PRODUCT_PAGE))


def latest_page(
    events: FromClause, account: Any, cid: Any, session_id: Any, before: Any = None
) -> Select[str]:
    """The ``d`` (JSON) of a session's latest page view (before the event ``before``, if given), from
    ``events`` (``tracking_events`` or an alias); the arguments are values or outer columns."""
    c = events.c
    query = select(c.data).where(
        c.account_id == account, c.cid == cid, c.session_id == session_id, c.kind == PAGEVIEW
    )
    if before is not None:
        query = query.where(c.id < before)
    return query.order_by(c.id.desc()).limit(1)


def _digits(value: Any) -> str:
    return re.sub(r"[^0-9.\-]", "", str(value)) if value is not None else ""


def _number(value: Any) -> float | None:
    """A number as the tag sends it (a string, perhaps with a currency sign)."""
    text = _digits(value)
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _quantity(value: Any) -> int | float | None:
    """A quantity as the tag sends it: an integer stays one (``"2"`` is 2, ``"2.5"`` 2.5)."""
    text = _digits(value)
    return int(text) if _INTEGER.fullmatch(text) else _number(value)


def basket(d: dict[str, Any]) -> dict[str, Any]:
    """A ``setbasket`` event's basket, with its lines."""
    given = d.get("lis")
    lines: list[Any] = given if isinstance(given, list) else []
    return {
        "id": d.get("id"),
        "total": _number(d.get("total")),
        "currency": d.get("cur"),
        "size": _quantity(d.get("size")),
        "url": d.get("url"),
        "lines": [
            {
                name: value
                for name, value in (
                    ("product_id", line.get("pid")),
                    ("variant_id", line.get("vid")),
                    ("quantity", _quantity(line.get("q"))),
                    ("total", _number(line.get("tot"))),
                )
                if value is not None and value != "null"
            }
            for line in lines
            if isinstance(line, dict) and line.get("pid")
        ],
    }


def apply(round: Round, op: Op) -> None:
    """One tag event (the worker's record type ``track``)."""
    hit = msgspec.convert(op.record, Hit, strict=False)
    b, at = hit.beacon, hit.at
    conn, account = round.conn, round.account_id
    v, s = visitors, tracking_sessions
    visitor = conn.execute(
        select(v.c.id, v.c.profile, v.c.first_source).where(v.c.account_id == account, v.c.cid == b.cid)
    ).first()
    if visitor is None:
        first = sources.encode(sources.parse(b.osrc or b.src))
        conn.execute(
            insert(v).values(account_id=account, cid=b.cid, first_source=first, first_seen=at, last_seen=at)
        )
        profile, first_source = None, first
    else:
        conn.execute(update(v).where(v.c.id == visitor.id).values(last_seen=at))
        profile, first_source = visitor.profile, visitor.first_source
    session = conn.execute(
        select(s).where(s.c.account_id == account, s.c.cid == b.cid, s.c.session_id == b.sid)
    ).first()
    if session is None:
        session = conn.execute(
            insert(s)
            .values(
                account_id=account,
                session_id=b.sid,
                cid=b.cid,
                profile=profile,
                site=b.site,
                source=sources.encode(sources.parse(b.src)),
                page_views=0,
                product_views=0,
                basket_adds=0,
                transactions="[]",
                started_at=at,
                last_at=at,
            )
            .returning(*s.c)
        ).one()
    changes = _changes(conn, account, b, session, first_source, at)
    conn.execute(update(s).where(s.c.id == session.id).values(last_at=max(at, session.last_at), **changes))
    d = dict(b.d)
    conn.execute(
        insert(tracking_events).values(
            account_id=account,
            session_id=b.sid,
            cid=b.cid,
            kind=b.type,
            channel="custom" if b.channel == "custom" else "system",
            url=b.url,
            page_type=str(d.get("type"))[:200] if b.type == "pageview" and d.get("type") else None,
            data=_encode(d).decode(),
            occurred_at=at,
        )
    )
    # the session's profile is the one whose documents it changes (visits, last seen, the tag's
    # profile data); an identify that gives the session to another changes the one it leaves too
    owner = session.profile
    if b.type == "identify":
        identified = _identify(round, b, at)
        if identified is not None:
            round.touch(owner)  # (the one it leaves)
            owner = identified
    round.touch(owner)


#: The most ``viewproduct`` events since a session's latest page view that its next page view reads.
_AHEAD = 20


def _seen_ahead(conn: Connection, account: int, b: Beacon, product: str) -> bool:
    """Whether this product page's own ``viewproduct`` was applied before the page view: the tag
    sends each event as an image request of its own, so two sent together may reach the queue in
    either order. It was if, since the session's latest page view, a ``viewproduct`` of this product
    on this page's URL was applied, and that page view was not this product's (so it was counted)."""
    e = tracking_events
    session = (e.c.account_id == account) & (e.c.cid == b.cid) & (e.c.session_id == b.sid)
    last = conn.execute(
        select(e.c.id, e.c.data).where(session, e.c.kind == PAGEVIEW).order_by(e.c.id.desc()).limit(1)
    ).first()
    if last is not None and product_view(PAGEVIEW, _decode(last.data)) == product:
        return False
    views = conn.execute(
        select(e.c.data)
        .where(
            session, e.c.id > (last.id if last is not None else 0), e.c.kind == VIEWPRODUCT, e.c.url == b.url
        )
        .order_by(e.c.id)
        .limit(_AHEAD)
    ).scalars()
    return any(product_view(VIEWPRODUCT, _decode(data)) == product for data in views)


def _changes(
    conn: Connection, account: int, b: Beacon, session: Any, first_source: str | None, at: datetime
) -> dict[str, Any]:
    """What the event changes in its session (and, for a transaction, the order's sources)."""
    d = b.d
    if b.type == PAGEVIEW:
        product = product_view(b.type, d)
        views = 0 if product is None or _seen_ahead(conn, account, b, product) else 1
        return {"page_views": session.page_views + 1, "product_views": session.product_views + views}
    if b.type == VIEWPRODUCT:
        if product_view(b.type, d) is None:
            return {}
        page = conn.execute(latest_page(tracking_events, account, b.cid, b.sid)).scalar()
        if counted_view(b.type, d, _decode(page) if page is not None else None) is None:
            return {}
        return {"product_views": session.product_views + 1}
    if b.type == "addtobasket":
        return {"basket_adds": session.basket_adds + 1}
    if b.type == "setbasket":
        return {"basket": _encode(basket(d)).decode()}
    if b.type == "checkout" and d.get("stage") is not None:
        return {"checkout_stage": str(d["stage"])[:200]}
    if b.type == "transaction" and isinstance(d.get("tid"), str) and d["tid"]:
        order_id = d["tid"][:MAX_ID_LENGTH]
        done: list[str] = msgspec.json.decode(session.transactions)
        o = order_sources
        known = conn.execute(
            select(o.c.id).where(o.c.account_id == account, o.c.order_id == order_id)
        ).first()
        if known is None:
            conn.execute(
                insert(o).values(
                    account_id=account,
                    order_id=order_id,
                    session_id=b.sid,
                    cid=b.cid,
                    first_touch=first_source,
                    last_touch=session.source,
                    created_at=at,
                )
            )
        return {"transactions": _encode([*done, order_id] if order_id not in done else done).decode()}
    return {}


def _identify(round: Round, b: Beacon, at: datetime) -> str | None:
    """Link the visitor, and its sessions no profile has yet, to the profile ``uiid`` names: the one
    holding the email (made when none does), or ``omid:<identity token>``, the signed, expiring token
    a verified link of the account's email hands the tag (``signing.identity_token``; it names the
    profile, or the one it was merged into). A bare ``omid:<profile id>`` links nothing: profile ids
    are no secret."""
    uiid = b.d.get("uiid") or b.uiid
    if not isinstance(uiid, str):
        return None
    if uiid.startswith("omid:"):
        named = identified(stored_key(round.conn, round.account_id), uiid[5:], at)
        profile = round.links.live(named) if named is not None else None
    elif _EMAIL.match(uiid) and normalise("email", uiid):
        profile = round.links.customer(None, uiid, at)
    else:
        return None
    if profile is None:
        return None
    v, s = visitors, tracking_sessions
    account, conn = round.account_id, round.conn
    conn.execute(update(v).where(v.c.account_id == account, v.c.cid == b.cid).values(profile=profile))
    conn.execute(
        update(s)
        .where(
            s.c.account_id == account,
            s.c.cid == b.cid,
            s.c.profile.is_(None) | (s.c.session_id == b.sid),
        )
        .values(profile=profile)
    )
    return profile


def register(kinds: Registry) -> None:
    """Tag events: applied in arrival order with the account's records."""
    kinds.add(QueueKind(TRACK, apply))

"""The rules over what the website tag sent: product views and basket lines of products not in the
catalogue, orders the tag saw that were never pushed (after a day) and recent web orders it never
saw, and the share of sessions identified."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, select

from patron.model.defects import pushed_products
from patron.report.rules import Context, Tally, chunked, document, matching, recent_orders, rule, scan
from patron.store import among
from patron.store.schema import order_sources, orders, tracking_events, tracking_sessions
from patron.tracking.events import basket, may_be_product_view, product_view

#: How long an order the tag saw may wait for its push.
GRACE = timedelta(days=1)
#: How far back pushed web orders are looked for among those the tag saw.
WEB_DAYS = 30


def _unknown(ctx: Context, tally: Tally, where: Any, products_of: Any) -> None:
    t = tracking_events.c
    flagged: set[str] = set()
    for batch in chunked(scan(ctx, tracking_events, t.kind, t.data, where=where)):
        named = {pid for row in batch for pid in products_of(row.kind, document(row.data))}
        known = pushed_products(ctx.conn, ctx.account_id, named)
        for pid in sorted(named - known - flagged):
            flagged.add(pid)
            tally.add(pid)


@rule(
    "tracking.unknown_viewed_product",
    "warning",
    "The tag reported views of product ids that are not in the pushed catalogue.",
    "Send the tag the same product id as the product feed (not the variant's, nor a SKU).",
)
def unknown_viewed_product(ctx: Context, tally: Tally) -> None:
    def viewed(kind: str, d: dict[str, Any]) -> list[str]:
        pid = product_view(kind, d)
        return [pid] if pid is not None else []

    _unknown(ctx, tally, may_be_product_view(tracking_events), viewed)


@rule(
    "tracking.unknown_basket_product",
    "warning",
    "Basket lines the tag sent name product ids that are not in the pushed catalogue.",
    "Send the tag's basket lines with the product feed's ids.",
)
def unknown_basket_product(ctx: Context, tally: Tally) -> None:
    def lines(kind: str, d: dict[str, Any]) -> list[str]:
        return [
            str(line["product_id"]) for line in basket(d)["lines"] if isinstance(line.get("product_id"), str)
        ]

    _unknown(ctx, tally, tracking_events.c.kind == "setbasket", lines)


@rule(
    "tracking.order_not_pushed",
    "error",
    f"The tag saw orders confirmed more than {GRACE.days} day ago that were never pushed.",
    "Push every order, with the id the tag's trackTransaction sends.",
)
def order_not_pushed(ctx: Context, tally: Tally) -> None:
    s, o = order_sources.c, orders.c
    pushed = select(o.id).where(o.account_id == s.account_id, o.order_id == s.order_id).exists()
    matching(
        ctx, tally, order_sources, and_(s.created_at < ctx.now - GRACE, ~pushed), s.order_id, s.created_at
    )
    for sample in tally.samples:
        sample.value = sample.value.isoformat()


@rule(
    "tracking.web_order_unseen",
    "warning",
    f"Pushed web orders (channel web) placed since the tag first sent something (in the last {WEB_DAYS} "
    "days) were never seen by the tag's trackTransaction.",
    "Call trackTransaction on the order confirmation page, with the order's id as pushed.",
)
def web_order_unseen(ctx: Context, tally: Tally) -> None:
    t, s = tracking_sessions.c, order_sources.c
    first = ctx.conn.execute(select(func.min(t.started_at)).where(t.account_id == ctx.account_id)).scalar()
    if first is None:
        return  # the tag never sent anything: there is nothing it could have seen
    for batch in recent_orders(ctx, max(first, ctx.now - timedelta(days=WEB_DAYS))):
        web = [
            order_id for order_id, order in batch if str(order.get("channel") or "").strip().lower() == "web"
        ]
        if not web:
            continue
        seen = set(
            ctx.conn.execute(
                select(s.order_id).where(s.account_id == ctx.account_id, among(ctx.conn, s.order_id, web))
            ).scalars()
        )
        for order_id in web:
            if order_id not in seen:
                tally.add(order_id)


@rule(
    "tracking.identified_sessions",
    "info",
    "Sessions of the tag not identified as a profile (the summary gives the identified share).",
    "Call identify (or link from email) wherever the visitor gives an email: login, sign-up, checkout.",
)
def identified_sessions(ctx: Context, tally: Tally) -> None:
    c = tracking_sessions.c
    total, known = ctx.conn.execute(
        select(func.count(), func.count(c.profile)).where(c.account_id == ctx.account_id)
    ).one()
    if total:
        tally.summary = f"{known} of {total} sessions identified ({100 * known / total:.0f}%)"
    matching(ctx, tally, tracking_sessions, c.profile.is_(None), c.session_id, c.cid)

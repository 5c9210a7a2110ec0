"""The rules over products: variants of a parent never pushed, products without a url, an image or a
price, listings without a currency, and inactive products still ordered."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from patron.model import defects
from patron.report.rules import Context, Kept, Tally, recent_orders, rule
from patron.store import among
from patron.store.schema import product_flags, products

#: How recent an order of an inactive product must be to be flagged.
RECENT_DAYS = 30


KEPT = Kept(product_flags, products, lambda row: str(row.product_id))


KEPT.rule(
    defects.UNKNOWN_PARENT,
    "error",
    "Variants name a parent_id that was never pushed as a product.",
    "Push each parent product, and give its variants its id as parent_id.",
)

KEPT.rule(
    defects.MISSING_FIELDS,
    "warning",
    "Products have no url, image_url or price, so email and recommendations cannot show them.",
    "Send url, image_url and price with every product.",
)

KEPT.rule(
    defects.LISTING_WITHOUT_CURRENCY,
    "warning",
    "Products have listings (a store's price) without a currency.",
    "Send the currency of every listing's price.",
)


@rule(
    "products.inactive_ordered",
    "warning",
    f"Products marked inactive were ordered in the last {RECENT_DAYS} days.",
    "Push is_active true for products on sale; check the feed does not deactivate live products.",
)
def inactive_ordered(ctx: Context, tally: Tally) -> None:
    p = products.c
    inactive = (p.account_id == ctx.account_id) & p.is_active.is_(False)
    if ctx.conn.execute(select(p.id).where(inactive).limit(1)).first() is None:
        return  # nothing inactive: no need to read the recent orders
    flagged: set[str] = set()
    for batch in recent_orders(ctx, ctx.now - timedelta(days=RECENT_DAYS)):
        ordered: dict[str, str] = {}
        for order_id, order in batch:
            for product_id in sorted(defects.named_products(order)):
                ordered.setdefault(product_id, order_id)
        if not ordered:
            continue
        query = select(p.product_id).where(inactive, among(ctx.conn, p.product_id, ordered))
        for product_id in sorted(ctx.conn.execute(query).scalars()):
            if product_id not in flagged:
                flagged.add(product_id)
                tally.add(product_id, ordered[product_id])

"""The rules over products: variants of a parent never pushed, products without a url, an image or a
price, listings without a currency, and inactive products still ordered."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from patron.report.orders import pushed_products
from patron.report.rules import Context, Tally, chunked, document, number, rule, scan
from patron.store import among
from patron.store.schema import orders, products

#: How recent an order of an inactive product must be to be flagged.
RECENT_DAYS = 30


@rule(
    "products.unknown_parent",
    "error",
    "Variants name a parent_id that was never pushed as a product.",
    "Push each parent product, and give its variants its id as parent_id.",
)
def unknown_parent(ctx: Context, tally: Tally) -> None:
    c = products.c
    for batch in chunked(scan(ctx, products, c.product_id, c.data)):
        named = [(row.product_id, document(row.data).get("parent_id")) for row in batch]
        parents = {parent for _, parent in named if isinstance(parent, str)}
        known = pushed_products(ctx, parents)
        for product_id, parent in named:
            if isinstance(parent, str) and parent not in known:
                tally.add(product_id, parent)


@rule(
    "products.missing_fields",
    "warning",
    "Products have no url, image_url or price, so email and recommendations cannot show them.",
    "Send url, image_url and price with every product.",
)
def missing_fields(ctx: Context, tally: Tally) -> None:
    c = products.c
    for row in scan(ctx, products, c.product_id, c.data):
        product = document(row.data)
        missing = [name for name in ("url", "image_url") if not product.get(name)]
        if number(product.get("price")) is None:
            missing.append("price")
        if missing:
            tally.add(row.product_id, missing)


@rule(
    "products.listing_without_currency",
    "warning",
    "Products have listings (a store's price) without a currency.",
    "Send the currency of every listing's price.",
)
def listing_without_currency(ctx: Context, tally: Tally) -> None:
    c = products.c
    for row in scan(ctx, products, c.product_id, c.data):
        listings = document(row.data).get("listings")
        stores = [
            listing.get("store")
            for listing in (listings if isinstance(listings, list) else [])
            if isinstance(listing, dict) and not listing.get("currency")
        ]
        if stores:
            tally.add(row.product_id, stores)


@rule(
    "products.inactive_ordered",
    "warning",
    f"Products marked inactive were ordered in the last {RECENT_DAYS} days.",
    "Push is_active true for products on sale; check the feed does not deactivate live products.",
)
def inactive_ordered(ctx: Context, tally: Tally) -> None:
    since = (ctx.now - timedelta(days=RECENT_DAYS)).isoformat()
    o, p = orders.c, products.c
    flagged: set[str] = set()
    for batch in chunked(scan(ctx, orders, o.order_id, o.data, where=o.placed_at >= since)):
        ordered: dict[str, str] = {}
        for row in batch:
            lines: Any = document(row.data).get("lineitems")
            for line in lines if isinstance(lines, list) else []:
                for key in ("product_id", "variant_id"):
                    if isinstance(line, dict) and isinstance(line.get(key), str):
                        ordered.setdefault(line[key], row.order_id)
        if not ordered:
            continue
        inactive = select(p.product_id).where(
            p.account_id == ctx.account_id, p.is_active.is_(False), among(ctx.conn, p.product_id, ordered)
        )
        for product_id in sorted(ctx.conn.execute(inactive).scalars()):
            if product_id not in flagged:
                flagged.add(product_id)
                tally.add(product_id, ordered[product_id])

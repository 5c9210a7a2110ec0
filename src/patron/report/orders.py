"""The rules over orders: line items of products never pushed, variants without options, totals
that do not add up, a currency without base totals, impossible dates, no customer, a complete order
that is not valid, and one customer id with several emails.

Most are found when an order is written (:mod:`patron.model.defects`); the others read the orders'
indexed columns."""

from __future__ import annotations

from sqlalchemy import func, or_, select

from patron.model import defects
from patron.report.rules import TOLERANCE, Context, Kept, Tally, matching, rule, several
from patron.store.schema import order_flags, orders

#: Orders placed before this are taken for a wrong date (text comparison, as ``placed_at`` sorts).
EARLIEST = "1990-01-01"


KEPT = Kept(order_flags, orders, lambda row: str(row.order_id))


KEPT.rule(
    defects.UNKNOWN_PRODUCT,
    "error",
    "Line items name a product_id or variant_id that was never pushed as a product.",
    "Push every product (and variant) named by the orders' line items.",
)

KEPT.rule(
    defects.VARIANT_WITHOUT_OPTIONS,
    "warning",
    "Line items of a variant (variant_id given) have no variant_options.",
    "Send variant_options (id, type, label: size, colour...) with every variant line item.",
)

KEPT.rule(
    defects.SUBTOTAL_MISMATCH,
    "error",
    f"The order's subtotal is not the sum of its line items' subtotals (tolerance {TOLERANCE}).",
    "Send subtotal as the sum of the line items' subtotals (before shipping, tax and discount).",
)

KEPT.rule(
    defects.GRAND_TOTAL_MISMATCH,
    "error",
    f"grand_total is not subtotal + shipping + tax - discount, nor subtotal + shipping - discount for "
    f"prices that include their tax (tolerance {TOLERANCE}).",
    "Send grand_total as what the customer paid: subtotal + shipping + tax - discount.",
)


@rule(
    "orders.foreign_currency_without_base",
    "error",
    "Orders in another currency than the account's usual (most common) one have no totals in base "
    "currency, so their revenue is counted in the wrong currency.",
    "Send totals.base (currency and grand_total) with every order not in the base currency.",
)
def foreign_currency_without_base(ctx: Context, tally: Tally) -> None:
    c = orders.c
    usual = ctx.conn.execute(
        select(c.currency)
        .where(c.account_id == ctx.account_id, c.currency.is_not(None))
        .group_by(c.currency)
        .order_by(func.count().desc(), c.currency)
        .limit(1)
    ).scalar()
    if usual is None:
        return
    tally.summary = f"usual currency {usual}"
    foreign = (c.currency != usual) & c.currency.is_not(None) & c.base_totals.is_(False)
    matching(ctx, tally, orders, foreign, c.order_id, c.currency)


@rule(
    "orders.timestamp_out_of_range",
    "error",
    f"Orders are dated in the future or before {EARLIEST[:4]}.",
    "Send each order's timestamp as when it was placed, in ISO 8601 with its offset.",
)
def timestamp_out_of_range(ctx: Context, tally: Tally) -> None:
    c = orders.c
    wrong = or_(c.placed_at > ctx.now.isoformat(), c.placed_at < EARLIEST)
    matching(ctx, tally, orders, wrong, c.order_id, c.placed_at)


KEPT.rule(
    defects.NO_CUSTOMER,
    "error",
    "Orders have neither a customer email nor a customer id, so they belong to no one.",
    "Send customer.email or customer.id (both where you can) with every order.",
)

KEPT.rule(
    defects.COMPLETE_BUT_INVALID,
    "warning",
    "Orders have status complete but is_valid false, so they count for nothing.",
    "Send is_valid true for orders that were placed and paid; false only for failed or test orders.",
)


@rule(
    "orders.customer_id_emails",
    "warning",
    "One customer id has different emails across its orders.",
    "Send each customer's id with the same email on every order, or check the ids are not reused.",
)
def customer_id_emails(ctx: Context, tally: Tally) -> None:
    several(ctx, tally, orders, orders.c.customer_id, func.lower(orders.c.customer_email))

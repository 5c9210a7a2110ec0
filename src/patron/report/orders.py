"""The rules over orders: line items of products never pushed, variants without options, totals
that do not add up, a currency without base totals, impossible dates, no customer, a complete order
that is not valid, and one customer id with several emails."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import func, or_, select

from patron.report.rules import (
    TOLERANCE,
    Context,
    Tally,
    chunked,
    document,
    number,
    rule,
    scan,
    several,
)
from patron.store import among
from patron.store.schema import orders, products

#: Orders placed before this are taken for a wrong date (text comparison, as ``placed_at`` sorts).
EARLIEST = "1990-01-01"


def _lines(order: dict[str, Any]) -> list[dict[str, Any]]:
    lines = order.get("lineitems")
    return [line for line in lines if isinstance(line, dict)] if isinstance(lines, list) else []


def pushed_products(ctx: Context, ids: set[str]) -> set[str]:
    """Which of ``ids`` the account has pushed as products."""
    if not ids:
        return set()
    c = products.c
    query = select(c.product_id).where(c.account_id == ctx.account_id, among(ctx.conn, c.product_id, ids))
    return set(ctx.conn.execute(query).scalars())


@rule(
    "orders.unknown_product",
    "error",
    "Line items name a product_id or variant_id that was never pushed as a product.",
    "Push every product (and variant) before, or with, the orders that sell it.",
)
def unknown_product(ctx: Context, tally: Tally) -> None:
    for batch in chunked(scan(ctx, orders, orders.c.order_id, orders.c.data)):
        named = [(row.order_id, document(row.data)) for row in batch]
        ids = {
            str(line[key])
            for _, order in named
            for line in _lines(order)
            for key in ("product_id", "variant_id")
            if isinstance(line.get(key), str)
        }
        known = pushed_products(ctx, ids)
        for order_id, order in named:
            missing = sorted(
                {
                    line[key]
                    for line in _lines(order)
                    for key in ("product_id", "variant_id")
                    if isinstance(line.get(key), str) and line[key] not in known
                }
            )
            if missing:
                tally.add(order_id, missing)


def _scan_orders(ctx: Context, tally: Tally, offending: Any) -> None:
    """Each order for which ``offending(document)`` is not None is a record of the tally."""
    for row in scan(ctx, orders, orders.c.order_id, orders.c.data):
        value = offending(document(row.data))
        if value is not None:
            tally.add(row.order_id, value)


@rule(
    "orders.variant_without_options",
    "warning",
    "Line items of a variant (variant_id given) have no variant_options.",
    "Send variant_options (id, type, label: size, colour...) with every variant line item.",
)
def variant_without_options(ctx: Context, tally: Tally) -> None:
    def offending(order: dict[str, Any]) -> Any:
        bare = [
            line["variant_id"]
            for line in _lines(order)
            if line.get("variant_id") is not None and not line.get("variant_options")
        ]
        return bare or None

    _scan_orders(ctx, tally, offending)


def _line_subtotal(line: dict[str, Any]) -> float | None:
    subtotal = number(line.get("subtotal"))
    if subtotal is not None:
        return subtotal
    price, quantity = number(line.get("unit_price")), number(line.get("quantity"))
    return None if price is None or quantity is None else price * quantity


@rule(
    "orders.subtotal_mismatch",
    "error",
    f"The order's subtotal is not the sum of its line items' subtotals (tolerance {TOLERANCE}).",
    "Send subtotal as the sum of the line items' subtotals (before shipping, tax and discount).",
)
def subtotal_mismatch(ctx: Context, tally: Tally) -> None:
    def offending(order: dict[str, Any]) -> Any:
        subtotal, lines = number(order.get("subtotal")), _lines(order)
        if subtotal is None or not lines:
            return None
        parts = [_line_subtotal(line) for line in lines]
        if any(part is None for part in parts):
            return None
        total = round(sum(p for p in parts if p is not None), 2)
        return {"subtotal": subtotal, "lines": total} if abs(subtotal - total) > TOLERANCE + 1e-9 else None

    _scan_orders(ctx, tally, offending)


@rule(
    "orders.grand_total_mismatch",
    "error",
    f"grand_total is not subtotal + shipping + tax - discount (tolerance {TOLERANCE}).",
    "Send grand_total as what the customer paid: subtotal + shipping + tax - discount.",
)
def grand_total_mismatch(ctx: Context, tally: Tally) -> None:
    def offending(order: dict[str, Any]) -> Any:
        grand, subtotal = number(order.get("grand_total")), number(order.get("subtotal"))
        if grand is None or subtotal is None:
            return None
        parts = [number(order.get(name)) or 0.0 for name in ("shipping", "tax", "discount")]
        expected = round(subtotal + parts[0] + parts[1] - parts[2], 2)
        return (
            {"grand_total": grand, "expected": expected} if abs(grand - expected) > TOLERANCE + 1e-9 else None
        )

    _scan_orders(ctx, tally, offending)


def _currency(order: dict[str, Any]) -> str | None:
    value = order.get("currency")
    return value if isinstance(value, str) else None


def _has_base_totals(order: dict[str, Any]) -> bool:
    totals = order.get("totals")
    base = totals.get("base") if isinstance(totals, dict) else None
    return isinstance(base, dict) and number(base.get("grand_total")) is not None


@rule(
    "orders.foreign_currency_without_base",
    "error",
    "Orders in another currency than the account's usual (most common) one have no totals in base "
    "currency, so their revenue is counted in the wrong currency.",
    "Send totals.base (currency and grand_total) with every order not in the base currency.",
)
def foreign_currency_without_base(ctx: Context, tally: Tally) -> None:
    seen: Counter[str] = Counter()
    for row in scan(ctx, orders, orders.c.data):
        currency = _currency(document(row.data))
        if currency is not None:
            seen[currency] += 1
    if not seen:
        return
    usual = sorted(seen.items(), key=lambda item: (-item[1], item[0]))[0][0]
    tally.summary = f"usual currency {usual}"

    def offending(order: dict[str, Any]) -> Any:
        currency = _currency(order)
        return currency if currency not in (None, usual) and not _has_base_totals(order) else None

    _scan_orders(ctx, tally, offending)


@rule(
    "orders.timestamp_out_of_range",
    "error",
    f"Orders are dated in the future or before {EARLIEST[:4]}.",
    "Send each order's timestamp as when it was placed, in ISO 8601 with its offset.",
)
def timestamp_out_of_range(ctx: Context, tally: Tally) -> None:
    c = orders.c
    future = ctx.now.isoformat()
    wrong = or_(c.placed_at > future, c.placed_at < EARLIEST)
    for row in scan(ctx, orders, c.order_id, c.placed_at, where=wrong):
        tally.add(row.order_id, row.placed_at)


@rule(
    "orders.no_customer",
    "error",
    "Orders have neither a customer email nor a customer id, so they belong to no one.",
    "Send customer.email or customer.id (both where you can) with every order.",
)
def no_customer(ctx: Context, tally: Tally) -> None:
    c = orders.c
    for row in scan(ctx, orders, c.order_id, where=c.customer_id.is_(None) & c.customer_email.is_(None)):
        tally.add(row.order_id)


@rule(
    "orders.complete_but_invalid",
    "warning",
    "Orders have status complete but is_valid false, so they count for nothing.",
    "Send is_valid true for orders that were placed and paid; false only for failed or test orders.",
)
def complete_but_invalid(ctx: Context, tally: Tally) -> None:
    def offending(order: dict[str, Any]) -> Any:
        status = order.get("status")
        complete = isinstance(status, str) and status.strip().lower() == "complete"
        return status if complete and order.get("is_valid") is False else None

    _scan_orders(ctx, tally, offending)


@rule(
    "orders.customer_id_emails",
    "warning",
    "One customer id has different emails across its orders.",
    "Send each customer's id with the same email on every order, or check the ids are not reused.",
)
def customer_id_emails(ctx: Context, tally: Tally) -> None:
    several(ctx, tally, orders, orders.c.customer_id, func.lower(orders.c.customer_email))

"""What is wrong with one stored record on its own, found when it is written and kept beside it (the
``*_flags`` tables), so that the integration check counts an account's defects with an index
instead of reading every document.

A :class:`Defect` names its rule, the value at fault, and, for a record it names that was never
pushed (a line item's product, a variant's parent), that record's id as ``ref``: writing the
product later clears it. Each record's flags are replaced whenever the record is written, in the
same transaction, so they are never out of step with the documents."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, Final, NamedTuple

import phonenumbers
from sqlalchemy import Connection, Table, delete, select

from patron.model.documents import Document
from patron.store import among, chunks, insert_rows
from patron.store.schema import contact_flags, order_flags, product_flags, products

#: How far a total may be from the sum it should be and still be right (rounding): one cent.
TOLERANCE: Final = 0.01
_EPSILON: Final = 1e-9  # floating point's own error, beside the cent

UNKNOWN_PRODUCT: Final = "orders.unknown_product"
VARIANT_WITHOUT_OPTIONS: Final = "orders.variant_without_options"
SUBTOTAL_MISMATCH: Final = "orders.subtotal_mismatch"
GRAND_TOTAL_MISMATCH: Final = "orders.grand_total_mismatch"
NO_CUSTOMER: Final = "orders.no_customer"
COMPLETE_BUT_INVALID: Final = "orders.complete_but_invalid"
UNKNOWN_PARENT: Final = "products.unknown_parent"
MISSING_FIELDS: Final = "products.missing_fields"
LISTING_WITHOUT_CURRENCY: Final = "products.listing_without_currency"
NO_MARKETING_OPTIN: Final = "contacts.no_marketing_optin"
SUBSCRIBED_WITHOUT_OPTIN: Final = "contacts.subscribed_without_optin"
INVALID_PHONE: Final = "contacts.invalid_phone"
#: The rules whose flags name a product that was never pushed (cleared when it is).
UNKNOWN_REFS: Final = (UNKNOWN_PRODUCT, UNKNOWN_PARENT)

OPTED_IN: Final[tuple[Any, ...]] = ("EXPLICITLY_OPTEDIN", True)


class Defect(NamedTuple):
    rule: str
    value: Any = None
    #: The id of a product the record names that was never pushed.
    ref: str | None = None


def number(value: Any) -> float | None:
    """A JSON number (not a boolean), or None."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def lines(order: Document) -> list[dict[str, Any]]:
    found = order.get("lineitems")
    return [line for line in found if isinstance(line, dict)] if isinstance(found, list) else []


def named_products(order: Document) -> set[str]:
    """The product (and variant) ids an order's line items name."""
    return {
        line[key]
        for line in lines(order)
        for key in ("product_id", "variant_id")
        if isinstance(line.get(key), str)
    }


def _line_subtotal(line: dict[str, Any]) -> float | None:
    subtotal = number(line.get("subtotal"))
    if subtotal is not None:
        return subtotal
    price, quantity = number(line.get("unit_price")), number(line.get("quantity"))
    return None if price is None or quantity is None else price * quantity


def _off(given: float, expected: float) -> bool:
    return abs(given - expected) > TOLERANCE + _EPSILON


def subtotal_mismatch(order: Document) -> dict[str, float] | None:
    """The subtotal and the sum of the line subtotals, when they differ by more than a cent (and every
    line gives its subtotal, or a unit price and quantity)."""
    subtotal, given = number(order.get("subtotal")), lines(order)
    if subtotal is None or not given:
        return None
    parts = [_line_subtotal(line) for line in given]
    if any(part is None for part in parts):
        return None
    total = round(sum(p for p in parts if p is not None), 2)
    return {"subtotal": subtotal, "lines": total} if _off(subtotal, total) else None


def grand_total_mismatch(order: Document) -> dict[str, float] | None:
    """The grand total and ``subtotal + shipping + tax - discount``, when the grand total is more than a
    cent from it and from ``subtotal + shipping - discount`` (prices that include their tax, as shops
    in Europe send them)."""
    grand, subtotal = number(order.get("grand_total")), number(order.get("subtotal"))
    if grand is None or subtotal is None:
        return None
    shipping, tax, discount = (number(order.get(name)) or 0.0 for name in ("shipping", "tax", "discount"))
    expected = round(subtotal + shipping + tax - discount, 2)
    included = round(subtotal + shipping - discount, 2)
    return (
        {"grand_total": grand, "expected": expected}
        if _off(grand, expected) and _off(grand, included)
        else None
    )


def currency(order: Document) -> str | None:
    value = order.get("currency")
    return value if isinstance(value, str) else None


def base_totals(order: Document) -> bool:
    """Whether the order gives its grand total in the base currency."""
    totals = order.get("totals")
    base = totals.get("base") if isinstance(totals, dict) else None
    return isinstance(base, dict) and number(base.get("grand_total")) is not None


def order_defects(order: Document) -> list[Defect]:
    found = []
    bare = [
        line["variant_id"]
        for line in lines(order)
        if line.get("variant_id") is not None and not line.get("variant_options")
    ]
    if bare:
        found.append(Defect(VARIANT_WITHOUT_OPTIONS, bare))
    if (value := subtotal_mismatch(order)) is not None:
        found.append(Defect(SUBTOTAL_MISMATCH, value))
    if (value := grand_total_mismatch(order)) is not None:
        found.append(Defect(GRAND_TOTAL_MISMATCH, value))
    customer = order.get("customer")
    customer = customer if isinstance(customer, dict) else {}
    if customer.get("id") is None and customer.get("email") is None:
        found.append(Defect(NO_CUSTOMER))
    status = order.get("status")
    if isinstance(status, str) and status.strip().lower() == "complete" and order.get("is_valid") is False:
        found.append(Defect(COMPLETE_BUT_INVALID, status))
    return found


def product_defects(product: Document) -> list[Defect]:
    found = []
    missing = [name for name in ("url", "image_url") if not product.get(name)]
    if number(product.get("price")) is None:
        missing.append("price")
    if missing:
        found.append(Defect(MISSING_FIELDS, missing))
    listings = product.get("listings")
    stores = [
        listing.get("store")
        for listing in (listings if isinstance(listings, list) else [])
        if isinstance(listing, dict) and not listing.get("currency")
    ]
    if stores:
        found.append(Defect(LISTING_WITHOUT_CURRENCY, stores))
    return found


def valid_phone(phone: str, country: str | None) -> bool:
    """Whether ``phone`` (E.164) is a valid number, of ``country`` when the contact gives one."""
    try:
        parsed = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return False
    if country:
        return phonenumbers.is_valid_number_for_region(parsed, country.upper())
    return phonenumbers.is_valid_number(parsed)


def contact_defects(contact: Document) -> list[Defect]:
    found = []
    optin = contact.get("marketing_optin")
    if optin is None:
        found.append(Defect(NO_MARKETING_OPTIN))
    if contact.get("timestamp_subscribed") and optin not in OPTED_IN:
        found.append(Defect(SUBSCRIBED_WITHOUT_OPTIN, optin))
    phone, country = contact.get("phone_number"), contact.get("country_id")
    country = country if isinstance(country, str) else None
    if isinstance(phone, str) and not valid_phone(phone, country):
        found.append(Defect(INVALID_PHONE, {"phone_number": phone, "country_id": country}))
    return found


class Flags(NamedTuple):
    """How one record type's defects are found and kept."""

    table: Table
    of: Callable[[Document], list[Defect]]
    #: The product ids a record names, which must have been pushed, and the rule that says so.
    refs: Callable[[Document], Iterable[str]] | None = None
    ref_rule: str | None = None


def _parent(product: Document) -> list[str]:
    parent = product.get("parent_id")
    return [parent] if isinstance(parent, str) else []


FLAGS: Final[dict[str, Flags]] = {
    "order": Flags(order_flags, order_defects, named_products, UNKNOWN_PRODUCT),
    "product": Flags(product_flags, product_defects, _parent, UNKNOWN_PARENT),
    "contact": Flags(contact_flags, contact_defects),
}


def pushed_products(conn: Connection, account_id: int, ids: Iterable[str]) -> set[str]:
    """Which of ``ids`` the account has stored as products."""
    wanted = sorted(set(ids))
    c = products.c
    found: set[str] = set()
    for chunk in chunks(wanted):
        query = select(c.product_id).where(c.account_id == account_id, among(conn, c.product_id, chunk))
        found.update(conn.execute(query).scalars())
    return found


def find(record_type: str, docs: list[Document], conn: Connection, account_id: int) -> list[list[Defect]]:
    """Each document's defects, those naming products not stored (nor among ``docs``, for products)
    included."""
    flags = FLAGS[record_type]
    found = [flags.of(doc) for doc in docs]
    if flags.refs is None or flags.ref_rule is None:
        return found
    named = [set(flags.refs(doc)) for doc in docs]
    known = pushed_products(conn, account_id, set().union(*named))
    if record_type == "product":
        known.update(str(doc.get("id")) for doc in docs)
    for defects, refs in zip(found, named, strict=True):
        defects.extend(Defect(flags.ref_rule, ref, ref) for ref in sorted(refs - known))
    return found


def keep(
    conn: Connection,
    record_type: str,
    account_id: int,
    rows: list[tuple[int, list[Defect]]],
    *,
    replace: bool,
) -> None:
    """Store the defects of the records ``rows`` (internal id, defects); ``replace``: first drop what
    was kept for them before."""
    if record_type not in FLAGS:
        return
    t = FLAGS[record_type].table
    if replace:
        for chunk in chunks([row_id for row_id, _ in rows]):
            conn.execute(delete(t).where(among(conn, t.c.row_id, chunk)))
    values = [
        (row_id, d.rule, d.ref, None if d.value is None else json.dumps(d.value))
        for row_id, defects in rows
        for d in defects
    ]
    insert_rows(conn, t, {"account_id": account_id}, ("row_id", "rule", "ref", "value"), values)


def products_arrived(conn: Connection, account_id: int, product_ids: list[str]) -> None:
    """New products are no longer unknown to the orders and variants that name them."""
    for t in (order_flags, product_flags):
        for chunk in chunks(product_ids):
            conn.execute(
                delete(t).where(
                    t.c.account_id == account_id, t.c.ref.is_not(None), among(conn, t.c.ref, chunk)
                )
            )


def refresh(conn: Connection, record_type: str, account_id: int, rows: list[tuple[int, Document]]) -> None:
    """The defects of records rewritten in place (internal id, new document) replace their old ones."""
    if record_type in FLAGS and rows:
        found = find(record_type, [doc for _, doc in rows], conn, account_id)
        keep(
            conn,
            record_type,
            account_id,
            [(i, d) for (i, _), d in zip(rows, found, strict=True)],
            replace=True,
        )

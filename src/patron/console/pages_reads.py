"""What the console's catalogue, lists, email and settings pages read, each a bounded page found by
an index (a seek by number or by key, never a scan of an account's records): products by their
number in the account or by id prefix, a product's variants, lists and their members, templates,
the outbox newest first, and an account's keys, limits and link domains."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Final

import msgspec
from sqlalchemy import Connection, select

from patron import accounts, entities
from patron.email import templates
from patron.profiles import lists
from patron.store.schema import accounts as accounts_table
from patron.store.schema import list_members, messages, products, profiles

#: Rows a page shows.
PAGE: Final = 50
#: The deepest offset a page paged by offset may ask for (lists and templates: an account has at
#: most ``lists.MAX_LISTS`` lists, and few templates).
MAX_OFFSET: Final = 100_000


class ProductRow(msgspec.Struct):
    id: str
    seq: int
    title: str | None
    price: Any
    currency: str | None
    active: bool | None
    variant: bool | None
    parent_id: str | None


class Products(msgspec.Struct):
    rows: list[ProductRow]
    #: Where the next page starts (a number, or with a prefix an id), or None on the last page.
    next_after: str | None


class Product(msgspec.Struct):
    id: str
    document: dict[str, Any]
    #: The document as JSON text, indented.
    text: str
    listings: list[dict[str, Any]]
    variants: list[ProductRow]
    next_variant: str | None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _product_row(row: Any) -> ProductRow:
    doc = json.loads(row.data)
    return ProductRow(
        id=row.product_id,
        seq=int(row.seq or 0),
        title=_text(doc.get("title")),
        price=doc.get("price"),
        currency=_text(doc.get("currency")),
        active=row.is_active,
        variant=row.is_variant,
        parent_id=row.parent_id,
    )


def _after_prefix(prefix: str) -> str | None:
    """The first string past every one that starts with ``prefix`` (in code point order), if any."""
    last = ord(prefix[-1])
    return None if last >= 0x10FFFF else prefix[:-1] + chr(last + 1)


def products_page(conn: Connection, account_id: int, after: str | None, prefix: str | None) -> Products:
    """A page of the account's products: in their numbering (``seq``, after the number ``after``), or
    those whose id starts with ``prefix`` in id order (after the id ``after``): a seek either way."""
    p = products.c
    columns = (p.product_id, p.seq, p.data, p.is_active, p.is_variant, p.parent_id)
    query = select(*columns).where(p.account_id == account_id)
    if prefix:
        query = query.where(p.product_id >= prefix, p.product_id.startswith(prefix, autoescape=True))
        bound = _after_prefix(prefix)
        if bound is not None:
            query = query.where(p.product_id < bound)
        if after:
            query = query.where(p.product_id > after)
        query = query.order_by(p.product_id)
    else:
        start = int(after) if after and after.isdigit() else 0
        query = query.where(p.seq > start).order_by(p.seq)
    rows = [_product_row(r) for r in conn.execute(query.limit(PAGE + 1))]
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    following = None
    if more:
        following = rows[-1].id if prefix else str(rows[-1].seq)
    return Products(rows, following)


def product(conn: Connection, account_id: int, product_id: str, after_variant: str | None) -> Product | None:
    """A product's document, its listings and a page of its variants (the products whose
    ``parent_id`` it is, in id order)."""
    found = entities.get_document(conn, "product", account_id, product_id)
    if found is None:
        return None
    doc = json.loads(found)
    p = products.c
    query = select(p.product_id, p.seq, p.data, p.is_active, p.is_variant, p.parent_id).where(
        p.account_id == account_id, p.parent_id == product_id
    )
    if after_variant:
        query = query.where(p.product_id > after_variant)
    variants = [_product_row(r) for r in conn.execute(query.order_by(p.product_id).limit(PAGE + 1))]
    listed = doc.get("listings")
    listings = [item for item in listed if isinstance(item, dict)] if isinstance(listed, list) else []
    following = variants[PAGE - 1].id if len(variants) > PAGE else None
    text = json.dumps(doc, indent=2, ensure_ascii=False)
    return Product(product_id, doc, text, listings, variants[:PAGE], following)


# lists ------------------------------------------------------------------------------------------


class Member(msgspec.Struct):
    profile: str
    email: str | None
    joined_at: datetime


def lists_page(conn: Connection, account_id: int, offset: int) -> tuple[list[lists.ListView], bool]:
    """A page of the account's lists (archived ones too), and whether there are more."""
    found = lists.read(conn, account_id, mode="all", limit=PAGE + 1, offset=offset)
    return found[:PAGE], len(found) > PAGE


def one_list(conn: Connection, account_id: int, list_id: str) -> lists.ListView | None:
    found = lists.read(conn, account_id, list_id=list_id)
    return found[0] if found else None


def members(
    conn: Connection, account_id: int, list_id: str, after: str | None
) -> tuple[list[Member], str | None]:
    """A page of a list's members in profile id order (after the profile ``after``), with their
    emails, and where the next page starts."""
    m, p = list_members.c, profiles.c
    query = (
        select(m.profile, m.created_at, p.email)
        .select_from(
            list_members.outerjoin(profiles, (p.account_id == m.account_id) & (p.profile_id == m.profile))
        )
        .where(m.account_id == account_id, m.list_id == list_id)
    )
    if after:
        query = query.where(m.profile > after)
    rows = conn.execute(query.order_by(m.profile).limit(PAGE + 1)).all()
    found = [Member(r.profile, r.email, r.created_at) for r in rows[:PAGE]]
    return found, (found[-1].profile if len(rows) > PAGE else None)


# email ------------------------------------------------------------------------------------------


class Message(msgspec.Struct):
    row: int
    message_id: str
    status: str
    recipient: str
    subject: str
    attempts: int
    error: str | None
    created_at: datetime
    sent_at: datetime | None


def templates_page(conn: Connection, account_id: int, offset: int) -> tuple[list[templates.Template], bool]:
    found = templates.list_templates(conn, account_id, PAGE + 1, offset)
    return found[:PAGE], len(found) > PAGE


def outbox(conn: Connection, account_id: int, before: int | None) -> tuple[list[Message], int | None]:
    """A page of the account's messages, newest first (before the row ``before``), and where the
    next page starts."""
    m = messages.c
    query = select(
        m.id,
        m.message_id,
        m.status,
        m.recipient,
        m.subject,
        m.attempts,
        m.error,
        m.created_at,
        m.sent_at,
    ).where(m.account_id == account_id)
    if before is not None:
        query = query.where(m.id < before)
    rows = conn.execute(query.order_by(m.id.desc()).limit(PAGE + 1)).all()
    found = [Message(*r) for r in rows[:PAGE]]
    return found, (found[-1].row if len(rows) > PAGE else None)


# settings ---------------------------------------------------------------------------------------


class Settings(msgspec.Struct):
    keys: list[accounts.ApiKey]
    limits: dict[str, str]
    queue_limit: int
    strict: bool
    link_domains: list[str]


def settings(conn: Connection, account: accounts.Account) -> Settings:
    domains = conn.execute(
        select(accounts_table.c.link_domains).where(accounts_table.c.id == account.id)
    ).scalar()
    return Settings(
        keys=accounts.list_keys(conn, account.hash),
        limits=account.effective_limits,
        queue_limit=account.queue_limit,
        strict=account.strict,
        link_domains=list(domains or []),
    )

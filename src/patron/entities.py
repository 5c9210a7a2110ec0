"""Reading stored entities: contacts, orders, products and custom events.

Documents are returned as the JSON text stored by the worker, so a page of 250 orders is read and
sent without being decoded and encoded again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, Connection, func, or_, select

from patron.model.storage import KINDS
from patron.store.schema import contacts

#: Conditions on the rows of one entity table, built by the ``*_filters`` functions below.
Filters = Sequence[ColumnElement[bool]]
DEFAULT_LIMIT: Final = 10
MAX_LIMIT: Final = 250


@dataclass(frozen=True)
class Page:
    """``limit`` (clamped to 1..250), ``offset``, and the order: internal id, or update time then id."""

    limit: int = DEFAULT_LIMIT
    offset: int = 0
    by_update: bool = False

    @classmethod
    def of(cls, limit: int, offset: int, orderby: str | None) -> Page:
        return cls(min(max(limit, 1), MAX_LIMIT), offset, orderby == "timestamp_update")


def as_array(documents: Sequence[str]) -> bytes:
    return ("[" + ",".join(documents) + "]").encode()


def list_documents(
    conn: Connection,
    record_type: str,
    account_id: int,
    page: Page,
    where: Filters = (),
) -> list[str]:
    """A page of documents. In creation order with no filter, the page is found by the entities'
    numbers in their account (``seq``): any depth costs the same. Otherwise the offset is walked on an
    index alone (the page's ids first, then their documents), not over the documents before it."""
    table = KINDS[record_type].table
    if not where and not page.by_update:
        numbered = select(table.c.data).where(
            table.c.account_id == account_id,
            table.c.seq > page.offset,
            table.c.seq <= page.offset + page.limit,
        )
        return list(conn.execute(numbered.order_by(table.c.seq)).scalars())
    order = (table.c.updated_at, table.c.id) if page.by_update else (table.c.id,)
    ids = (
        select(table.c.id)
        .where(table.c.account_id == account_id, *where)
        .order_by(*order)
        .limit(page.limit)
        .offset(page.offset)
    )
    query = select(table.c.data).where(table.c.id.in_(ids)).order_by(*order)
    return list(conn.execute(query).scalars())


def get_document(conn: Connection, record_type: str, account_id: int, *key: str) -> str | None:
    kind = KINDS[record_type]
    conditions = [column == value for column, value in zip(kind.key_columns(), key, strict=True)]
    query = select(kind.table.c.data).where(kind.table.c.account_id == account_id, *conditions)
    found: str | None = conn.execute(query).scalar_one_or_none()
    return found


def collections(conn: Connection, account_id: int, limit: int, offset: int) -> list[dict[str, Any]]:
    """The account's contact collections with how many contacts each holds."""
    query = (
        select(contacts.c.collection, func.count().label("count"))
        .where(contacts.c.account_id == account_id)
        .group_by(contacts.c.collection)
        .order_by(contacts.c.collection)
        .limit(limit)
        .offset(offset)
    )
    return [{"collection": r.collection, "count": r.count} for r in conn.execute(query)]


def contact_filters(collection: str | None = None, email: str | None = None) -> Filters:
    table = KINDS["contact"].table
    wanted = {"collection": collection, "email": email}
    return [table.c[name] == value for name, value in wanted.items() if value is not None]


def updated_since(record_type: str, since: datetime | None) -> Filters:
    """Records updated (stored or changed) at or after ``since`` (naive: UTC)."""
    if since is None:
        return []
    moment = since if since.tzinfo else since.replace(tzinfo=UTC)
    return [KINDS[record_type].table.c.updated_at >= moment]


def product_filters(active: bool | None, include_variants: bool) -> Filters:
    """``active=true|false`` (omitted: both) and ``includeVariants`` (default: parents only)."""
    table = KINDS["product"].table
    where: list[ColumnElement[bool]] = []
    if active is not None:
        # A product whose is_active was never sent counts as active.
        where.append(table.c.is_active.is_not(False) if active else table.c.is_active.is_(False))
    if not include_variants:
        where.append(or_(table.c.is_variant.is_(None), table.c.is_variant.is_(False)))
    return where


def event_filters(
    event_type: str | None,
    identity_email: str | None,
    identity_account_id: str | None,
    profile_id: str | None,
) -> Filters:
    table = KINDS["custom_event"].table
    wanted = {
        "event_type": event_type,
        "identity_email": identity_email,
        "identity_account_id": identity_account_id,
    }
    where = [table.c[name] == value for name, value in wanted.items() if value is not None]
    if profile_id is not None:  # the events that name the profile, and those linked to it otherwise
        where.append(or_(table.c.profile_id == profile_id, table.c.profile == profile_id))
    return where

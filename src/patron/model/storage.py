"""How each record type is stored (:data:`KINDS`), and a round's records merged into the stored
documents (:func:`plan`) and written (:func:`write`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Column, Connection, Table, bindparam, func, insert, select, update

from patron.model import defects, stats
from patron.model.documents import Document, Key, Step, merge
from patron.store import among_keys
from patron.store.schema import contacts, custom_events, orders, products

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode


@dataclass(frozen=True)
class Kind:
    """How one record type is stored: its table, its key, and the columns taken from the document."""

    name: str
    table: Table
    key: dict[str, str]  # document field -> column, forming the record's key within the account
    columns: dict[str, Callable[[Document], Any]]  # column -> its value, read from the document

    def key_of(self, doc: Document) -> tuple[str, ...]:
        return tuple(str(doc[field]) for field in self.key)

    def key_columns(self) -> list[Column[Any]]:
        return [self.table.c[column] for column in self.key.values()]


def _get(*path: str) -> Callable[[Document], Any]:
    def get(doc: Document) -> Any:
        value: Any = doc
        for step in path:
            value = value.get(step) if isinstance(value, dict) else None
        return value

    return get


def _parent_id(doc: Document) -> str | None:
    """A variant's product id (ids are strings or numbers), as its column holds it."""
    value = doc.get("parent_id")
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None


KINDS: dict[str, Kind] = {
    "contact": Kind(
        "contact",
        contacts,
        {"@collection": "collection", "id": "contact_id"},
        {
            "email": _get("email"),
            "customer_id": _get("customer_id"),
            "phone_number": _get("phone_number"),
        },
    ),
    "order": Kind(
        "order",
        orders,
        {"id": "order_id"},
        {
            "customer_id": _get("customer", "id"),
            "customer_email": _get("customer", "email"),
            "counted": stats.counted,
            "revenue": stats.revenue,
            "items": stats.items,
            "placed_at": stats.placed_at,
            "currency": defects.currency,
            "base_totals": defects.base_totals,
        },
    ),
    "product": Kind(
        "product",
        products,
        {"id": "product_id"},
        {"is_active": _get("is_active"), "is_variant": _get("is_variant"), "parent_id": _parent_id},
    ),
    "custom_event": Kind(
        "custom_event",
        custom_events,
        {"id": "event_id"},
        {
            "event_type": _get("event_type"),
            "identity_email": _get("identity_email"),
            "identity_account_id": _get("identity_account_id"),
            "profile_id": _get("profile_id"),
        },
    ),
}


@dataclass
class Changes:
    """The rows that applying some records of one type to one account will write, by record key:
    ``rows`` holds each key's new column values, ``stored`` the internal id of keys already stored."""

    kind: Kind
    account_id: int
    rows: dict[Key, dict[str, Any]]
    stored: dict[Key, int]
    steps: list[Step]  # one per record, in the order given


def plan(
    conn: Connection, account_id: int, record_type: str, records: list[tuple[Document, datetime]]
) -> Changes:
    """Merge ``records`` (each with the time its request is applied at, in order) into the stored
    documents they name. Only reads: :func:`write` stores the result."""
    kind = KINDS[record_type]
    table = kind.table
    if record_type == "contact":
        for record, _ in records:
            record.setdefault("@collection", "default")
    keys = {kind.key_of(r) for r, _ in records}
    key_cols = kind.key_columns()
    stored: dict[Key, tuple[int, Document]] = {}
    for condition in among_keys(conn, key_cols, keys):
        found = conn.execute(
            select(table.c.id, table.c.data, *key_cols).where(table.c.account_id == account_id, condition)
        )
        stored.update({tuple(str(v) for v in row[2:]): (row.id, _decode(row.data)) for row in found})
    merged: dict[Key, tuple[Document, datetime, datetime]] = {}  # doc, first and last touch
    steps: list[Step] = []
    for record, at in records:
        key = kind.key_of(record)
        previous: Document | None
        if key in merged:
            previous, first, _ = merged[key]
        else:
            previous, first = (stored[key][1] if key in stored else None), at
        doc = merge(previous, record)
        merged[key] = (doc, first, at)
        steps.append(Step(key, previous, doc))
    rows: dict[Key, dict[str, Any]] = {}
    for key, (doc, first, last) in merged.items():
        rows[key] = {"data": doc, "updated_at": last}
        if key not in stored:
            rows[key].update({c.name: v for c, v in zip(key_cols, key, strict=True)}, created_at=first)
    return Changes(kind, account_id, rows, {key: stored[key][0] for key in keys & stored.keys()}, steps)


def write(conn: Connection, changes: Changes, links: dict[Key, str | None] | None = None) -> None:
    """Store the planned rows, with the profile each record belongs to when ``links`` are given."""
    kind, table = changes.kind, changes.kind.table
    inserts, updates = [], []
    for key, row in changes.rows.items():
        doc = row["data"]
        values = {name: get(doc) for name, get in kind.columns.items()}
        values.update(row, data=_encode(doc).decode())
        if links is not None:
            values["profile"] = links.get(key)
        if key in changes.stored:
            updates.append({"_id": changes.stored[key], **values})
        else:
            inserts.append(values)
    first = None
    if inserts:
        # each account's entities are numbered 1, 2, 3... in creation order (deep pages seek to it);
        # only the worker holding the account's claim inserts them
        last = conn.execute(
            select(func.max(table.c.seq)).where(table.c.account_id == changes.account_id)
        ).scalar()
        first = (last or 0) + 1
        for n, values in enumerate(inserts, start=first):
            values["seq"] = n
        conn.execute(insert(table).values(account_id=changes.account_id), inserts)
    if updates:
        conn.execute(update(table).where(table.c.id == bindparam("_id")), updates)
    _keep_defects(conn, changes, first)


def _keep_defects(conn: Connection, changes: Changes, first: int | None) -> None:
    """The written records' defects replace those kept for them (:mod:`patron.model.defects`);
    ``first``: the ``seq`` of the first record :func:`write` inserted (the new ones follow it, in
    the order of ``changes.rows``)."""
    kind, account_id = changes.kind, changes.account_id
    if kind.name not in defects.FLAGS:
        return
    keys = list(changes.rows)
    found = defects.find(kind.name, [changes.rows[key]["data"] for key in keys], conn, account_id)
    flawed = {key: d for key, d in zip(keys, found, strict=True) if d}
    ids = dict(changes.stored)
    new = [key for key in keys if key not in ids]
    if first is not None and any(key in flawed for key in new):  # their internal ids, by their seq
        t = kind.table
        span = t.c.seq.between(first, first + len(new) - 1)
        by_seq = dict(conn.execute(select(t.c.seq, t.c.id).where(t.c.account_id == account_id, span)).all())
        ids.update({key: by_seq[first + n] for n, key in enumerate(new)})
    replaced = [(ids[key], flawed.get(key, [])) for key in changes.stored]
    defects.keep(conn, kind.name, account_id, replaced, replace=True)
    flawed_new = [(ids[key], flawed[key]) for key in new if key in flawed]
    defects.keep(conn, kind.name, account_id, flawed_new, replace=False)
    if kind.name == "product" and new:
        defects.products_arrived(conn, account_id, [key[-1] for key in new])

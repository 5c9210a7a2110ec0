"""Signed links in email: the one-click unsubscribe of RFC 8058 (``List-Unsubscribe``).

A link names a message and carries an HMAC-SHA256 of it under the account's link key, so it cannot
be made up or altered; it unsubscribes the address the message went to (type ``list_unsubscribe`` in
``GET /v2/unsubscribes``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import Connection, select, update

from patron.store.schema import accounts, messages

PATH = "/u"


def account_key(conn: Connection, account_id: int) -> str:
    """The account's link key, made on first use."""
    key: str | None = conn.execute(select(accounts.c.link_secret).where(accounts.c.id == account_id)).scalar()
    if key is None:
        key = secrets.token_hex(32)
        conn.execute(update(accounts).where(accounts.c.id == account_id).values(link_secret=key))
    return key


def _signature(key: str, message_id: str) -> str:
    return hmac.new(bytes.fromhex(key), f"unsubscribe:{message_id}".encode(), hashlib.sha256).hexdigest()[:32]


def unsubscribe_url(base_url: str, key: str, message_id: str) -> str:
    return f"{base_url.rstrip('/')}{PATH}/{message_id}.{_signature(key, message_id)}"


class Recipient:
    def __init__(self, account_id: int, queue_limit: int, email: str) -> None:
        self.account_id, self.queue_limit, self.email = account_id, queue_limit, email


def verify(conn: Connection, token: str) -> Recipient | None:
    """The account and address a link unsubscribes; None for a link that was not made here."""
    message_id, _, signature = token.partition(".")
    m = messages
    row = conn.execute(
        select(m.c.account_id, m.c.recipient, accounts.c.link_secret, accounts.c.queue_limit)
        .join(accounts, accounts.c.id == m.c.account_id)
        .where(m.c.message_id == message_id)
    ).first()
    if row is None or row.link_secret is None:
        return None
    if not hmac.compare_digest(_signature(row.link_secret, message_id), signature):
        return None
    return Recipient(row.account_id, row.queue_limit, row.recipient)

"""What Patron signs for people to carry: each account has a link key, made on first use, and a signed
value carries an HMAC-SHA256 of what it names, under that key, with the purpose it is for (so that a
signature made for one purpose is worth nothing for another).

The links of email (``email.links``) are signed here, and so is the identity a verified link hands the
website tag: ``<profile id>.<expiry>.<signature>``, which the tag sends back as ``omid:<token>`` in
``identify`` (``tracking.events``). A bare profile id identifies nobody: ids are not secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from sqlalchemy import Connection, select, update

from patron.store.schema import accounts

#: How long the identity a verified link hands the website tag works, from the click.
IDENTITY_SECONDS = 86_400
_IDENTITY = "identity"


def account_key(conn: Connection, account_id: int) -> str:
    """The account's link key, made on first use (by whichever transaction comes first: one that
    finds it made meanwhile takes that one)."""
    key = stored_key(conn, account_id)
    if key is None:
        a = accounts
        made = secrets.token_hex(32)
        first = a.c.link_secret.is_(None)
        conn.execute(update(a).where(a.c.id == account_id, first).values(link_secret=made))
        key = stored_key(conn, account_id)
        assert key is not None
    return key


def stored_key(conn: Connection, account_id: int) -> str | None:
    """The account's link key, if it has one (nothing it did not sign can verify without one)."""
    key: str | None = conn.execute(select(accounts.c.link_secret).where(accounts.c.id == account_id)).scalar()
    return key


def signature(key: str, *parts: str) -> str:
    """The signature of ``parts`` (the first names the purpose) under ``key``."""
    return hmac.new(bytes.fromhex(key), ":".join(parts).encode(), hashlib.sha256).hexdigest()[:32]


def signed(key: str | None, given: str, *parts: str) -> bool:
    """Whether ``given`` is the signature of ``parts`` under ``key``."""
    return key is not None and given.isascii() and hmac.compare_digest(signature(key, *parts), given)


def identity_token(key: str, profile_id: str, expires: int) -> str:
    """The identity of a profile, for the website tag, until ``expires`` (Unix seconds)."""
    return f"{profile_id}.{expires}.{signature(key, _IDENTITY, profile_id, str(expires))}"


def identified(key: str | None, token: str, at: datetime) -> str | None:
    """The profile id an identity token names, if it was signed under ``key`` and has not expired at
    ``at``; None for anything else (a bare profile id, say)."""
    named, _, given = token.rpartition(".")
    profile_id, _, expires = named.rpartition(".")
    if not profile_id or not (expires.isascii() and expires.isdigit()) or len(expires) > 12:
        return None
    if not signed(key, given, _IDENTITY, profile_id, expires) or int(expires) < at.timestamp():
        return None
    return profile_id

"""The signed links of email: nothing in them can be made up or altered, because each carries an
HMAC-SHA256 of what it names under its account's link key.

- ``/u/<message id>.<sig>``: the one-click unsubscribe of RFC 8058 (``List-Unsubscribe``), and the
  ``{{ unsubscribe_url }}`` of a template; it unsubscribes the address the message went to.
- ``/p/<account hash>/<profile id>.<sig>``: the profile's preference centre (``{{ preferences_url }}``).
- ``/c/<message id>.<expiry>.<target>.<sig>``: a verified link. Every ``http(s)`` link of a message's
  HTML is rewritten to one when the message is queued; a click is recorded on the recipient's profile
  and redirected, if the signature holds, the link has not expired and the target's host is one of the
  account's link domains (by default, the domain of the message's sender): there is no open redirect.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, select, update

from patron.config import Site
from patron.store.schema import accounts, messages

UNSUBSCRIBE_PATH = "/u"
PREFERENCES_PATH = "/p"
CLICK_PATH = "/c"
NOT_VALID = "This link is not valid. It may have been altered or cut short."
#: What the tokens of our links are made of (base64url, hex, dots and a uuid's hyphens).
_TOKEN = re.compile(r"^[A-Za-z0-9_.-]{1,16384}$")
_ANCHOR = re.compile(r"<(?:a|area)\b[^>]*>", re.IGNORECASE)
_HREF = re.compile(r"""((?<![\w-])href\s*=\s*)(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+))""", re.IGNORECASE)


class Refused(ValueError):
    """A link that is not honoured; the message is what the person is shown."""


def account_key(conn: Connection, account_id: int) -> str:
    """The account's link key, made on first use."""
    key: str | None = conn.execute(select(accounts.c.link_secret).where(accounts.c.id == account_id)).scalar()
    if key is None:
        key = secrets.token_hex(32)
        conn.execute(update(accounts).where(accounts.c.id == account_id).values(link_secret=key))
    return key


def _signature(key: str, *parts: str) -> str:
    return hmac.new(bytes.fromhex(key), ":".join(parts).encode(), hashlib.sha256).hexdigest()[:32]


def _parts(token: str, count: int) -> list[str]:
    """A token's dot-separated parts; Refused for anything a link of ours cannot hold (a NUL, say),
    before it reaches the database."""
    if not _TOKEN.match(token):
        raise Refused(NOT_VALID)
    return [*token.split("."), *[""] * count][:count]


def _signed(key: str | None, signature: str, *parts: str) -> bool:
    return key is not None and hmac.compare_digest(_signature(key, *parts), signature)


# the one-click unsubscribe -------------------------------------------------------------------------


def unsubscribe_url(base_url: str, key: str, message_id: str) -> str:
    signature = _signature(key, "unsubscribe", message_id)
    return f"{base_url.rstrip('/')}{UNSUBSCRIBE_PATH}/{message_id}.{signature}"


@dataclass(frozen=True)
class Recipient:
    account_id: int
    email: str


def verify_unsubscribe(conn: Connection, token: str) -> Recipient:
    """The account and address an unsubscribe link names; Refused for one that was not made here."""
    message_id, signature = _parts(token, 2)
    row = _message(conn, message_id)
    if row is None or not _signed(row.link_secret, signature, "unsubscribe", message_id):
        raise Refused(NOT_VALID)
    return Recipient(row.account_id, row.recipient)


def _message(conn: Connection, message_id: str) -> Any:
    m = messages
    return conn.execute(
        select(m.c.account_id, m.c.recipient, m.c.sender, m.c.profile)
        .add_columns(accounts.c.link_secret, accounts.c.link_domains)
        .join(accounts, accounts.c.id == m.c.account_id)
        .where(m.c.message_id == message_id)
    ).first()


# the preference centre ---------------------------------------------------------------------------


def preferences_url(base_url: str, account_hash: str, key: str, profile_id: str) -> str:
    signature = _signature(key, "preferences", profile_id)
    return f"{base_url.rstrip('/')}{PREFERENCES_PATH}/{account_hash}/{profile_id}.{signature}"


@dataclass(frozen=True)
class Owner:
    """Whose preference centre a link opens."""

    account_id: int
    profile_id: str  # as the link names it (it may since have been merged)


def verify_preferences(conn: Connection, account_hash: str, token: str) -> Owner:
    profile_id, signature = _parts(token, 2)
    _parts(account_hash, 1)
    row = conn.execute(
        select(accounts.c.id, accounts.c.link_secret).where(accounts.c.hash == account_hash)
    ).first()
    if row is None or not _signed(row.link_secret, signature, "preferences", profile_id):
        raise Refused(NOT_VALID)
    return Owner(row.id, profile_id)


# verified links ----------------------------------------------------------------------------------


def click_url(base_url: str, key: str, message_id: str, target: str, expires: int) -> str:
    encoded = base64.urlsafe_b64encode(target.encode()).rstrip(b"=").decode()
    signature = _signature(key, "click", message_id, str(expires), encoded)
    return f"{base_url.rstrip('/')}{CLICK_PATH}/{message_id}.{expires}.{encoded}.{signature}"


def track(body: str, site: Site, key: str, message_id: str, queued_at: datetime) -> str:
    """``body`` with each ``http(s)`` link of an ``<a>`` or ``<area>`` replaced by a verified link to
    it (links to this server, the unsubscribe and preference links, are left as they are)."""
    expires = int(queued_at.timestamp()) + site.link_days * 86_400

    def href(found: re.Match[str]) -> str:
        raw = next(g for g in found.groups()[1:] if g is not None)
        target = html.unescape(raw).strip()
        parts = urlsplit(target)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            return found.group(0)
        if target.startswith(site.base_url.rstrip("/") + "/"):
            return found.group(0)
        return f'{found.group(1)}"{html.escape(click_url(site.base_url, key, message_id, target, expires))}"'

    return _ANCHOR.sub(lambda tag: _HREF.sub(href, tag.group(0), count=1), body)


@dataclass(frozen=True)
class Click:
    """A verified click: where it leads, and the message and recipient it came from."""

    account_id: int
    message_id: str
    target: str
    recipient: str
    profile: str | None


def verify_click(conn: Connection, token: str, at: datetime) -> Click:
    """The click a link makes; Refused when it was altered, has expired, or leads off the account's
    link domains."""
    message_id, expires, encoded, signature = _parts(token, 4)
    row = _message(conn, message_id)
    if row is None or not _signed(row.link_secret, signature, "click", message_id, expires, encoded):
        raise Refused(NOT_VALID)
    try:
        target = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:  # signed, so only if the key leaked
        raise Refused("This link is not valid.") from exc
    if not expires.isdigit() or int(expires) < at.timestamp():
        raise Refused("This link has expired.")
    host = (urlsplit(target).hostname or "").lower()
    domains = list(row.link_domains) or [parseaddr(row.sender)[1].rpartition("@")[2].lower()]
    if not any(host == d or host.endswith("." + d) for d in domains if d):
        raise Refused("This link leads to a site we do not send people to, so it is not followed.")
    return Click(row.account_id, message_id, target, row.recipient, row.profile)

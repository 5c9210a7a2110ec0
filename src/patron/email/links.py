"""The signed links of email: nothing in them can be made up or altered, because each carries an
HMAC-SHA256 of what it names under its account's link key (``patron.signing``).

- ``/u/<message id>.<sig>``: the one-click unsubscribe of RFC 8058 (``List-Unsubscribe``), and the
  ``{{ unsubscribe_url }}`` of a template; it unsubscribes the address the message went to.
- ``/p/<account hash>/<profile id>.<sig>``: the profile's preference centre (``{{ preferences_url }}``).
  Its form carries a second signature, of the same profile for another purpose, that a save must send
  back: a form made anywhere else saves nothing.
- ``/c/<message id>.<expiry>.<target>.<sig>``: a verified link. Every ``http(s)`` link of a message's
  HTML is rewritten to one when the message is queued; a click is recorded on the recipient's profile
  and redirected, if the signature holds, the link has not expired and the target's host is one of the
  account's link domains (by default, the domain of the message's sender): there is no open redirect.

Targets are read as browsers read them (the WHATWG URL standard, by ``ada-url``): backslashes are
slashes, a host is IDNA-encoded and compared in lower-case ASCII with the link domains (themselves
IDNA-encoded), and what is signed and followed is the standard's serialisation of the target, whose
non-ASCII characters are percent-encoded. A target with userinfo (``https://a@b/``) or a backslash
is one people and programs may read another host in than the browser goes to: such a link is never
signed. When a message is queued it becomes ``/c/refused``, a link that only shows the refusal page
(left as written, it would lead where its reader does not expect, without passing any check); a
verified link whose target has either is refused when clicked.

A verified link whose message's recipient has a profile lands with ``om_profile=<identity token>``
added to the target's query: the website tag sends it back in ``identify`` as ``omid:<token>``, which
links the visitor to the profile while the token is valid (``signing.IDENTITY_SECONDS`` from the
click).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import html
import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr
from typing import Any
from urllib.parse import unquote

import ada_url
from sqlalchemy import Connection, select

from patron import errors
from patron.config import Site
from patron.profiles.read import email_holder
from patron.signing import IDENTITY_SECONDS, identity_token, signature, signed
from patron.store.schema import accounts, messages

UNSUBSCRIBE_PATH = "/u"
PREFERENCES_PATH = "/p"
CLICK_PATH = "/c"
#: The link a target that hides where it leads becomes: it only ever shows the refusal page.
REFUSED_LINK = "refused"
#: The query parameter of a verified link's landing page that names the person (read by the tag).
IDENTITY_PARAMETER = "om_profile"
NOT_VALID = "This link is not valid. It may have been altered or cut short."
HIDES_ITS_HOST = "This link hides the site it leads to, so it is not followed."
FORM_NOT_OURS = "Your preferences were not saved: the form did not come from this page. Open the link again."
#: What the tokens of our links are made of (base64url, hex, dots and a uuid's hyphens).
_TOKEN = re.compile(r"^[A-Za-z0-9_.-]{1,16384}$")
_ANCHOR = re.compile(r"<(?:a|area)\b[^>]*>", re.IGNORECASE)
_HREF = re.compile(r"""((?<![\w-])href\s*=\s*)(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+))""", re.IGNORECASE)


class Refused(errors.Invalid):
    """A link that is not honoured; the message is what the person is shown (a page, not a problem
    document: ``api/links.py``)."""


class Forbidden(errors.Forbidden, Refused):
    """A form sent to a page of ours that the page did not make (another site's, say)."""


def _parts(token: str, count: int) -> list[str]:
    """A token's dot-separated parts; Refused for anything a link of ours cannot hold (a NUL, say),
    before it reaches the database."""
    if not _TOKEN.match(token):
        raise Refused(NOT_VALID)
    return [*token.split("."), *[""] * count][:count]


# the one-click unsubscribe -------------------------------------------------------------------------


def unsubscribe_url(base_url: str, key: str, message_id: str) -> str:
    given = signature(key, "unsubscribe", message_id)
    return f"{base_url.rstrip('/')}{UNSUBSCRIBE_PATH}/{message_id}.{given}"


@dataclass(frozen=True)
class Recipient:
    account_id: int
    email: str


def verify_unsubscribe(conn: Connection, token: str) -> Recipient:
    """The account and address an unsubscribe link names; Refused for one that was not made here."""
    message_id, given = _parts(token, 2)
    row = _message(conn, message_id)
    if row is None or not signed(row.link_secret, given, "unsubscribe", message_id):
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
    given = signature(key, "preferences", profile_id)
    return f"{base_url.rstrip('/')}{PREFERENCES_PATH}/{account_hash}/{profile_id}.{given}"


@dataclass(frozen=True)
class Owner:
    """Whose preference centre a link opens."""

    account_id: int
    profile_id: str  # as the link names it (it may since have been merged)
    form_token: str  # what the page's form carries, and a save must send back


def verify_preferences(conn: Connection, account_hash: str, token: str) -> Owner:
    profile_id, given = _parts(token, 2)
    _parts(account_hash, 1)
    row = conn.execute(
        select(accounts.c.id, accounts.c.link_secret).where(accounts.c.hash == account_hash)
    ).first()
    if row is None or not signed(row.link_secret, given, "preferences", profile_id):
        raise Refused(NOT_VALID)
    return Owner(row.id, profile_id, signature(row.link_secret, "preferences-form", profile_id))


def check_form(owner_token: str, sent: str) -> None:
    """Forbidden unless a submitted form carries the token of the page it was sent to."""
    if not hmac.compare_digest(owner_token.encode(), sent.encode()):
        raise Forbidden(FORM_NOT_OURS)


# verified links ----------------------------------------------------------------------------------


def _web(target: str) -> ada_url.URL | None:
    """An ``http(s)`` URL as a browser reads it, or None for anything else (a relative link, say)."""
    try:
        url = ada_url.URL(target)
    except ValueError:
        return None
    return url if url.protocol in ("http:", "https:") and url.hostname else None


def _hides_its_host(target: str, url: ada_url.URL) -> bool:
    """Userinfo or a backslash: people and programs may read another host in it than a browser."""
    return "\\" in target or bool(url.username or url.password)


def _ascii_domain(domain: str) -> str:
    """A domain as the host of a parsed URL shows it: IDNA, lower case, no final dot ("" if invalid)."""
    try:
        return ada_url.idna_to_ascii(domain.strip().rstrip(".")).decode("ascii").lower()
    except (UnicodeError, ValueError):
        return ""


def click_url(base_url: str, key: str, message_id: str, target: str, expires: int) -> str:
    encoded = base64.urlsafe_b64encode(target.encode()).rstrip(b"=").decode()
    given = signature(key, "click", message_id, str(expires), encoded)
    return f"{base_url.rstrip('/')}{CLICK_PATH}/{message_id}.{expires}.{encoded}.{given}"


def refused_url(base_url: str) -> str:
    """The link a target that hides where it leads becomes."""
    return f"{base_url.rstrip('/')}{CLICK_PATH}/{REFUSED_LINK}"


def track(body: str, site: Site, key: str, message_id: str, queued_at: datetime) -> str:
    """``body`` with each ``http(s)`` link of an ``<a>`` or ``<area>`` replaced by a verified link to
    it, as a browser reads it (links to this server, the unsubscribe and preference links, are left as
    they are; one with userinfo or a backslash becomes the refused link)."""
    expires = int(queued_at.timestamp()) + site.link_days * 86_400
    own = _web(site.base_url.rstrip("/") + "/")
    here = own.href if own is not None else None

    def href(found: re.Match[str]) -> str:
        raw = next(g for g in found.groups()[1:] if g is not None)
        target = html.unescape(raw)
        url = _web(target)
        if url is None:
            return found.group(0)
        if _hides_its_host(target, url):
            rewritten = refused_url(site.base_url)
        elif here is not None and url.href.startswith(here):
            return found.group(0)
        else:
            rewritten = click_url(site.base_url, key, message_id, url.href, expires)
        return f'{found.group(1)}"{html.escape(rewritten)}"'

    return _ANCHOR.sub(lambda tag: _HREF.sub(href, tag.group(0), count=1), body)


@dataclass(frozen=True)
class Click:
    """A verified click: where it leads, and the message and recipient it came from."""

    account_id: int
    message_id: str
    target: str  # as verified: the standard's serialisation of the signed target
    recipient: str
    profile: str | None
    landing: str  # where the browser is sent: the target, with the recipient's identity if known


def verify_click(conn: Connection, token: str, at: datetime) -> Click:
    """The click a link makes; Refused when it was altered, has expired, hides where it leads or
    leads off the account's link domains."""
    if token == REFUSED_LINK:
        raise Refused(HIDES_ITS_HOST)
    message_id, expires, encoded, given = _parts(token, 4)
    row = _message(conn, message_id)
    if row is None or not signed(row.link_secret, given, "click", message_id, expires, encoded):
        raise Refused(NOT_VALID)
    try:
        target = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:  # signed, so only if the key leaked
        raise Refused("This link is not valid.") from exc
    if not expires.isdigit() or int(expires) < at.timestamp():
        raise Refused("This link has expired.")
    url = _web(target)
    if url is None or _hides_its_host(target, url) or not url.href.isascii():
        raise Refused(HIDES_ITS_HOST)
    host = url.hostname.rstrip(".")
    sender = parseaddr(row.sender)[1].rpartition("@")[2]
    domains = [_ascii_domain(d) for d in (list(row.link_domains) or [sender])]
    if not any(host == d or host.endswith("." + d) for d in domains if d):
        raise Refused("This link leads to a site we do not send people to, so it is not followed.")
    verified = url.href
    person = row.profile or email_holder(conn, row.account_id, row.recipient)
    landing = verified
    if person is not None:
        identity = identity_token(row.link_secret, person, int(at.timestamp()) + IDENTITY_SECONDS)
        landing = with_parameter(verified, IDENTITY_PARAMETER, identity)
    return Click(row.account_id, message_id, verified, row.recipient, row.profile, landing)


def with_parameter(href: str, name: str, value: str) -> str:
    """``href`` (a serialised URL) with ``name=value`` last in its query, instead of any ``name``
    it had; ``value`` is URL-safe. Nothing else of the URL changes."""
    url = ada_url.URL(href)
    kept = [pair for pair in url.search[1:].split("&") if pair and unquote(pair.split("=")[0]) != name]
    url.search = "&".join([*kept, f"{name}={value}"])
    return url.href
